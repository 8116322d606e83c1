// Load generator and receiver for `make bench` (tools/bench/run.py). One binary, five
// subcommands, every one bounded in time:
//
//   server  --listen A:P [--proxy] [--seconds S]  TCP sink/source; with --proxy it first
//           strips a PROXY v1 or v2 header (peeked, so no payload byte is lost). Per
//           connection the client's first byte says what to do:
//             'U' + u64 length: read that many bytes, answer 'k'      (client -> backend)
//             'D' + u64 length: write that many bytes, then FIN        (backend -> client)
//             'P': answer 'p', wait for the client's FIN, close         (connection rate)
//   bulk    --connect A:P --dir up|down --bytes N [--streams K] [--seconds S]
//   rate    --connect A:P [--parallel K] [--seconds S]
//   udp-sink --listen A:P [--seconds S] [--cpu N]  counts datagrams until SIGTERM or S;
//           on SIGUSR1, once its socket's queue is empty, prints the counts so far
//           (one JSON line each time)
//   udp-send --connect A:P --size B [--flows F] [--seconds S] [--cpu N]
//
// --cpu N pins the process to CPU N. The UDP sink never sleeps on its socket: it polls
// with MSG_DONTWAIT and naps 100 us when the queue is empty. A sleeping receiver would make
// every datagram's delivery a wakeup of another CPU, which on a VM costs more than the
// whole path and varies with timing; with nobody waiting, delivery is just a queue append.
//
// Client subcommands print one JSON object on stdout. Addresses: 192.0.2.1:80 or
// [2001:db8::1]:80.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (128 * 1024)
#define SERVER_THREADS 320
#define IO_TIMEOUT_S 15
#define CLIENT_TIMEOUT_S 5

static void die(const char *what) {
    fprintf(stderr, "ppbench_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void) {
    fprintf(stderr, "ppbench_load: usage: see the comment at the top of ppbench_load.c\n");
    exit(2);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static socklen_t parse_addr(const char *text, struct sockaddr_storage *ss) {
    char host[128];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) {
        fprintf(stderr, "ppbench_load: bad address %s\n", text);
        exit(2);
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    int port = atoi(colon + 1);
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']') {
            fprintf(stderr, "ppbench_load: bad address %s\n", text);
            exit(2);
        }
        host[n - 1] = 0;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1) {
            fprintf(stderr, "ppbench_load: bad address %s\n", text);
            exit(2);
        }
        return sizeof *s6;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
        fprintf(stderr, "ppbench_load: bad address %s\n", text);
        exit(2);
    }
    return sizeof *s4;
}

static void set_timeouts(int fd, int seconds) {
    struct timeval tv = {seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int read_full(int fd, void *buf, size_t len) {
    size_t off = 0;
    while (off < len) {
        ssize_t n = recv(fd, (char *)buf + off, len - off, 0);
        if (n <= 0) {
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len) {
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, (const char *)buf + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

// --- server -------------------------------------------------------------------------

static int g_listen_fd = -1;
static int g_proxy = 0;
static atomic_ulong g_proxy_headers;

static const unsigned char kV2Sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// Length of the PROXY header at the start of `b` (n bytes peeked): >0 complete, 0 need
// more bytes, -1 not a PROXY header.
static int proxy_header_len(const unsigned char *b, size_t n) {
    if (n >= 1 && b[0] == 'P') {
        if (n >= 6 && memcmp(b, "PROXY ", 6) != 0) {
            return -1;
        }
        for (size_t i = 1; i < n && i < 107; i++) {
            if (b[i - 1] == '\r' && b[i] == '\n') {
                return (int)i + 1;
            }
        }
        return n >= 107 ? -1 : 0;
    }
    if (n >= 1 && b[0] == 0x0D) {
        if (n < 16) {
            return memcmp(b, kV2Sig, n < 12 ? n : 12) == 0 ? 0 : -1;
        }
        if (memcmp(b, kV2Sig, 12) != 0) {
            return -1;
        }
        return 16 + (b[14] << 8 | b[15]);
    }
    return n == 0 ? 0 : -1;
}

static int strip_proxy(int fd) {
    unsigned char b[600];
    for (int tries = 0; tries < 1000; tries++) {
        ssize_t n = recv(fd, b, sizeof b, MSG_PEEK);
        if (n <= 0) {
            return -1;
        }
        int len = proxy_header_len(b, (size_t)n);
        if (len < 0) {
            return -1;
        }
        if (len > 0 && (size_t)n >= (size_t)len) {
            atomic_fetch_add(&g_proxy_headers, 1);
            return read_full(fd, b, (size_t)len);
        }
        usleep(100);
    }
    return -1;
}

static void serve(int fd, char *buf) {
    set_timeouts(fd, IO_TIMEOUT_S);
    if (g_proxy && strip_proxy(fd) < 0) {
        return;
    }
    unsigned char cmd;
    if (read_full(fd, &cmd, 1) < 0) {
        return;
    }
    if (cmd == 'P') {
        if (write_full(fd, "p", 1) == 0) {
            while (recv(fd, buf, BUF_SIZE, 0) > 0) {
            }
        }
        return;
    }
    uint64_t len;
    if (read_full(fd, &len, sizeof len) < 0) {
        return;
    }
    if (cmd == 'U') {
        uint64_t got = 0;
        while (got < len) {
            ssize_t n = recv(fd, buf, BUF_SIZE, 0);
            if (n <= 0) {
                return;
            }
            got += (uint64_t)n;
        }
        write_full(fd, "k", 1);
    } else if (cmd == 'D') {
        uint64_t sent = 0;
        while (sent < len) {
            size_t chunk = len - sent < BUF_SIZE ? (size_t)(len - sent) : BUF_SIZE;
            ssize_t n = send(fd, buf, chunk, MSG_NOSIGNAL);
            if (n <= 0) {
                return;
            }
            sent += (uint64_t)n;
        }
        shutdown(fd, SHUT_WR);
        while (recv(fd, buf, BUF_SIZE, 0) > 0) {
        }
    }
}

static void *server_thread(void *arg) {
    (void)arg;
    char *buf = calloc(1, BUF_SIZE);
    if (!buf) {
        die("calloc");
    }
    for (;;) {
        int fd = accept(g_listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) {
                continue;
            }
            break;
        }
        serve(fd, buf);
        close(fd);
    }
    free(buf);
    return NULL;
}

static int listen_on(const char *addr, int type) {
    struct sockaddr_storage ss;
    socklen_t len = parse_addr(addr, &ss);
    int fd = socket(ss.ss_family, type, 0);
    if (fd < 0) {
        die("socket");
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        die(addr);
    }
    if (type == SOCK_STREAM && listen(fd, 4096) < 0) {
        die("listen");
    }
    return fd;
}

static int cmd_server(const char *addr, double seconds) {
    g_listen_fd = listen_on(addr, SOCK_STREAM);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    for (int i = 0; i < SERVER_THREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, server_thread, NULL) != 0) {
            die("pthread_create");
        }
        pthread_detach(t);
    }
    fprintf(stderr, "ppbench_load: serving %s%s\n", addr, g_proxy ? " (PROXY headers)" : "");
    // Bounded: the harness stops us with SIGTERM; this is the backstop.
    double end = now_s() + seconds;
    while (now_s() < end) {
        sleep(1);
    }
    return 0;
}

// --- bulk client --------------------------------------------------------------------

struct bulk_arg {
    struct sockaddr_storage ss;
    socklen_t len;
    int down;
    uint64_t bytes;
    double deadline;
    uint64_t done;
    int ok;
};

static int connect_to(const struct sockaddr_storage *ss, socklen_t len) {
    int fd = socket(ss->ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    set_timeouts(fd, CLIENT_TIMEOUT_S);
    if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *bulk_thread(void *p) {
    struct bulk_arg *a = p;
    char *buf = calloc(1, BUF_SIZE);
    if (!buf) {
        die("calloc");
    }
    int fd = connect_to(&a->ss, a->len);
    if (fd < 0) {
        free(buf);
        return NULL;
    }
    unsigned char req[9];
    req[0] = a->down ? 'D' : 'U';
    memcpy(req + 1, &a->bytes, 8);
    if (write_full(fd, req, sizeof req) < 0) {
        goto out;
    }
    if (a->down) {
        while (a->done < a->bytes && now_s() < a->deadline) {
            ssize_t n = recv(fd, buf, BUF_SIZE, 0);
            if (n <= 0) {
                break;
            }
            a->done += (uint64_t)n;
        }
        a->ok = a->done == a->bytes;
    } else {
        while (a->done < a->bytes && now_s() < a->deadline) {
            size_t chunk = a->bytes - a->done < BUF_SIZE ? (size_t)(a->bytes - a->done) : BUF_SIZE;
            ssize_t n = send(fd, buf, chunk, MSG_NOSIGNAL);
            if (n <= 0) {
                break;
            }
            a->done += (uint64_t)n;
        }
        char k;
        a->ok = a->done == a->bytes && read_full(fd, &k, 1) == 0 && k == 'k';
    }
out:
    close(fd);
    free(buf);
    return NULL;
}

static int cmd_bulk(const char *addr, int down, uint64_t bytes, int streams, double seconds) {
    struct bulk_arg *args = calloc((size_t)streams, sizeof *args);
    pthread_t *threads = calloc((size_t)streams, sizeof *threads);
    if (!args || !threads) {
        die("calloc");
    }
    double start = now_s();
    for (int i = 0; i < streams; i++) {
        args[i].len = parse_addr(addr, &args[i].ss);
        args[i].down = down;
        args[i].bytes = bytes / (uint64_t)streams;
        args[i].deadline = start + seconds;
        if (pthread_create(&threads[i], NULL, bulk_thread, &args[i]) != 0) {
            die("pthread_create");
        }
    }
    uint64_t total = 0;
    int ok = 0;
    for (int i = 0; i < streams; i++) {
        pthread_join(threads[i], NULL);
        total += args[i].done;
        ok += args[i].ok;
    }
    double elapsed = now_s() - start;
    printf("{\"bytes\": %llu, \"seconds\": %.6f, \"streams\": %d, \"streams_ok\": %d}\n",
           (unsigned long long)total, elapsed, streams, ok);
    return ok == streams ? 0 : 1;
}

// --- connection rate client ---------------------------------------------------------

struct rate_arg {
    struct sockaddr_storage ss;
    socklen_t len;
    double deadline;
    uint64_t conns, errors;
};

static void *rate_thread(void *p) {
    struct rate_arg *a = p;
    while (now_s() < a->deadline) {
        int fd = connect_to(&a->ss, a->len);
        char c = 0;
        if (fd >= 0 && write_full(fd, "P", 1) == 0 && read_full(fd, &c, 1) == 0 && c == 'p') {
            a->conns++;
        } else {
            a->errors++;
            if (fd < 0) {
                usleep(1000);
            }
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    return NULL;
}

static int cmd_rate(const char *addr, int parallel, double seconds) {
    struct rate_arg *args = calloc((size_t)parallel, sizeof *args);
    pthread_t *threads = calloc((size_t)parallel, sizeof *threads);
    if (!args || !threads) {
        die("calloc");
    }
    double start = now_s();
    for (int i = 0; i < parallel; i++) {
        args[i].len = parse_addr(addr, &args[i].ss);
        args[i].deadline = start + seconds;
        if (pthread_create(&threads[i], NULL, rate_thread, &args[i]) != 0) {
            die("pthread_create");
        }
    }
    uint64_t conns = 0, errors = 0;
    for (int i = 0; i < parallel; i++) {
        pthread_join(threads[i], NULL);
        conns += args[i].conns;
        errors += args[i].errors;
    }
    double elapsed = now_s() - start;
    printf("{\"connections\": %llu, \"errors\": %llu, \"seconds\": %.6f, \"parallel\": %d}\n",
           (unsigned long long)conns, (unsigned long long)errors, elapsed, parallel);
    return 0;
}

// --- UDP ----------------------------------------------------------------------------

static volatile sig_atomic_t g_stop = 0, g_report = 0;
static void on_signal(int sig) {
    if (sig == SIGUSR1) {
        g_report = 1;
    } else {
        g_stop = 1;
    }
}

struct sink_counts {
    uint64_t datagrams, bytes, v1, v2, spp;
};

static void print_counts(const struct sink_counts *c) {
    printf(
        "{\"datagrams\": %llu, \"bytes\": %llu, \"with_v1\": %llu, \"with_v2\": %llu, "
        "\"with_spp\": %llu}\n",
        (unsigned long long)c->datagrams, (unsigned long long)c->bytes,
        (unsigned long long)c->v1, (unsigned long long)c->v2, (unsigned long long)c->spp);
    fflush(stdout);
}

static void pin_to_cpu(int cpu) {
    if (cpu < 0) {
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0) {
        die("sched_setaffinity");
    }
}

static int cmd_udp_sink(const char *addr, double seconds) {
    int fd = listen_on(addr, SOCK_DGRAM);
    int size = 64 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    enum { BATCH = 64, DGRAM = 2048 };
    static char bufs[BATCH][DGRAM];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sink_counts c = {0};
    double end = now_s() + seconds;
    fprintf(stderr, "ppbench_load: counting datagrams on %s\n", addr);
    while (!g_stop && now_s() < end) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = DGRAM;
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) {
            if (g_report) { /* drained: everything delivered so far is counted */
                g_report = 0;
                print_counts(&c);
            }
            struct timespec nap = {0, 100000};
            nanosleep(&nap, NULL);
            continue;
        }
        for (int i = 0; i < n; i++) {
            unsigned len = msgs[i].msg_len;
            const unsigned char *b = (const unsigned char *)bufs[i];
            c.datagrams++;
            c.bytes += len;
            if (len >= 16 && memcmp(b, kV2Sig, 12) == 0) {
                c.v2++;
            } else if (len >= 38 && b[0] == 0x56 && b[1] == 0xEC) {
                c.spp++;
            } else if (len >= 8 && memcmp(b, "PROXY ", 6) == 0) {
                c.v1++;
            }
        }
    }
    print_counts(&c);
    return 0;
}

static int cmd_udp_send(const char *addr, int size, int flows, double seconds) {
    struct sockaddr_storage ss;
    socklen_t len = parse_addr(addr, &ss);
    int *fds = calloc((size_t)flows, sizeof *fds);
    if (!fds) {
        die("calloc");
    }
    for (int i = 0; i < flows; i++) {
        fds[i] = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&ss, len) < 0) {
            die("udp socket");
        }
    }
    enum { BATCH = 16 };
    static char payload[65536];
    for (int i = 0; i < size && i < (int)sizeof payload; i++) {
        payload[i] = (char)('a' + i % 26);
    }
    struct mmsghdr msgs[BATCH];
    struct iovec iov = {payload, (size_t)size};
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        msgs[i].msg_hdr.msg_iov = &iov;
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t sent = 0, refused = 0;
    double start = now_s(), end = start + seconds;
    for (uint64_t round = 0; now_s() < end; round++) {
        for (int i = 0; i < flows && (i & 63 || now_s() < end); i++) {
            int n = sendmmsg(fds[i], msgs, BATCH, 0);
            if (n > 0) {
                sent += (uint64_t)n;
            }
            if (n < BATCH) {
                refused += (uint64_t)(BATCH - (n > 0 ? n : 0));
            }
        }
    }
    double elapsed = now_s() - start;
    printf("{\"sent\": %llu, \"not_sent\": %llu, \"seconds\": %.6f, \"flows\": %d, \"size\": %d}\n",
           (unsigned long long)sent, (unsigned long long)refused, elapsed, flows, size);
    return 0;
}

// --- main ---------------------------------------------------------------------------

int main(int argc, char **argv) {
    if (argc < 2) {
        usage();
    }
    const char *cmd = argv[1];
    const char *listen_addr = NULL, *connect_addr = NULL, *dir = "up";
    double seconds = 10;
    uint64_t bytes = 1ull << 30;
    int streams = 1, parallel = 16, size = 64, flows = 1000, cpu = -1;
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--proxy")) {
            g_proxy = 1;
            continue;
        }
        if (!v) {
            usage();
        }
        i++;
        if (!strcmp(k, "--listen")) {
            listen_addr = v;
        } else if (!strcmp(k, "--connect")) {
            connect_addr = v;
        } else if (!strcmp(k, "--dir")) {
            dir = v;
        } else if (!strcmp(k, "--seconds")) {
            seconds = atof(v);
        } else if (!strcmp(k, "--bytes")) {
            bytes = strtoull(v, NULL, 10);
        } else if (!strcmp(k, "--streams")) {
            streams = atoi(v);
        } else if (!strcmp(k, "--parallel")) {
            parallel = atoi(v);
        } else if (!strcmp(k, "--size")) {
            size = atoi(v);
        } else if (!strcmp(k, "--flows")) {
            flows = atoi(v);
        } else if (!strcmp(k, "--cpu")) {
            cpu = atoi(v);
        } else {
            usage();
        }
    }
    if (seconds <= 0 || seconds > 600 || streams < 1 || streams > 1024 || parallel < 1 ||
        parallel > 1024 || size < 1 || size > 65000 || flows < 1 || flows > 60000) {
        usage();
    }
    signal(SIGPIPE, SIG_IGN);
    pin_to_cpu(cpu);
    if (!strcmp(cmd, "server") && listen_addr) {
        return cmd_server(listen_addr, seconds);
    }
    if (!strcmp(cmd, "bulk") && connect_addr) {
        return cmd_bulk(connect_addr, !strcmp(dir, "down"), bytes, streams, seconds);
    }
    if (!strcmp(cmd, "rate") && connect_addr) {
        return cmd_rate(connect_addr, parallel, seconds);
    }
    if (!strcmp(cmd, "udp-sink") && listen_addr) {
        return cmd_udp_sink(listen_addr, seconds);
    }
    if (!strcmp(cmd, "udp-send") && connect_addr) {
        return cmd_udp_send(connect_addr, size, flows, seconds);
    }
    usage();
    return 2;
}
