#include "tcp/server.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cstring>
#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "sys/kernel.hpp"
#include "tcp/header.hpp"
#include "tcp/health.hpp"
#include "tcp/service.hpp"
#include "tcp/sni.hpp"

namespace ppinject::tcp {

using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint64_t kListenerToken = 1ull << 63;
constexpr std::uint64_t kWakeToken = 1ull << 62;
constexpr std::uint32_t kGenMask = (1u << 29) - 1;  // connection tokens: bits 32..60
constexpr int kClient = 0;
constexpr int kBackend = 1;
constexpr std::uint32_t kIn = EPOLLIN, kOut = EPOLLOUT, kRdHup = EPOLLRDHUP, kEt = EPOLLET;
// A connection's sockets are registered once, edge-triggered for everything, and never
// modified in splice and copy modes (sockmap mode narrows them while spliced); close()
// removes them from the epoll set.
constexpr std::uint32_t kAllEdges = kIn | kOut | kRdHup | kEt;
constexpr std::size_t kCopyBuffer = 64 * 1024;
// splice mode's pipes: fewer, larger moves than the default 64 KiB (tools/bench/README.md).
constexpr std::size_t kPipeSize = 256 * 1024;
constexpr std::size_t kSniPeek = 4096;  // a ClientHello's server_name comes early
constexpr auto kSniWait = std::chrono::milliseconds(1000);
constexpr auto kTick = std::chrono::milliseconds(5);  // drains and deadlines pending
constexpr auto kIdleScan = std::chrono::seconds(1);
// Sockmap backpressure: bytes redirected but not yet written to the other socket (they
// wait in the kernel's queue for it). Above kBacklogHigh the sender is held (see
// pp_tcp_conn); below kBacklogLow it is let go. A precise check (two syscalls) runs only
// after kBacklogCheck more bytes were redirected.
constexpr std::uint64_t kBacklogHigh = 4 << 20;
constexpr std::uint64_t kBacklogLow = 1 << 20;
constexpr std::uint64_t kBacklogCheck = 1 << 20;

std::string errno_text(const std::string &what, int err) {
    return what + ": " + std::strerror(err);
}

// Sets congestion control `name` on a TCP socket; an empty name keeps the host's.
bool set_congestion(int fd, const std::string &name) {
    return name.empty() || setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(),
                                      static_cast<socklen_t>(name.size())) == 0;
}

// The congestion control of a leg whose peer is on a loopback address, when the service
// names none: cubic, if this kernel has it. There is no link there for BBR to model, and
// its pacing timer per send is pure cost (tools/bench/README.md).
const std::string &loopback_congestion() {
    static const std::string name = [] {
        std::string cubic = "cubic";
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok = fd >= 0 && set_congestion(fd, cubic);
        if (fd >= 0) {
            close(fd);
        }
        return ok ? cubic : std::string();
    }();
    return name;
}

// The congestion control for a socket of one leg: the service's for that leg, else
// loopback_congestion() for a peer on a loopback address, else the host's (empty).
const std::string &leg_congestion(const std::string &configured, bool loopback_peer) {
    static const std::string host;
    return !configured.empty() ? configured : loopback_peer ? loopback_congestion() : host;
}

// A listener bound to a loopback address (not a transparent service's, which sk_lookup
// feeds from anywhere) has only loopback clients: it takes their leg's congestion control
// itself, and they inherit it.
bool loopback_listener(const Service &svc, const Endpoint &bound) {
    return !svc.transparent && bound.addr.is_loopback();
}

// Why `name` could not be set on a socket of `leg` ("client", "backend") of a service.
std::string congestion_error(const std::string &svc_name, const char *leg, const std::string &name,
                             int err) {
    std::string what = "tcp: tcp_congestion \"" + name + "\" for the " + leg + " leg of service '" +
                       svc_name + "'";
    if (err != ENOENT) {
        return errno_text(what, err);
    }
    std::string available;
    std::getline(std::ifstream("/proc/sys/net/ipv4/tcp_available_congestion_control") >> std::ws,
                 available);
    return what + ": this kernel has no such congestion control (available: " + available + ")";
}

int sock_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err;
}

bool is_reset(int err) {
    return err == ECONNRESET || err == ETIMEDOUT;
}

// Closes `fd` so that its peer sees a reset rather than a FIN.
void close_with_reset(int fd) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

// A connection socket's epoll token: generation (29 bits), slot, side. Events of a
// connection that ended earlier in the same epoll_wait batch must not reach the next
// connection in its slot.
std::uint64_t conn_token(std::uint32_t id, std::uint32_t gen, int side) {
    return static_cast<std::uint64_t>(gen & kGenMask) << 32 | static_cast<std::uint64_t>(id) << 1 |
           static_cast<std::uint64_t>(side);
}

std::uint64_t cookie_of(int fd) {
    std::uint64_t c = 0;
    socklen_t len = sizeof c;
    getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len);
    return c;
}

// Bytes the application wrote into `fd` so far, as the kernel counts them: acknowledged
// plus still queued. Only differences of it are used (it may count the SYN).
std::uint64_t written_bytes(int fd) {
    tcp_info ti{};
    socklen_t len = sizeof ti;
    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
    int outq = 0;
    ioctl(fd, SIOCOUTQ, &outq);
    return ti.tcpi_bytes_acked + static_cast<std::uint64_t>(outq);
}

}  // namespace

// One direction of a relayed connection in splice or copy mode.
struct Pump {
    int pipe[2] = {-1, -1};             // splice: kernel buffer between the sockets
    std::vector<std::uint8_t> buf;      // copy
    std::size_t pending = 0, head = 0;  // bytes held (copy: buf[head, head + pending))
    bool use_pipe = true;               // splice through `pipe`, else copy through `buf`
    bool eof = false;                   // the source sent FIN
    bool shut = false;                  // FIN passed on
};

struct Conn {
    bool used = false;
    std::uint32_t gen = 0;  // bumped when the slot is freed: stale events do not match
    int fd[2] = {-1, -1};
    std::shared_ptr<const ServiceRt> svc;
    enum class State { connecting, writing_header, spliced, pumping } state = State::connecting;
    ConnectionFacts facts;
    std::size_t backend = 0;  // index of the backend tried now
    std::size_t tried = 0;
    Clock::time_point deadline;  // connect timeout, then SNI wait
    bool connected = false;
    bool sni_pending = false;
    // Client bytes were waiting when the header went out: it was sent with MSG_MORE, to
    // leave in one segment with them; `corked` until the first of them (or a FIN) follows.
    bool client_waiting = false, corked = false;
    std::string sni;
    std::vector<std::uint8_t> header;
    std::size_t header_len = 0, header_off = 0;
    // sockmap mode
    std::uint32_t slot = 0;  // in tcp_conns, fixed per Conn
    std::uint64_t cookie[2] = {0, 0};
    std::uint64_t base_written[2] = {0, 0};  // written_bytes() of each when spliced
    bool fin[2] = {false, false};            // side i sent FIN
    bool shut[2] = {false, false};           // write side of i shut down by us
    bool hold[2] = {false, false};           // side i is held back (pp_tcp_conn.hold)
    bool copying[2] = {false, false};        // side i's held bytes are being copied on
    std::uint64_t taken[2] = {0, 0};         // held bytes of i read by the daemon so far
    std::uint64_t clear[2] = {0, 0};         // redirected(i) when all of it was delivered
    std::uint64_t checked[2] = {0, 0};       // redirected(i) at the last precise check
    std::uint64_t seen[2] = {0, 0};          // moved(i) at the last tick
    std::uint64_t scanned[2] = {0, 0};       // moved(i) at the last idle scan
    // splice / copy mode; in sockmap mode pump[i].buf carries i's held bytes
    Pump pump[2];  // pump[i]: from side i to the other
    Clock::time_point last_active;
};

class Worker {
    struct Listener {
        std::shared_ptr<const ServiceRt> svc;
        std::optional<Endpoint> local;  // bound to one address: every connection's own
        bool loopback = false;          // only loopback clients: see loopback_listener()
    };

  public:
    // Connections use tcp_conns slots [slot_base, slot_base + slots).
    Worker(const Datapath::TcpMaps &maps, LogFn log, std::uint32_t slot_base, std::uint32_t slots)
        : maps_(maps), log_(std::move(log)), slot_base_(slot_base), slots_(slots) {
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (ep_ < 0 || wake_ < 0) {
            throw std::runtime_error(errno_text("tcp worker: epoll/eventfd", errno));
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kWakeToken;
        epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &ev);
        thread_ = std::thread([this] { run(); });
    }

    ~Worker() {
        post([](Worker &w) { w.stopping_ = true; });
        thread_.join();
        for (auto &[fd, l] : listeners_) {
            close(fd);
        }
        for (std::size_t i = 0; i < conns_.size(); i++) {
            if (conns_[i].used) {
                finish(static_cast<std::uint32_t>(i), false);
            }
        }
        for (Conn &c : conns_) {
            for (Pump &p : c.pump) {
                if (p.pipe[0] >= 0) {
                    close(p.pipe[0]);
                    close(p.pipe[1]);
                }
            }
        }
        close(wake_);
        close(ep_);
    }

    // Runs `cmd` on the worker's thread.
    void post(std::function<void(Worker &)> cmd) {
        {
            std::lock_guard lock(mu_);
            commands_.push_back(std::move(cmd));
        }
        std::uint64_t one = 1;
        if (write(wake_, &one, sizeof one) < 0) {
            // The counter cannot overflow with this few posts; nothing to do.
        }
    }

    void add_listener(int fd, std::shared_ptr<const ServiceRt> svc) {
        Listener &l = listeners_[fd];
        l.svc = std::move(svc);
        sockaddr_storage local{};
        socklen_t llen = sizeof local;
        if (getsockname(fd, reinterpret_cast<sockaddr *>(&local), &llen) == 0) {
            l.local = Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&local));
        }
        if (l.local && l.local->addr.is_unspecified()) {
            l.local.reset();  // a wildcard: each connection's own address
        }
        l.loopback = l.local && loopback_listener(l.svc->cfg, *l.local);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kListenerToken | static_cast<std::uint32_t>(fd);
        epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    }
    void set_service(int fd, std::shared_ptr<const ServiceRt> svc) { listeners_[fd].svc = svc; }
    void remove_listener(int fd) {
        epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
        listeners_.erase(fd);
        close(fd);
    }

  private:
    void run();
    void accept_from(int lfd, const Listener &l);
    void start_connect(std::uint32_t id);
    void on_event(std::uint32_t id, int side, std::uint32_t events);
    void on_connected(std::uint32_t id);
    void peek_sni(std::uint32_t id);
    void maybe_send_header(std::uint32_t id);
    void send_header(std::uint32_t id);
    void start_relay(std::uint32_t id);
    bool prepare_pump(Conn &c, int from);
    bool splice_in_kernel(std::uint32_t id);
    void on_spliced_event(std::uint32_t id, int side, std::uint32_t events);
    void try_pass_fin(std::uint32_t id, int side);
    void watch_backlog(std::uint32_t id, int side);
    void copy_held(std::uint32_t id, int side);
    void arm_spliced(std::uint32_t id);
    pp_tcp_conn &kconn(const Conn &c) { return maps_.conns[c.slot]; }
    std::uint64_t redirected(const Conn &c, int side) const {
        return std::atomic_ref<__u64>(maps_.conns[c.slot].redirected[side]).load();
    }
    std::uint64_t held(const Conn &c, int side) const {
        return std::atomic_ref<__u64>(maps_.conns[c.slot].held[side]).load();
    }
    std::uint64_t moved(const Conn &c, int side) const {  // by the verdict, either way
        return redirected(c, side) + held(c, side);
    }
    // Of side's bytes: written to the other socket (forwarded: and on their way there).
    std::uint64_t delivered(const Conn &c, int side) const {
        return written_bytes(c.fd[1 - side]) - c.base_written[1 - side];
    }
    std::uint64_t forwarded(const Conn &c, int side) const {
        return redirected(c, side) + c.taken[side] - c.pump[side].pending;
    }
    bool owes(const Conn &c, int side) const {  // held bytes not yet written to the other
        return held(c, side) != c.taken[side] || c.pump[side].pending > 0;
    }
    std::uint64_t backlog(const Conn &c, int side) const {  // forwarded, not delivered yet
        std::uint64_t f = forwarded(c, side), d = delivered(c, side);
        return f > d ? f - d : 0;
    }
    void run_pumps(std::uint32_t id);
    int run_pump(Conn &c, int from, int &failed);
    void tick();
    void finish(std::uint32_t id, bool reset_client, int reset_side = -1);
    void arm(std::uint32_t id, int side, std::uint32_t events, bool add = false);
    pp_tcp_stats *stats(const Conn &c) { return &maps_.stats[c.svc->cfg.id]; }
    void count(const Conn &c, __u64 pp_tcp_stats::*field, std::int64_t n = 1) {
        std::atomic_ref<__u64>(stats(c)->*field).fetch_add(static_cast<__u64>(n));
    }
    void count_relayed(const Conn &c, int from, std::int64_t n) {  // payload the daemon wrote
        count(c,
              from == kClient ? &pp_tcp_stats::tcp_bytes_to_backend
                              : &pp_tcp_stats::tcp_bytes_to_client,
              n);
    }
    void random_id(std::array<std::uint8_t, 16> &out);

    Datapath::TcpMaps maps_;
    LogFn log_;
    int ep_ = -1, wake_ = -1;
    std::thread thread_;
    std::mutex mu_;
    std::vector<std::function<void(Worker &)>> commands_;
    bool stopping_ = false;
    std::map<int, Listener> listeners_;
    std::vector<Conn> conns_;
    std::vector<std::uint32_t> free_;
    std::uint32_t slot_base_, slots_;
    std::vector<std::uint32_t> watched_;  // connections with a deadline
    std::size_t spliced_ = 0;             // connections in State::spliced
    Clock::time_point next_idle_scan_ = Clock::now() + kIdleScan;
    std::array<std::uint8_t, 4096> random_{};
    std::size_t random_left_ = 0;
};

void Worker::random_id(std::array<std::uint8_t, 16> &out) {
    if (random_left_ < out.size()) {
        std::size_t got = 0;
        while (got < random_.size()) {
            ssize_t n = getrandom(random_.data() + got, random_.size() - got, 0);
            if (n > 0) {
                got += static_cast<std::size_t>(n);
            }
        }
        random_left_ = random_.size();
    }
    random_left_ -= out.size();
    std::memcpy(out.data(), random_.data() + random_left_, out.size());
}

void Worker::arm(std::uint32_t id, int side, std::uint32_t events, bool add) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = conn_token(id, conns_[id].gen, side);
    epoll_ctl(ep_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, conns_[id].fd[side], &ev);
}

void Worker::run() {
    std::array<epoll_event, 256> events;
    while (!stopping_) {
        int timeout = watched_.empty() && spliced_ == 0 ? 1000 : static_cast<int>(kTick.count());
        int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout);
        for (int i = 0; i < n; i++) {
            std::uint64_t token = events[i].data.u64;
            if (token == kWakeToken) {
                std::uint64_t v;
                if (read(wake_, &v, sizeof v) < 0) {
                    // EAGAIN: another wake-up already drained it.
                }
                std::vector<std::function<void(Worker &)>> cmds;
                {
                    std::lock_guard lock(mu_);
                    cmds.swap(commands_);
                }
                for (auto &cmd : cmds) {
                    cmd(*this);
                }
            } else if (token & kListenerToken) {
                int fd = static_cast<int>(token & 0xFFFFFFFFu);
                auto it = listeners_.find(fd);
                if (it != listeners_.end()) {
                    accept_from(fd, it->second);
                }
            } else {
                auto id = static_cast<std::uint32_t>(token & 0xFFFFFFFFu) >> 1;
                if (id < conns_.size() && conns_[id].used &&
                    token == conn_token(id, conns_[id].gen, static_cast<int>(token & 1))) {
                    on_event(id, static_cast<int>(token & 1), events[i].events);
                }
            }
        }
        tick();
    }
}

void Worker::accept_from(int lfd, const Listener &l) {
    const std::shared_ptr<const ServiceRt> &svc = l.svc;
    for (int burst = 0; burst < 64; burst++) {
        sockaddr_storage peer{};
        socklen_t plen = sizeof peer;
        int fd =
            accept4(lfd, reinterpret_cast<sockaddr *>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                log_(errno_text("tcp: accept on service '" + svc->cfg.name + "'", errno));
            }
            return;
        }
        auto client = Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&peer));
        // The address the client dialled: the listener's, unless it is a wildcard or
        // sk_lookup steered the connection here from another address.
        std::optional<Endpoint> dialled = svc->cfg.transparent ? std::nullopt : l.local;
        if (!dialled) {
            sockaddr_storage local{};
            socklen_t llen = sizeof local;
            getsockname(fd, reinterpret_cast<sockaddr *>(&local), &llen);
            dialled = Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&local));
        }
        if (!client || !dialled) {
            close(fd);
            continue;
        }
        // A loopback client through a listener that others reach too: its leg's congestion
        // control is set now, unless the service names one (the listener has that).
        if (!l.loopback && client->addr.is_loopback() && svc->cfg.congestion.client.empty()) {
            set_congestion(fd, loopback_congestion());
        }
        std::uint32_t id;
        if (!free_.empty()) {
            id = free_.back();
            free_.pop_back();
        } else if (conns_.size() < slots_) {
            id = static_cast<std::uint32_t>(conns_.size());
            conns_.emplace_back();
            conns_[id].slot = slot_base_ + id;
        } else {
            close_with_reset(fd);  // as many connections as tcp_conns holds
            std::atomic_ref<__u64>(maps_.stats[svc->cfg.id].tcp_refused).fetch_add(1);
            continue;
        }
        Conn &c = conns_[id];
        c.used = true;
        c.fd[kClient] = fd;
        c.fd[kBackend] = -1;
        c.svc = svc;
        c.state = Conn::State::connecting;
        c.facts.client = *client;
        c.facts.dialled = *dialled;
        c.connected = false;
        c.tried = 0;
        c.backend =
            static_cast<std::size_t>(svc->next_backend.fetch_add(1) % svc->cfg.backends.size());
        c.sni_pending = svc->cfg.tlv.authority_from_sni && svc->cfg.header == HeaderMode::v2;
        c.client_waiting = c.corked = false;
        c.sni.clear();
        c.facts.sni = {};
        c.header_len = c.header_off = 0;
        for (int s : {kClient, kBackend}) {
            c.cookie[s] = c.base_written[s] = c.checked[s] = c.seen[s] = c.scanned[s] = 0;
            c.taken[s] = c.clear[s] = 0;
            c.fin[s] = c.shut[s] = c.hold[s] = c.copying[s] = false;
            c.pump[s].pending = c.pump[s].head = 0;
            c.pump[s].eof = c.pump[s].shut = false;
        }
        c.last_active = Clock::now();
        count(c, &pp_tcp_stats::tcp_accepted);
        count(c, &pp_tcp_stats::tcp_active);
        // Before the relay: FIN and errors, and the ClientHello for SNI; what else the
        // client sends waits in its socket for the relay's first read.
        arm(id, kClient, kAllEdges, true);
        start_connect(id);
    }
}

// Connects to c.backend, or the next one after a failure; resets the client when none is
// left.
void Worker::start_connect(std::uint32_t id) {
    Conn &c = conns_[id];
    const auto &backends = c.svc->cfg.backends;
    while (c.tried < backends.size()) {
        const Endpoint &b = backends[c.backend];
        c.tried++;
        if (!c.svc->is_up(c.backend)) {  // out of rotation after a failed health check
            c.backend = (c.backend + 1) % backends.size();
            continue;
        }
        sockaddr_storage ss{};
        socklen_t len = b.to_sockaddr(ss);
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 &&
            set_congestion(fd,
                           leg_congestion(c.svc->cfg.congestion.backend, b.addr.is_loopback())) &&
            (connect(fd, reinterpret_cast<sockaddr *>(&ss), len) == 0 || errno == EINPROGRESS)) {
            c.fd[kBackend] = fd;
            c.deadline = Clock::now() + c.svc->cfg.connect_timeout;
            arm(id, kBackend, kAllEdges, true);  // EPOLLOUT: connected
            watched_.push_back(id);
            return;
        }
        if (fd >= 0) {
            close(fd);
        }
        count(c, &pp_tcp_stats::tcp_backend_failed);
        c.backend = (c.backend + 1) % backends.size();
    }
    count(c, &pp_tcp_stats::tcp_no_backend);
    finish(id, true);
}

void Worker::on_event(std::uint32_t id, int side, std::uint32_t events) {
    Conn &c = conns_[id];
    switch (c.state) {
        case Conn::State::connecting:
            if (side == kBackend) {
                // A failed connect reports EPOLLERR; a completed one only EPOLLOUT.
                bool failed = (events & (EPOLLERR | EPOLLHUP)) != 0;
                if (!failed && (events & EPOLLOUT)) {
                    on_connected(id);
                } else if (failed) {
                    close(c.fd[kBackend]);
                    c.fd[kBackend] = -1;
                    count(c, &pp_tcp_stats::tcp_backend_failed);
                    c.backend = (c.backend + 1) % c.svc->cfg.backends.size();
                    start_connect(id);
                }
                return;
            }
            [[fallthrough]];
        case Conn::State::writing_header:
            if (side == kClient) {
                if (events & EPOLLERR) {
                    finish(id, false, is_reset(sock_error(c.fd[kClient])) ? kClient : -1);
                    return;
                }
                if (events & EPOLLRDHUP) {
                    c.fin[kClient] = true;  // passed on once the relay runs
                }
                if (events & EPOLLIN) {
                    c.client_waiting = !c.fin[kClient];  // bytes, not only a FIN
                }
                if (c.sni_pending && (events & (EPOLLIN | EPOLLRDHUP))) {
                    peek_sni(id);
                }
            } else if (events & EPOLLERR) {
                finish(id, false, is_reset(sock_error(c.fd[kBackend])) ? kBackend : -1);
            } else if (events & EPOLLOUT) {
                send_header(id);
            }
            return;
        case Conn::State::spliced:
            on_spliced_event(id, side, events);
            return;
        case Conn::State::pumping:
            c.last_active = Clock::now();  // an event on a relayed socket: not idle
            run_pumps(id);
            return;
    }
}

void Worker::on_connected(std::uint32_t id) {
    Conn &c = conns_[id];
    c.connected = true;
    if (c.sni_pending) {
        c.deadline = Clock::now() + kSniWait;  // a client that says nothing first
    }
    maybe_send_header(id);
}

void Worker::peek_sni(std::uint32_t id) {
    Conn &c = conns_[id];
    std::array<std::uint8_t, kSniPeek> buf;
    ssize_t n = recv(c.fd[kClient], buf.data(), buf.size(), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    SniResult r = find_sni(std::span(buf.data(), n > 0 ? static_cast<std::size_t>(n) : 0));
    if (r.kind == SniResult::need_more && n > 0 && static_cast<std::size_t>(n) < buf.size() &&
        !c.fin[kClient]) {
        return;
    }
    if (r.kind == SniResult::found) {
        c.sni.assign(r.name);
    }
    c.sni_pending = false;
    maybe_send_header(id);
}

void Worker::maybe_send_header(std::uint32_t id) {
    Conn &c = conns_[id];
    if (!c.connected || c.sni_pending) {
        return;
    }
    if (c.header.size() < c.svc->max_header) {
        c.header.resize(c.svc->max_header);
    }
    c.facts.sni = c.sni;
    if (c.svc->cfg.tlv.unique_id) {
        random_id(c.facts.unique_id);
    }
    if (build_header(c.svc->cfg, c.facts, c.header, c.header_len) != proxy::Error::ok) {
        log_("tcp: cannot build the header of service '" + c.svc->cfg.name + "'");
        finish(id, true);
        return;
    }
    c.header_off = 0;
    c.state = Conn::State::writing_header;
    send_header(id);
}

void Worker::send_header(std::uint32_t id) {
    Conn &c = conns_[id];
    // In splice and copy modes the relay's first write follows at once and pushes both.
    c.corked = c.client_waiting && c.svc->cfg.relay != RelayMode::sockmap;
    while (c.header_off < c.header_len) {
        ssize_t n = send(c.fd[kBackend], c.header.data() + c.header_off,
                         c.header_len - c.header_off, MSG_NOSIGNAL | (c.corked ? MSG_MORE : 0));
        if (n < 0) {
            if (errno == EAGAIN) {
                return;  // the next EPOLLOUT edge resumes
            }
            if (errno == EINTR) {
                continue;
            }
            finish(id, false, is_reset(errno) ? kBackend : -1);
            return;
        }
        c.header_off += static_cast<std::size_t>(n);
    }
    count(c, &pp_tcp_stats::tcp_header_bytes, static_cast<std::int64_t>(c.header_len));
    start_relay(id);
}

void Worker::start_relay(std::uint32_t id) {
    Conn &c = conns_[id];
    if (c.svc->cfg.relay == RelayMode::sockmap && splice_in_kernel(id)) {
        return;
    }
    c.state = Conn::State::pumping;
    for (int s : {kClient, kBackend}) {
        if (!prepare_pump(c, s)) {
            finish(id, true);
            return;
        }
    }
    std::uint32_t gen = c.gen;
    run_pumps(id);  // what came before the relay started; edges bring the rest
    if (c.used && c.gen == gen && c.corked) {  // nothing followed the header after all
        int one = 1;
        setsockopt(c.fd[kBackend], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // pushes it
        c.corked = false;
    }
}

// A pipe (sockmap and splice modes) or a buffer (copy mode) for the bytes of side `from`.
bool Worker::prepare_pump(Conn &c, int from) {
    Pump &p = c.pump[from];
    p.pending = p.head = 0;
    p.eof = p.shut = false;  // a FIN seen early is read as the end of the stream
    p.use_pipe = c.svc->cfg.relay != RelayMode::copy;
    if (p.use_pipe && p.pipe[0] < 0) {
        if (pipe2(p.pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
            log_(errno_text("tcp: pipe", errno));
            return false;
        }
        fcntl(p.pipe[1], F_SETPIPE_SZ, static_cast<int>(kPipeSize));  // else the default
    }
    if (!p.use_pipe && p.buf.size() < kCopyBuffer) {
        p.buf.resize(kCopyBuffer);
    }
    return true;
}

// Both sockets into the sockmap; from here the kernel moves the bytes. False when a
// socket is no longer established (a client that sent FIN before the backend answered):
// the sockmap takes only established sockets, and the connection is pumped by splice(2).
bool Worker::splice_in_kernel(std::uint32_t id) {
    Conn &c = conns_[id];
    for (int s : {kClient, kBackend}) {
        c.cookie[s] = cookie_of(c.fd[s]);
        c.base_written[s] = written_bytes(c.fd[s]);
        pp_tcp_conn &k = kconn(c);
        for (__u64 *v : {&k.redirected[s], &k.held[s], &k.copied[s]}) {
            std::atomic_ref<__u64>(*v).store(0);
        }
        std::atomic_ref<__u32>(k.hold[s]).store(0);
    }
    std::atomic_ref<__u32>(kconn(c).broken).store(0);
    bool ok = true;
    for (int s : {kClient, kBackend}) {  // targets first: a redirect must find its peer
        std::uint64_t fd = static_cast<std::uint64_t>(c.fd[s]);
        ok = ok && bpf_map_update_elem(maps_.targets, &c.cookie[s], &fd, BPF_NOEXIST) == 0;
    }
    for (int s : {kClient, kBackend}) {
        pp_tcp_peer peer{};
        peer.peer_cookie = c.cookie[1 - s];
        peer.conn = c.slot;
        peer.service_id = c.svc->cfg.id;
        peer.dir = s == kClient ? PP_TCP_TO_BACKEND : PP_TCP_TO_CLIENT;
        ok = ok && bpf_map_update_elem(maps_.peers, &c.cookie[s], &peer, BPF_NOEXIST) == 0;
    }
    for (int s : {kClient, kBackend}) {
        std::uint64_t fd = static_cast<std::uint64_t>(c.fd[s]);
        ok = ok && bpf_map_update_elem(maps_.socks, &c.cookie[s], &fd, BPF_NOEXIST) == 0;
    }
    if (!ok) {
        int err = errno;
        for (int s : {kClient, kBackend}) {
            bpf_map_delete_elem(maps_.socks, &c.cookie[s]);
            bpf_map_delete_elem(maps_.peers, &c.cookie[s]);
            bpf_map_delete_elem(maps_.targets, &c.cookie[s]);
        }
        if (err != EOPNOTSUPP) {
            log_(errno_text("tcp: add sockets to the sockmap", err));
            finish(id, true);
            return true;
        }
        return false;
    }
    // Bytes queued before a socket joined the map are redirected once the receive low
    // watermark is set again.
    int one = 1;
    for (int s : {kClient, kBackend}) {
        setsockopt(c.fd[s], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    }
    c.state = Conn::State::spliced;
    spliced_++;
    c.last_active = Clock::now();
    for (int s : {kClient, kBackend}) {
        arm(id, s, c.fin[s] ? 0u : kRdHup);  // an early FIN is passed on by tick()
    }
    return true;
}

// Side `side` sent FIN: once every byte it sent has been written to the other socket,
// shut that socket's write side. Called from tick(): the verdict's counts must also have
// stayed the same for a whole tick, so bytes still on their way through it are not
// overtaken.
void Worker::try_pass_fin(std::uint32_t id, int side) {
    Conn &c = conns_[id];
    int other = 1 - side;
    if (c.shut[other]) {
        return;
    }
    std::uint64_t m = moved(c, side);
    bool stable = m == c.seen[side];
    c.seen[side] = m;
    if (!stable || owes(c, side) || delivered(c, side) < forwarded(c, side)) {
        return;
    }
    shutdown(c.fd[other], SHUT_WR);
    c.shut[other] = true;
    if (c.shut[kClient] && c.shut[kBackend]) {
        finish(id, false);
    }
}

// Holds back side `side` while too many of its bytes wait in the kernel for the other
// socket, and has its held bytes copied on once every byte redirected before them is
// through.
void Worker::watch_backlog(std::uint32_t id, int side) {
    Conn &c = conns_[id];
    std::uint64_t r = redirected(c, side);
    bool owed = owes(c, side);
    if (!c.hold[side] && !owed && !c.copying[side] && r - c.checked[side] < kBacklogCheck) {
        return;
    }
    c.checked[side] = r;
    std::uint64_t waiting = backlog(c, side);
    if (waiting == 0) {
        c.clear[side] = r;
    }
    bool hold = c.hold[side] ? waiting >= kBacklogLow : waiting > kBacklogHigh;
    if (hold != c.hold[side]) {
        c.hold[side] = hold;
        std::atomic_ref<__u32>(kconn(c).hold[side]).store(hold ? 1 : 0);
    }
    if (c.copying[side] || (owed && waiting == 0)) {
        if (!c.copying[side]) {
            c.copying[side] = true;  // every redirected byte is through: the held ones follow
            arm_spliced(id);
        }
        copy_held(id, side);  // also ends the copying once nothing is owed or held
    }
}

// Copies side `side`'s held bytes (its own sockmap queue, which only recv() reads) to the
// other socket, as the other socket takes them. Once none is owed, the verdict redirects
// again (pp_tcp_conn.copied catches up with held).
void Worker::copy_held(std::uint32_t id, int side) {
    Conn &c = conns_[id];
    Pump &p = c.pump[side];
    if (p.buf.size() < kCopyBuffer) {
        p.buf.resize(kCopyBuffer);
    }
    std::uint64_t r = redirected(c, side);
    if (r != c.clear[side]) {  // redirected since: held bytes must not overtake those
        if (backlog(c, side) > 0) {
            return;
        }
        c.clear[side] = r;
    }
    for (;;) {
        if (p.pending > 0) {
            ssize_t n =
                send(c.fd[1 - side], p.buf.data() + p.head, p.pending, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                return;  // full (EPOLLOUT resumes), or an error epoll reports
            }
            p.pending -= static_cast<std::size_t>(n);
            p.head += static_cast<std::size_t>(n);
            std::atomic_ref<__u64>(kconn(c).copied[side]).store(c.taken[side] - p.pending);
            count_relayed(c, side, n);
            count(c, &pp_tcp_stats::tcp_bytes_held, n);
            continue;
        }
        std::uint64_t owed = held(c, side) - c.taken[side];
        if (owed == 0) {
            if (!c.hold[side]) {
                c.copying[side] = false;
                arm_spliced(id);
            }
            return;
        }
        ssize_t n = recv(c.fd[side], p.buf.data(), std::min<std::uint64_t>(owed, p.buf.size()),
                         MSG_DONTWAIT);
        if (n <= 0) {
            return;  // counted by the verdict, not queued yet: EPOLLIN resumes
        }
        c.taken[side] += static_cast<std::uint64_t>(n);
        p.pending = static_cast<std::size_t>(n);
        p.head = 0;
    }
}

// Epoll interest of a spliced connection's sockets: FIN and errors always; readable and
// writable for the directions whose held bytes are being copied.
void Worker::arm_spliced(std::uint32_t id) {
    Conn &c = conns_[id];
    for (int s : {kClient, kBackend}) {
        std::uint32_t ev =
            (c.fin[s] ? 0u : kRdHup) | (c.copying[s] ? kIn : 0u) | (c.copying[1 - s] ? kOut : 0u);
        arm(id, s, ev == 0 ? 0u : ev | kEt);
    }
}

void Worker::on_spliced_event(std::uint32_t id, int side, std::uint32_t events) {
    Conn &c = conns_[id];
    if (events & EPOLLERR) {
        int err = sock_error(c.fd[side]);
        if (is_reset(err)) {
            finish(id, false, side);
            return;
        }
        // EPIPE and the like right after a shutdown we passed on: not a reset.
    }
    // Closed both ways although we never shut its write side: reset, or timed out. Its
    // error may be gone already, taken by the kernel's own send of redirected bytes.
    if ((events & EPOLLHUP) && !c.shut[side]) {
        finish(id, false, side);
        return;
    }
    if ((events & (EPOLLRDHUP | EPOLLHUP)) && !c.fin[side]) {
        c.fin[side] = true;  // passed on by tick() once its bytes are through
        arm_spliced(id);
    }
    for (int s : {kClient, kBackend}) {
        if (c.copying[s]) {
            copy_held(id, s);
        }
    }
}

// Moves what it can from side `from` to the other. Returns 0, or an errno that ends the
// connection and sets `failed` to the side whose socket returned it.
int Worker::run_pump(Conn &c, int from, int &failed) {
    Pump &p = c.pump[from];
    int src = c.fd[from], dst = c.fd[1 - from];
    bool use_pipe = p.use_pipe;
    for (;;) {
        if (p.pending > 0) {
            ssize_t n = use_pipe ? splice(p.pipe[0], nullptr, dst, nullptr, p.pending,
                                          SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                                 : send(dst, p.buf.data() + p.head, p.pending, MSG_NOSIGNAL);
            if (n < 0) {
                failed = 1 - from;
                return errno == EAGAIN ? 0 : errno == EINTR ? 0 : errno;
            }
            p.pending -= static_cast<std::size_t>(n);
            p.head += static_cast<std::size_t>(n);
            count_relayed(c, from, n);
            if (from == kClient) {
                c.corked = false;  // a write without MSG_MORE sent the header with it
            }
            continue;
        }
        if (p.eof) {
            if (from == kClient) {
                c.corked = false;  // the FIN pushes what is queued (shutdown or close)
            }
            if (!p.shut) {
                // The other way done as well: finish() closes both, and close() sends
                // this FIN (both receive queues are read to their FIN, so no reset).
                if (!c.pump[1 - from].shut) {
                    shutdown(dst, SHUT_WR);
                }
                p.shut = true;
            }
            return 0;
        }
        p.head = 0;
        ssize_t n = use_pipe ? splice(src, nullptr, p.pipe[1], nullptr, kPipeSize,
                                      SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                             : recv(src, p.buf.data(), p.buf.size(), 0);
        if (n < 0) {
            failed = from;
            return errno == EAGAIN || errno == EINTR ? 0 : errno;
        }
        if (n == 0) {
            p.eof = true;
            continue;
        }
        p.pending = static_cast<std::size_t>(n);
    }
}

void Worker::run_pumps(std::uint32_t id) {
    Conn &c = conns_[id];
    for (int s : {kClient, kBackend}) {
        int failed = -1;
        int err = run_pump(c, s, failed);
        if (err == 0) {
            continue;
        }
        // A reset of either socket is passed on as a reset; anything else closes both.
        // EPIPE is one too: nothing is written after our own shutdown, so the socket was
        // reset, and the reset was taken by an earlier splice that returned the bytes it
        // had moved before it.
        finish(id, false, is_reset(err) || err == EPIPE ? failed : -1);
        return;
    }
    if (c.pump[kClient].shut && c.pump[kBackend].shut) {
        finish(id, false);
    }
}

void Worker::tick() {
    auto now = Clock::now();
    std::vector<std::uint32_t> watched;
    watched.swap(watched_);
    for (std::uint32_t id : watched) {
        Conn &c = conns_[id];
        if (!c.used) {
            continue;
        }
        if (c.state == Conn::State::connecting && now >= c.deadline) {
            if (!c.connected) {  // connect timed out: the next backend
                close(c.fd[kBackend]);
                c.fd[kBackend] = -1;
                count(c, &pp_tcp_stats::tcp_backend_failed);
                c.backend = (c.backend + 1) % c.svc->cfg.backends.size();
                start_connect(id);
            } else {  // no ClientHello in time: a header without AUTHORITY
                c.sni_pending = false;
                maybe_send_header(id);
            }
            continue;
        }
        if (c.state == Conn::State::connecting) {
            watched_.push_back(id);
        }
    }
    if (spliced_ > 0) {
        for (std::uint32_t id = 0; id < conns_.size(); id++) {
            Conn &c = conns_[id];
            if (c.used && c.state == Conn::State::spliced &&
                std::atomic_ref<__u32>(kconn(c).broken).load() != 0) {
                log_(
                    "tcp: a retransmitted segment repeated more bytes than the verdict could "
                    "cut; connection reset rather than passing them twice");
                finish(id, true, kClient);
                continue;
            }
            for (int s : {kClient, kBackend}) {
                if (!c.used || c.state != Conn::State::spliced) {
                    break;
                }
                watch_backlog(id, s);
                if (c.used && c.fin[s] && !c.shut[1 - s]) {
                    try_pass_fin(id, s);
                }
            }
        }
    }
    if (now < next_idle_scan_) {
        return;
    }
    next_idle_scan_ = now + kIdleScan;
    for (std::uint32_t id = 0; id < conns_.size(); id++) {
        Conn &c = conns_[id];
        if (!c.used || (c.state != Conn::State::spliced && c.state != Conn::State::pumping)) {
            continue;
        }
        if (c.state == Conn::State::spliced) {
            for (int s : {kClient, kBackend}) {
                std::uint64_t m = moved(c, s);
                if (m != c.scanned[s] || c.hold[s] || c.copying[s]) {
                    c.last_active = now;  // moved since the last scan, or held back
                }
                c.scanned[s] = m;
            }
        }
        if (now - c.last_active >= c.svc->cfg.idle_timeout) {
            count(c, &pp_tcp_stats::tcp_idle_closed);
            finish(id, false);
        }
    }
}

// Ends connection `id`: removes it from the maps and closes both sockets; the side that
// was reset (if any) passes the reset on, and `reset_client` resets the client.
void Worker::finish(std::uint32_t id, bool reset_client, int reset_side) {
    Conn &c = conns_[id];
    if (c.state == Conn::State::spliced) {
        for (int s : {kClient, kBackend}) {  // peers first: the verdict then passes
            bpf_map_delete_elem(maps_.peers, &c.cookie[s]);
        }
        spliced_--;
    }
    if (reset_side >= 0) {
        count(c, &pp_tcp_stats::tcp_resets);
    }
    for (int s : {kClient, kBackend}) {
        if (c.fd[s] < 0) {
            continue;
        }
        bool reset = (s == kClient && reset_client) || (reset_side >= 0 && s != reset_side);
        if (reset) {
            close_with_reset(c.fd[s]);
        } else {
            close(c.fd[s]);  // also leaves tcp_socks and tcp_targets
        }
        c.fd[s] = -1;
    }
    for (Pump &p : c.pump) {
        if (p.pending > 0 && p.use_pipe) {  // bytes left in the pipe: not for the next one
            close(p.pipe[0]);
            close(p.pipe[1]);
            p.pipe[0] = p.pipe[1] = -1;
        }
    }
    count(c, &pp_tcp_stats::tcp_active, -1);
    c.used = false;
    c.gen++;
    c.svc.reset();
    free_.push_back(id);
}

// ---- Server ------------------------------------------------------------------------------

// A service's listening sockets: one per worker for each address it binds.
struct Server::Listening {
    std::shared_ptr<ServiceRt> rt;
    bool handed = false;                // the workers own the sockets (and close them)
    std::vector<std::vector<int>> fds;  // [worker][n]
    std::vector<std::uint32_t> slots;   // tcp_listen slots filled (transparent)
};

namespace {

// Where a service's sockets listen: the service's own addresses and ports, or for a
// transparent service a loopback port per family that sk_lookup steers to.
struct Bind {
    Endpoint at;
    bool dual_stack = false;
    int slot = -1;  // tcp_listen slot for transparent services
};

std::vector<Bind> binds_of(const Service &svc) {
    std::vector<Bind> out;
    if (svc.transparent) {
        bool v4 = false, v6 = false;
        for (const auto &l : svc.listen) {
            v4 = v4 || l.addr.is_v4() || l.dual_stack();
            v6 = v6 || !l.addr.is_v4();
        }
        if (v4) {
            out.push_back({*Endpoint::parse("127.0.0.1:0"), false,
                           PP_TCP_LISTEN_SLOT(static_cast<int>(svc.id), 0)});
        }
        if (v6) {
            out.push_back({*Endpoint::parse("[::1]:0"), false,
                           PP_TCP_LISTEN_SLOT(static_cast<int>(svc.id), 1)});
        }
        return out;
    }
    for (const auto &l : svc.listen) {
        for (unsigned port = l.port_first; port <= l.port_last; port++) {
            out.push_back({Endpoint{l.addr, static_cast<std::uint16_t>(port)}, l.dual_stack()});
        }
    }
    return out;
}

int open_listener(const Bind &b, std::uint16_t port, const Service &svc) {
    sockaddr_storage ss{};
    Endpoint at = b.at;
    at.port = port;
    socklen_t len = at.to_sockaddr(ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw std::runtime_error(errno_text("tcp: socket for service '" + svc.name + "'", errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ss.ss_family == AF_INET6) {
        int v6only = b.dual_stack ? 0 : 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
        setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
    } else {
        setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
    }
    // Accepted connections inherit it (unless their route names a congctl).
    if (!set_congestion(fd, leg_congestion(svc.congestion.client, loopback_listener(svc, at))) &&
        !svc.congestion.client.empty()) {
        int err = errno;
        close(fd);
        throw std::runtime_error(congestion_error(svc.name, "client", svc.congestion.client, err));
    }
    if (bind(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0 || listen(fd, 4096) != 0) {
        int err = errno;
        close(fd);
        throw std::runtime_error(errno_text(
            "tcp: listen on " + at.to_string() + " for service '" + svc.name + "'", err));
    }
    return fd;
}

std::uint16_t bound_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len);
    auto ep = Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&ss));
    return ep ? ep->port : 0;
}

// Refuses a backend-leg congestion control this kernel cannot set before a connection
// needs it (the client leg is checked by opening the listeners).
void probe_backend_congestion(const Service &svc) {
    const std::string &name = svc.congestion.backend;
    if (name.empty()) {
        return;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw std::runtime_error(errno_text("tcp: socket for service '" + svc.name + "'", errno));
    }
    bool ok = set_congestion(fd, name);
    int err = errno;
    close(fd);
    if (!ok) {
        throw std::runtime_error(congestion_error(svc.name, "backend", name, err));
    }
}

// Same sockets serve `a` and `b`.
bool same_listening(const Service &a, const Service &b) {
    if (a.transparent != b.transparent || a.listen.size() != b.listen.size() || a.id != b.id ||
        a.congestion.client != b.congestion.client) {
        return false;
    }
    for (std::size_t i = 0; i < a.listen.size(); i++) {
        if (to_string(a.listen[i]) != to_string(b.listen[i])) {
            return false;
        }
    }
    return true;
}

// A new runtime for `svc`, keeping the health of backends `old` also had.
std::shared_ptr<ServiceRt> runtime_of(const Service &svc, const ServiceRt *old) {
    auto rt = std::make_shared<ServiceRt>(svc);
    for (std::size_t i = 0; old && i < svc.backends.size(); i++) {
        for (std::size_t j = 0; j < old->cfg.backends.size(); j++) {
            if (old->cfg.backends[j] == svc.backends[i]) {
                rt->up[i] = old->is_up(j);
            }
        }
    }
    return rt;
}

}  // namespace

Server::Server(const Config &cfg, const Datapath::TcpMaps &maps, LogFn log, unsigned workers)
    : maps_(maps), log_(std::move(log)) {
    if (workers == 0) {
        workers = std::max(1u, std::thread::hardware_concurrency());
    }
    health_ = std::make_unique<HealthChecker>(log_);
    std::uint32_t slots = PP_MAX_TCP_CONNS / workers;
    for (unsigned i = 0; i < workers; i++) {
        workers_.push_back(std::make_unique<Worker>(maps_, log_, i * slots, slots));
    }
    apply(cfg);
}

Server::~Server() {
    for (auto &l : services_) {
        close_service(*l);
    }
    workers_.clear();  // joins; each closes its connections
}

void Server::open_service(const Service &svc, Listening &out) {
    out.fds.assign(workers_.size(), {});
    try {
        for (const Bind &b : binds_of(svc)) {
            std::uint16_t port = b.at.port;
            for (std::size_t w = 0; w < workers_.size(); w++) {
                int fd = open_listener(b, port, svc);
                out.fds[w].push_back(fd);
                port = bound_port(fd);  // the others join the first one's port
            }
            if (b.slot >= 0) {
                std::uint64_t fd = static_cast<std::uint64_t>(out.fds[0].back());
                std::uint32_t slot = static_cast<std::uint32_t>(b.slot);
                if (bpf_map_update_elem(maps_.listen, &slot, &fd, BPF_ANY) != 0) {
                    throw std::runtime_error(
                        errno_text("tcp: add listener of '" + svc.name + "' to tcp_listen", errno));
                }
                out.slots.push_back(slot);
            }
        }
    } catch (...) {
        close_service(out);
        throw;
    }
}

// Stops accepting (connections already accepted run on).
void Server::close_service(Listening &l) {
    for (std::uint32_t slot : l.slots) {
        bpf_map_delete_elem(maps_.listen, &slot);
    }
    l.slots.clear();
    for (std::size_t w = 0; w < l.fds.size(); w++) {
        for (int fd : l.fds[w]) {
            if (l.handed) {
                workers_[w]->post([fd](Worker &wk) { wk.remove_listener(fd); });
            } else {
                close(fd);
            }
        }
    }
    l.fds.clear();
}

void Server::apply(const Config &cfg) {
    // Open what is new first: a failure then leaves the running set as it was.
    std::vector<std::unique_ptr<Listening>> next;
    std::vector<int> reuse;  // next[i] takes services_[reuse[i]]'s sockets, or -1
    std::vector<bool> taken(services_.size(), false);
    try {
        for (const auto &svc : cfg.services) {
            if (svc.protocol != Protocol::tcp) {
                continue;
            }
            probe_backend_congestion(svc);
            auto l = std::make_unique<Listening>();
            int from = -1;
            for (std::size_t i = 0; i < services_.size() && from < 0; i++) {
                if (!taken[i] && same_listening(services_[i]->rt->cfg, svc)) {
                    taken[i] = true;
                    from = static_cast<int>(i);
                }
            }
            const ServiceRt *old = nullptr;
            for (const auto &o : services_) {
                old = o->rt->cfg.name == svc.name ? o->rt.get() : old;
            }
            if (from < 0) {
                open_service(svc, *l);
            }
            l->rt = runtime_of(svc, old);
            next.push_back(std::move(l));
            reuse.push_back(from);
        }
    } catch (...) {
        for (std::size_t i = 0; i < next.size(); i++) {
            if (reuse[i] < 0) {
                close_service(*next[i]);
            }
        }
        throw;
    }
    for (std::size_t i = 0; i < services_.size(); i++) {
        if (!taken[i]) {
            close_service(*services_[i]);
        }
    }
    for (std::size_t i = 0; i < next.size(); i++) {
        Listening &l = *next[i];
        if (reuse[i] >= 0) {
            Listening &old = *services_[static_cast<std::size_t>(reuse[i])];
            l.fds = std::move(old.fds);
            l.slots = std::move(old.slots);
        }
        bool fresh = reuse[i] < 0;
        for (std::size_t w = 0; w < l.fds.size(); w++) {
            std::shared_ptr<const ServiceRt> rt = l.rt;
            workers_[w]->post([fds = l.fds[w], rt, fresh](Worker &wk) {
                for (int fd : fds) {
                    if (fresh) {
                        wk.add_listener(fd, rt);
                    } else {
                        wk.set_service(fd, rt);
                    }
                }
            });
        }
        l.handed = true;
    }
    services_ = std::move(next);
    std::vector<std::shared_ptr<ServiceRt>> rts;
    for (const auto &l : services_) {
        rts.push_back(l->rt);
    }
    health_->set(std::move(rts));
    std::size_t n = services_.size();
    if (n > 0) {
        log_("tcp: serving " + std::to_string(n) + " service" + (n == 1 ? "" : "s") + " with " +
             std::to_string(workers_.size()) + " workers");
    }
}

}  // namespace ppinject::tcp
