#include "observe/metrics_server.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "observe/metrics.hpp"
#include "sys/error.hpp"

namespace ppinject {
namespace {

using Clock = std::chrono::steady_clock;

// After the response, how long a connection may stay open waiting for the client's FIN.
// Closing while the client's bytes sit unread makes the kernel send RST, and an RST can
// destroy a response the client has not read yet; so we half-close and read to EOF first,
// but not for long: clients close promptly after a Connection: close response.
constexpr auto kLinger = std::chrono::seconds(2);
// How long to stop accepting when the process is out of file descriptors (the listening
// socket stays readable, so retrying at once would spin).
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

[[noreturn]] void fail(std::string_view what, const Endpoint &at) {
    int err = -errno;
    throw std::runtime_error(error_text(fmt::format("metrics: {} {}", what, at.to_string()), err));
}

bool is_tchar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}
bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x | 0x20) == (y | 0x20);  // exact for the token characters compared
           });
}

// IMF-fixdate (RFC 9110 5.6.7), spelled out by hand so that no locale can change it.
std::string http_date() {
    static constexpr const char *kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char *kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} GMT", kDays[tm.tm_wday], tm.tm_mday,
                       kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string_view reason_phrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        case 505:
            return "HTTP Version Not Supported";
    }
    return "Error";
}

// The whole response. A HEAD response carries the headers a GET would, without the body.
std::string make_response(int status, std::string_view content_type, const std::string &body,
                          bool head) {
    std::string out = fmt::format(
        "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
        "Connection: close\r\n",
        status, reason_phrase(status), http_date(), content_type, body.size());
    if (status == 405) {
        out += "Allow: GET, HEAD\r\n";
    }
    out += "\r\n";
    if (!head) {
        out += body;
    }
    return out;
}

std::string error_response(int status, bool head, std::string_view detail = {}) {
    std::string body(reason_phrase(status));
    if (!detail.empty()) {
        body += ": ";
        body += detail;
    }
    body += "\n";
    return make_response(status, "text/plain; charset=utf-8", body, head);
}

// Length of the request head (request line and header fields, up to and including the empty
// line), or nullopt while it is incomplete. A bare LF ends a line too (RFC 9112 2.2).
std::optional<std::size_t> head_length(std::string_view buf) {
    for (std::size_t i = buf.find('\n'); i != std::string_view::npos; i = buf.find('\n', i + 1)) {
        if (i + 1 < buf.size() && buf[i + 1] == '\n') {
            return i + 2;
        }
        if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            return i + 3;
        }
    }
    return std::nullopt;
}

// The request head split into lines without their CR LF.
std::vector<std::string_view> split_lines(std::string_view head) {
    std::vector<std::string_view> lines;
    while (!head.empty()) {
        std::size_t nl = head.find('\n');
        std::string_view line = head.substr(0, nl);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        lines.push_back(line);
        head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
    }
    while (!lines.empty() && lines.back().empty()) {
        lines.pop_back();
    }
    return lines;
}

// The /healthz response: 200 "ok" or 503 with the reason, one line either way.
std::string health_response(const MetricsServer::HealthFn &health, bool head) {
    std::string reason;
    try {
        reason = health();
    } catch (const std::exception &e) {
        reason = e.what();
        reason = reason.empty() ? "health check failed" : reason;
    } catch (...) {
        reason = "health check failed";
    }
    std::replace_if(
        reason.begin(), reason.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
    return make_response(reason.empty() ? 200 : 503, "text/plain; charset=utf-8",
                         (reason.empty() ? "ok" : reason) + "\n", head);
}

// Answers one complete request head.
std::string respond(std::string_view head, const MetricsServer::BodyFn &body,
                    const MetricsServer::HealthFn &health) {
    std::vector<std::string_view> lines = split_lines(head);
    // RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line.
    while (!lines.empty() && lines.front().empty()) {
        lines.erase(lines.begin());
    }
    if (lines.empty()) {
        return error_response(400, false, "no request line");
    }
    // request-line = method SP request-target SP HTTP-version
    std::string_view line = lines[0];
    std::size_t sp1 = line.find(' ');
    std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
        return error_response(400, false, "malformed request line");
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    bool head_only = method == "HEAD";
    if (!is_token(method) || target.empty()) {
        return error_response(400, head_only, "malformed request line");
    }
    if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' ||
        version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
        return error_response(400, head_only, "malformed HTTP version");
    }
    if (version[5] != '1') {
        return error_response(505, head_only);
    }

    int hosts = 0;
    for (std::size_t i = 1; i < lines.size(); i++) {
        std::string_view field = lines[i];
        std::size_t colon = field.find(':');
        // No whitespace between name and colon (RFC 9112 5.1), no obsolete line folding.
        if (colon == std::string_view::npos || !is_token(field.substr(0, colon))) {
            return error_response(400, head_only, "malformed header field");
        }
        if (iequals(field.substr(0, colon), "host")) {
            hosts++;
        }
    }
    // RFC 9112 3.2: an HTTP/1.1 request without exactly one Host field gets 400.
    if (version == "HTTP/1.1" && hosts != 1) {
        return error_response(400, head_only, "an HTTP/1.1 request needs one Host field");
    }

    // origin-form "/metrics?query", or absolute-form "http://host:port/metrics" which a
    // server must accept too (RFC 9112 3.2.2).
    std::string_view path = target;
    if (std::size_t scheme = path.find("://"); scheme != std::string_view::npos && path[0] != '/') {
        std::size_t slash = path.find('/', scheme + 3);
        path = slash == std::string_view::npos ? "/" : path.substr(slash);
    }
    path = path.substr(0, path.find_first_of("?#"));
    bool healthz = path == "/healthz" && health;
    if (path != "/metrics" && !healthz) {
        return error_response(404, head_only);
    }
    if (method != "GET" && method != "HEAD") {
        return error_response(405, head_only);
    }
    if (healthz) {
        return health_response(health, head_only);
    }
    std::string text;
    try {
        text = body();
    } catch (const std::exception &e) {
        return error_response(500, head_only, e.what());
    } catch (...) {
        return error_response(500, head_only);
    }
    return make_response(200, kPrometheusContentType, text, head_only);
}

struct Conn {
    enum class State { reading, writing, draining };

    Fd fd;
    State state = State::reading;
    Clock::time_point deadline;
    std::string in;
    std::string out;
    std::size_t sent = 0;
};

}  // namespace

MetricsServer::MetricsServer(const Endpoint &at, BodyFn body, HealthFn health,
                             MetricsServerOptions opts)
    : body_(std::move(body)), health_(std::move(health)), opts_(opts), local_(at) {
    sockaddr_storage ss{};
    socklen_t len = at.to_sockaddr(ss);
    listen_fd_.reset(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listen_fd_) {
        fail("socket for", at);
    }
    int one = 1, zero = 0;
    // A restart must not fail while the last run's connections sit in TIME_WAIT; on Linux
    // this still refuses a port that another socket is listening on.
    if (setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        fail("SO_REUSEADDR for", at);
    }
    if (ss.ss_family == AF_INET6 && at.addr.is_unspecified() &&
        setsockopt(listen_fd_.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) {
        // "[::]" serves IPv4 too whatever net.ipv6.bindv6only says, as it does for services.
        fail("IPV6_V6ONLY off for", at);
    }
    if (bind(listen_fd_.get(), reinterpret_cast<const sockaddr *>(&ss), len) != 0) {
        fail("bind", at);
    }
    if (listen(listen_fd_.get(), 64) != 0) {
        fail("listen on", at);
    }
    sockaddr_storage bound{};
    socklen_t blen = sizeof bound;
    if (getsockname(listen_fd_.get(), reinterpret_cast<sockaddr *>(&bound), &blen) != 0) {
        fail("getsockname of", at);
    }
    if (auto ep = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr *>(&bound))) {
        local_ = *ep;
    }
    wake_fd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_fd_) {
        fail("eventfd for", at);
    }
    thread_ = std::thread([this] { serve(); });
}

MetricsServer::~MetricsServer() {
    stop();
}

void MetricsServer::stop() {
    if (!thread_.joinable()) {
        return;
    }
    std::uint64_t one = 1;
    // An eventfd write only fails when the counter would overflow: it is readable then anyway.
    [[maybe_unused]] ssize_t n = write(wake_fd_.get(), &one, sizeof one);
    thread_.join();
    listen_fd_.reset();
    wake_fd_.reset();
}

void MetricsServer::serve() {
    // Signals are the main thread's business (run takes SIGINT/SIGTERM/SIGHUP with sigwait);
    // a process-directed signal must never be delivered here instead.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);

    std::vector<Conn> conns;
    std::vector<pollfd> pfds;
    Clock::time_point accept_paused_until{};

    auto close_conn = [](Conn &c) { c.fd.reset(); };
    // Sends what it can; when all is out, half-closes and waits for the client's FIN.
    auto flush = [&](Conn &c) {
        while (c.sent < c.out.size()) {
            ssize_t n = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    close_conn(c);
                }
                return;
            }
            c.sent += static_cast<std::size_t>(n);
        }
        shutdown(c.fd.get(), SHUT_WR);
        c.state = Conn::State::draining;
        c.deadline = std::min(c.deadline, Clock::now() + kLinger);
        c.in.clear();
        c.in.shrink_to_fit();
    };
    auto on_readable = [&](Conn &c) {
        char buf[4096];
        // A bounded number of reads per wake-up, so a client that streams bytes while its
        // response drains cannot keep the thread away from the others.
        for (int budget = 16; budget > 0; budget--) {
            ssize_t n = recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return;
            }
            if (n <= 0) {  // EOF or error: nobody is left to answer
                close_conn(c);
                return;
            }
            if (c.state == Conn::State::draining) {
                continue;  // discarded: the response is out, only the FIN matters
            }
            c.in.append(buf, static_cast<std::size_t>(n));
            std::string_view window(c.in.data(), std::min(c.in.size(), opts_.max_request_bytes));
            if (auto len = head_length(window)) {
                c.out = respond(window.substr(0, *len), body_, health_);
            } else if (c.in.size() >= opts_.max_request_bytes) {
                c.out = error_response(431, false);
            } else {
                continue;
            }
            c.state = Conn::State::writing;
            flush(c);
            return;
        }
    };

    for (;;) {
        Clock::time_point now = Clock::now();
        bool accepting = conns.size() < opts_.max_connections && now >= accept_paused_until;
        pfds.clear();
        pfds.push_back({wake_fd_.get(), POLLIN, 0});
        pfds.push_back({listen_fd_.get(), static_cast<short>(accepting ? POLLIN : 0), 0});
        Clock::time_point next = Clock::time_point::max();
        for (const Conn &c : conns) {
            pfds.push_back({c.fd.get(),
                            static_cast<short>(c.state == Conn::State::writing ? POLLOUT : POLLIN),
                            0});
            next = std::min(next, c.deadline);
        }
        if (!accepting && conns.size() < opts_.max_connections) {
            next = std::min(next, accept_paused_until);
        }
        int timeout_ms = -1;
        if (next != Clock::time_point::max()) {
            // Rounded up: waking a little early would only spin until the deadline.
            auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - now);
            timeout_ms = static_cast<int>(std::clamp<std::int64_t>(wait.count(), 0, 60'000));
        }
        int ready = poll(pfds.data(), pfds.size(), timeout_ms);
        if (ready < 0 && errno != EINTR) {
            break;  // only EFAULT/EINVAL/ENOMEM: nothing sensible is left to do
        }
        if (ready > 0 && (pfds[0].revents & POLLIN)) {
            break;
        }

        for (std::size_t i = 0; ready > 0 && i < conns.size(); i++) {
            Conn &c = conns[i];
            short rev = pfds[i + 2].revents;
            if (rev == 0) {
                continue;
            }
            if (c.state == Conn::State::writing) {
                flush(c);  // POLLERR/POLLHUP show up as a send error
            } else {
                on_readable(c);  // and as EOF or a recv error here
            }
        }

        if (ready > 0 && (pfds[1].revents & POLLIN)) {
            while (conns.size() < opts_.max_connections) {
                Fd fd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
                if (!fd) {
                    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                        accept_paused_until = Clock::now() + kAcceptBackoff;
                    }
                    break;  // EAGAIN, or a connection that died in the backlog
                }
                Conn c;
                c.fd = std::move(fd);
                c.deadline = Clock::now() + opts_.timeout;
                conns.push_back(std::move(c));
                // Most requests are already there: answer without another trip through poll.
                on_readable(conns.back());
            }
        }

        now = Clock::now();
        for (Conn &c : conns) {
            if (c.fd && now >= c.deadline) {
                if (c.state != Conn::State::draining) {
                    // The client failed its budget: reset rather than leave the kernel
                    // trickling a large unsent response to a reader that is not reading.
                    // A drained response is complete and must not be reset under the client.
                    // Failing to set the option leaves an ordinary close.
                    linger abort{1, 0};
                    setsockopt(c.fd.get(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
                }
                close_conn(c);
            }
        }
        std::erase_if(conns, [](const Conn &c) { return !c.fd; });
    }
}

}  // namespace ppinject
