#include "support/receivers.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "sys/error.hpp"

namespace pptest {

using ppinject::Endpoint;
using ppinject::IpAddress;

namespace {

// Debian's paths; tools/install-deps.sh installs them. A missing one is a test failure
// with this hint, not a skip.
constexpr const char *kNginx = "/usr/sbin/nginx";
constexpr const char *kHaproxy = "/usr/sbin/haproxy";
// What every nginx and HAProxy of the project shares (the bench's proxies too); each
// receiver adds its own role: listening for PROXY headers, logging what they said.
const std::string kPeers = std::string(PPINJECT_SOURCE_DIR) + "/tools/peers/";

// Marks our per-connection log lines, so error lines in the same output are told apart.
constexpr const char *kSeenTag = "ppt-seen ";

void require_file(const char *path, const std::string &what) {
    if (access(path, F_OK) != 0) {
        throw std::runtime_error(what + " not found at " + path +
                                 ": run tools/install-deps.sh (it installs the receivers)");
    }
}

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A value of our log format: "-" (nginx) or an empty field means "not set".
std::optional<Endpoint> endpoint_of(const std::string &addr, const std::string &port) {
    if (addr.empty() || addr == "-" || port.empty() || port == "-") {
        return std::nullopt;
    }
    auto ip = IpAddress::parse(addr);
    auto p = ppinject::parse_port(port);
    if (!ip || !p) {
        return std::nullopt;
    }
    return Endpoint{*ip, *p};
}

// Lines "ppt-seen ci=... cp=... di=... dp=... ri=... rp=... st=..." (each receiver writes
// the fields it has; see the log formats below).
std::vector<Seen> parse_seen(const std::string &text) {
    std::vector<Seen> out;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        auto at = line.find(kSeenTag);
        if (at == std::string::npos) {
            continue;
        }
        std::istringstream fields(line.substr(at + std::strlen(kSeenTag)));
        std::string field, ci, cp, di, dp, ri, rp, st;
        while (fields >> field) {
            auto eq = field.find('=');
            if (eq == std::string::npos) {
                continue;
            }
            std::string key = field.substr(0, eq), value = field.substr(eq + 1);
            for (auto [k, dst] : {std::pair{"ci", &ci},
                                  {"cp", &cp},
                                  {"di", &di},
                                  {"dp", &dp},
                                  {"ri", &ri},
                                  {"rp", &rp},
                                  {"st", &st}}) {
                if (key == k) {
                    *dst = value;
                }
            }
        }
        out.push_back(
            Seen{endpoint_of(ci, cp), endpoint_of(di, dp), endpoint_of(ri, rp), st, line});
    }
    return out;
}

// Listening TCP sockets in the network namespace of `pid`, from /proc/PID/net/tcp{,6}:
// "sl local_address rem_address st ...", addresses as hex 32-bit words in host byte order
// (memcpy of the parsed word gives the bytes back), port in hex, state 0A = LISTEN.
std::set<std::pair<std::array<std::uint8_t, 16>, std::uint16_t>> listening(int pid) {
    std::set<std::pair<std::array<std::uint8_t, 16>, std::uint16_t>> out;
    for (bool v6 : {false, true}) {
        std::istringstream table(
            read_file("/proc/" + std::to_string(pid) + "/net/" + (v6 ? "tcp6" : "tcp")));
        std::string line;
        std::getline(table, line);  // header
        while (std::getline(table, line)) {
            std::istringstream f(line);
            std::string sl, local, remote, state;
            if (!(f >> sl >> local >> remote >> state) || state != "0A") {
                continue;
            }
            auto colon = local.find(':');
            std::string hex = local.substr(0, colon);
            if (colon == std::string::npos || hex.size() != (v6 ? 32u : 8u)) {
                continue;
            }
            std::uint8_t raw[16];
            for (std::size_t w = 0; w < hex.size() / 8; w++) {
                auto word =
                    static_cast<std::uint32_t>(std::stoul(hex.substr(w * 8, 8), nullptr, 16));
                std::memcpy(raw + w * 4, &word, 4);
            }
            std::array<std::uint8_t, 16> b{};
            if (v6) {
                std::memcpy(b.data(), raw, 16);
            } else {
                std::array<std::uint8_t, 4> a;
                std::memcpy(a.data(), raw, 4);
                b = IpAddress::v4(a).mapped();
            }
            out.insert(
                {b, static_cast<std::uint16_t>(std::stoul(local.substr(colon + 1), nullptr, 16))});
        }
    }
    return out;
}

std::string make_temp_dir(const std::string &kind) {
    std::string tmpl = "/tmp/ppt-" + kind + "-XXXXXX";
    if (!mkdtemp(tmpl.data())) {
        throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    }
    return tmpl;
}

// The address as a config file wants it: 192.0.2.1:7000 or [2001:db8::1]:7000.
std::string listen_text(const Endpoint &e) {
    return e.to_string();
}

}  // namespace

// ---- EchoServer ---------------------------------------------------------------------------

EchoServer::EchoServer(const Netns &ns, const Endpoint &bind) {
    sockaddr_storage ss{};
    socklen_t len = bind.to_sockaddr(ss);
    listen_fd_ = ns.socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK);
    int one = 1;
    if (setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(listen_fd_.get(), reinterpret_cast<sockaddr *>(&ss), len) != 0 ||
        ::listen(listen_fd_.get(), 4096) != 0 ||
        getsockname(listen_fd_.get(), reinterpret_cast<sockaddr *>(&ss), &len) != 0) {
        int err = -errno;
        throw std::runtime_error(ppinject::error_text("echo server on " + bind.to_string(), err));
    }
    endpoint_ = *Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&ss));
    wake_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_fd_) {
        int err = -errno;
        throw std::runtime_error(ppinject::error_text("echo server's eventfd", err));
    }
    thread_ = std::thread([this] { serve(); });
}

EchoServer::~EchoServer() {
    std::uint64_t one = 1;
    if (write(wake_fd_.get(), &one, sizeof one) != sizeof one) {
        std::abort();  // the thread would never stop and join() would hang
    }
    thread_.join();
}

void EchoServer::serve() {
    // Per connection: bytes read and not yet written back, and whether the peer sent FIN.
    struct Conn {
        ppinject::Fd fd;
        std::string pending;
        bool eof = false;
    };
    constexpr std::size_t kMaxPending = 1 << 20;
    std::vector<Conn> conns;
    std::vector<char> buf(64 * 1024);
    for (;;) {
        std::vector<pollfd> fds = {{wake_fd_.get(), POLLIN, 0}, {listen_fd_.get(), POLLIN, 0}};
        for (const Conn &c : conns) {
            short events = 0;
            if (!c.eof && c.pending.size() < kMaxPending) {
                events |= POLLIN;
            }
            if (!c.pending.empty()) {
                events |= POLLOUT;
            }
            fds.push_back({c.fd.get(), events, 0});
        }
        if (poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (fds[0].revents) {
            break;
        }
        std::vector<Conn> next;
        for (std::size_t i = 0; i < conns.size(); i++) {
            Conn &c = conns[i];
            short re = fds[i + 2].revents;
            bool dead = false;
            if (!c.eof && (re & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t n = recv(c.fd.get(), buf.data(), buf.size(), 0);
                if (n > 0) {
                    c.pending.append(buf.data(), static_cast<std::size_t>(n));
                } else if (n == 0) {
                    c.eof = true;
                } else if (errno != EAGAIN && errno != EINTR) {
                    dead = true;
                }
            }
            if (!dead && !c.pending.empty() && (re & (POLLOUT | POLLHUP | POLLERR))) {
                ssize_t n = send(c.fd.get(), c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
                if (n > 0) {
                    c.pending.erase(0, static_cast<std::size_t>(n));
                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                    dead = true;
                }
            }
            // Everything echoed and the peer is done: our FIN ends the connection cleanly
            // (all input was read, so close() sends no reset).
            if (!dead && c.eof && c.pending.empty()) {
                shutdown(c.fd.get(), SHUT_WR);
                dead = true;
            }
            if (!dead) {
                next.push_back(std::move(c));
            }  // else closed with the old list
        }
        conns = std::move(next);
        if (fds[1].revents & POLLIN) {
            ppinject::Fd fd(
                accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (fd) {
                conns.push_back(Conn{std::move(fd), {}, false});
                accepted_++;
            }
        }
    }
}

// ---- Receiver -----------------------------------------------------------------------------

Receiver::Receiver(std::string kind, const Netns &ns, std::vector<Endpoint> listen)
    : kind_(std::move(kind)), ns_(ns), listen_(std::move(listen)) {
    dir_ = make_temp_dir(kind_);
    try {
        echo_ = std::make_unique<EchoServer>(ns_, *Endpoint::parse("127.0.0.1:0"));
    } catch (...) {
        std::filesystem::remove_all(dir_);
        throw;
    }
}

Receiver::~Receiver() {
    if (child_) {
        child_->stop(SIGTERM, std::chrono::seconds(5));
        child_.reset();
    }
    echo_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

void Receiver::start(const std::string &config_name, const std::string &config,
                     std::vector<std::string> argv) {
    config_ = config;
    std::ofstream(dir_ + "/" + config_name) << config;
    // nsenter joins the namespace and execs the receiver: the Child's PID is the receiver's.
    argv.insert(argv.begin(), {"nsenter", "--net=/run/netns/" + ns_.name()});
    child_ = std::make_unique<Child>(argv);
}

void Receiver::wait_listening(std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (!child_->running()) {
            throw std::runtime_error(kind_ + " exited before listening\n" + diagnostics());
        }
        auto socks = listening(child_->pid());
        bool all = true;
        for (const Endpoint &e : listen_) {
            all = all && socks.count({e.addr.mapped(), e.port}) > 0;
        }
        if (all) {
            return;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            throw std::runtime_error(kind_ + " not listening on every endpoint within " +
                                     std::to_string(timeout.count()) + " ms\n" + diagnostics());
        }
        usleep(20 * 1000);
    }
}

std::vector<Seen> Receiver::seen() const {
    return parse_seen(access_log());
}

std::vector<Seen> Receiver::wait_seen(std::size_t n, std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto s = seen();
        if (s.size() >= n || std::chrono::steady_clock::now() >= deadline) {
            return s;
        }
        usleep(20 * 1000);
    }
}

bool Receiver::wait_message(const std::string &text, std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (messages().find(text) != std::string::npos) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        usleep(20 * 1000);
    }
}

std::string Receiver::diagnostics() const {
    std::string out = "--- " + kind_ + " config (" + dir_ + ") ---\n" + config_ + "--- " + kind_ +
                      " messages ---\n" + messages();
    std::string log = access_log();
    if (log != messages()) {
        out += "--- " + kind_ + " access log ---\n" + log;
    }
    return out;
}

// ---- NginxStream --------------------------------------------------------------------------

NginxStream::NginxStream(const Netns &ns, std::vector<Endpoint> listen)
    : Receiver("nginx", ns, std::move(listen)) {
    require_file(kNginx, "nginx");
    // One process (master_process off) in the foreground: the PID we stop is all of nginx,
    // and no worker outlives it. `-e` and `error_log` keep even startup errors in our dir.
    // proxy_half_close: a client's FIN reaches the echo server, which answers with its own
    // after the last byte, so a test can half-close and read to EOF.
    std::ostringstream c;
    c << "# ppinject test receiver: nginx stream with proxy_protocol, private to this dir\n"
      << "include " << kPeers << "nginx.conf;\n"
      << "master_process off;\n"
      << "error_log " << dir() << "/error.log info;\n"
      << "stream {\n"
      << "    log_format ppt '" << kSeenTag
      << "ci=$proxy_protocol_addr cp=$proxy_protocol_port "
         "di=$proxy_protocol_server_addr dp=$proxy_protocol_server_port "
         "ri=$remote_addr rp=$remote_port st=$status';\n"
      << "    access_log " << dir() << "/access.log ppt;\n"
      << "    server {\n";
    for (const Endpoint &e : this->listen()) {
        c << "        listen " << listen_text(e) << " proxy_protocol;\n";
    }
    c << "        proxy_pass " << echo().endpoint().to_string() << ";\n"
      << "        proxy_half_close on;\n"
      << "        proxy_connect_timeout 5s;\n"
      << "        proxy_timeout 60s;\n"
      << "    }\n}\n";
    start("nginx.conf", c.str(),
          {kNginx, "-p", dir() + "/", "-c", dir() + "/nginx.conf", "-e", dir() + "/error.log"});
    wait_listening();
}

std::string NginxStream::version() {
    // "nginx version: nginx/1.22.1" on stderr.
    ProcessResult r = run_process({kNginx, "-v"});
    std::string text = r.err + r.out;
    auto at = text.find("nginx/");
    return at == std::string::npos ? text : text.substr(at, text.find_first_of("\r\n", at) - at);
}

std::string NginxStream::messages() const {
    // Startup errors also go to stderr, which the Child captured.
    return output() + read_file(dir() + "/error.log");
}

std::string NginxStream::access_log() const {
    return read_file(dir() + "/access.log");
}

// ---- Haproxy ------------------------------------------------------------------------------

Haproxy::Haproxy(const Netns &ns, std::vector<Endpoint> listen, bool tls)
    : Receiver("haproxy", ns, std::move(listen)) {
    require_file(kHaproxy, "haproxy");
    std::string ssl;
    if (tls) {
        std::string key = dir() + "/key.pem", cert = dir() + "/cert.pem";
        sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
           "-subj /CN=edge.example.com -keyout " +
           key + " -out " + cert + " 2>/dev/null && cat " + cert + " " + key + " > " + dir() +
           "/crt.pem");
        ssl = " ssl crt " + dir() + "/crt.pem ssl-min-ver TLSv1.3";
    }
    // -db: foreground, one process, no master. HAProxy logs only to syslog targets; the
    // "stdout" target with the raw format writes our line as is to its stdout, which the
    // Child captures (no syslog socket to read). Connection errors (a missing header) are
    // logged there too, in HAProxy's own fixed format, not ours. Sessions are logged when
    // they end.
    std::ostringstream c;
    c << "# ppinject test receiver: haproxy accept-proxy, private to this dir; read after "
      << kPeers << "haproxy.cfg\n"
      << "frontend ppt\n"
      << "    log stdout format raw local0\n"
      << "    log-format \"" << kSeenTag << "ci=%ci cp=%cp di=%fi dp=%fp st=%ts sslv=%sslv\"\n";
    for (const Endpoint &e : this->listen()) {
        c << "    bind " << listen_text(e) << " accept-proxy" << ssl << "\n";
    }
    c << "    default_backend echo\n"
      << "backend echo\n"
      << "    server echo " << echo().endpoint().to_string() << "\n";
    start("haproxy.cfg", c.str(),
          {kHaproxy, "-f", kPeers + "haproxy.cfg", "-f", dir() + "/haproxy.cfg", "-db"});
    wait_listening();
}

std::string Haproxy::version() {
    // "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
    ProcessResult r = run_process({kHaproxy, "-v"});
    std::istringstream words(r.out);
    std::string w1, w2, v;
    words >> w1 >> w2 >> v;
    return v;
}

std::string Haproxy::messages() const {
    return output();
}

std::string Haproxy::access_log() const {
    return output();
}

// ---- tcp_exchange -------------------------------------------------------------------------

TcpExchange tcp_exchange(const Netns &ns, const Endpoint &to, const std::string &send,
                         std::chrono::milliseconds timeout) {
    TcpExchange r;
    sockaddr_storage ss{};
    socklen_t len = to.to_sockaddr(ss);
    ppinject::Fd sock = ns.socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK);
    int fd = sock.get();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto left_ms = [&] {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        return static_cast<int>(std::max<long>(0, left.count()));
    };

    if (connect(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0 && errno != EINPROGRESS) {
        r.error = errno;
        return r;
    }
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, left_ms()) <= 0) {
        r.timed_out = true;
        return r;
    }
    int err = 0;
    socklen_t err_len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
    if (err != 0) {
        r.error = err;
        return r;
    }
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr *>(&local), &local_len);
    r.local = *Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&local));

    std::size_t sent = 0;
    bool sending = true;
    if (send.empty()) {
        shutdown(fd, SHUT_WR);
        sending = false;
    }
    std::vector<char> buf(64 * 1024);
    for (;;) {
        int ms = left_ms();
        if (ms == 0) {
            r.timed_out = true;
            return r;
        }
        p = {fd, static_cast<short>(POLLIN | (sending ? POLLOUT : 0)), 0};
        if (poll(&p, 1, ms) < 0 && errno != EINTR) {
            r.error = errno;
            return r;
        }
        if (sending && (p.revents & (POLLOUT | POLLERR))) {
            ssize_t n = ::send(fd, send.data() + sent, send.size() - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += static_cast<std::size_t>(n);
                if (sent == send.size()) {
                    shutdown(fd, SHUT_WR);
                    sending = false;
                }
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                // The peer is gone (EPIPE after its reset, or ECONNRESET): stop writing and
                // let the read side report how the connection ended.
                sending = false;
                if (errno == ECONNRESET) {
                    r.reset = true;
                    return r;
                }
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, buf.data(), buf.size(), 0);
            if (n > 0) {
                r.received.append(buf.data(), static_cast<std::size_t>(n));
            } else if (n == 0) {
                r.eof = true;
                return r;
            } else if (errno == ECONNRESET) {
                r.reset = true;
                return r;
            } else if (errno != EAGAIN && errno != EINTR) {
                r.error = errno;
                return r;
            }
        }
    }
}

}  // namespace pptest
