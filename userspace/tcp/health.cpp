#include "tcp/health.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <map>
#include <string>

#include "codec/proxy.hpp"
#include "sys/error.hpp"
#include "sys/fd.hpp"
#include "tcp/socket.hpp"

namespace ppinject::tcp {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kMaxSleep = std::chrono::milliseconds(100);

// One check in flight.
struct Probe {
    std::shared_ptr<ServiceRt> svc;
    std::size_t backend = 0;
    Fd fd;
    Clock::time_point deadline;
};

// The header a check sends once connected; false when there is nothing to send.
std::size_t check_header(const ServiceRt &svc, int fd, const Endpoint &backend,
                         std::array<std::uint8_t, proxy::kV2Inet6Len> &buf) {
    std::size_t n = 0;
    if (svc.cfg.health_check->mode == HealthMode::local) {
        proxy::V2Writer w(buf);
        w.begin_unspec(proxy::Command::local);
        w.finish(false, n);
        return n;
    }
    auto self = local_endpoint(fd);
    if (!self || proxy::encode_v2(buf, proxy::Command::proxy, proxy::Transport::stream, *self,
                                  backend, n) != proxy::Error::ok) {
        return 0;
    }
    return n;
}

}  // namespace

HealthChecker::HealthChecker(LogFn log) : log_(std::move(log)), thread_([this] { run(); }) {}

HealthChecker::~HealthChecker() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void HealthChecker::set(std::vector<std::shared_ptr<ServiceRt>> services) {
    {
        std::lock_guard lock(mu_);
        services_ = std::move(services);
    }
    cv_.notify_all();
}

void HealthChecker::run() {
    std::map<std::pair<const ServiceRt *, std::size_t>, Clock::time_point> due;
    std::vector<Probe> probes;
    auto report = [&](Probe &p, const std::string &why) {
        bool ok = why.empty();
        const Endpoint &b = p.svc->cfg.backends[p.backend];
        if (p.svc->up[p.backend].exchange(ok) != ok) {
            log_("tcp: backend " + b.to_string() + " of service '" + p.svc->cfg.name + "' is " +
                 (ok ? "up again" : "down: " + why));
        }
        p.fd.reset();
    };
    for (;;) {
        std::vector<std::shared_ptr<ServiceRt>> services;
        {
            std::unique_lock lock(mu_);
            if (probes.empty()) {
                cv_.wait_for(lock, kMaxSleep, [&] { return stop_; });
            }
            if (stop_) {
                break;
            }
            services = services_;
        }
        auto now = Clock::now();
        // Start the checks that are due.
        for (const auto &svc : services) {
            if (!svc->cfg.health_check) {
                continue;
            }
            for (std::size_t i = 0; i < svc->cfg.backends.size(); i++) {
                auto [at, fresh] = due.try_emplace({svc.get(), i}, now);
                if (now < at->second) {
                    continue;
                }
                at->second = now + svc->cfg.health_check->interval;
                sockaddr_storage ss{};
                socklen_t len = svc->cfg.backends[i].to_sockaddr(ss);
                Probe p{svc, i,
                        Fd(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)),
                        now + svc->cfg.health_check->timeout};
                if (!p.fd) {
                    log_(error_text("tcp: health check socket", -errno));
                    continue;
                }
                if (connect(p.fd.get(), reinterpret_cast<sockaddr *>(&ss), len) != 0 &&
                    errno != EINPROGRESS) {
                    report(p, error_text("connect", -errno));
                    continue;
                }
                probes.push_back(std::move(p));
            }
        }
        // Forget services no longer checked.
        for (auto it = due.begin(); it != due.end();) {
            bool live = false;
            for (const auto &svc : services) {
                live = live || svc.get() == it->first.first;
            }
            it = live ? std::next(it) : due.erase(it);
        }
        if (probes.empty()) {
            continue;
        }
        std::vector<pollfd> fds;
        for (const auto &p : probes) {
            fds.push_back({p.fd.get(), POLLOUT, 0});
        }
        poll(fds.data(), fds.size(), static_cast<int>(kMaxSleep.count()));
        now = Clock::now();
        for (std::size_t i = 0; i < probes.size(); i++) {
            Probe &p = probes[i];
            if (fds[i].revents != 0) {
                if (int err = socket_error(p.fd.get()); err != 0) {
                    report(p, error_text("connect", err));
                    continue;
                }
                std::array<std::uint8_t, proxy::kV2Inet6Len> hdr{};
                std::size_t n =
                    check_header(*p.svc, p.fd.get(), p.svc->cfg.backends[p.backend], hdr);
                if (n > 0 &&
                    send(p.fd.get(), hdr.data(), n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) {
                    report(p, error_text("send header", -errno));
                    continue;
                }
                report(p, "");
            } else if (now >= p.deadline) {
                report(p, "no answer within " + format_duration(p.svc->cfg.health_check->timeout));
            }
        }
        std::erase_if(probes, [](const Probe &p) { return !p.fd; });
    }
}

}  // namespace ppinject::tcp
