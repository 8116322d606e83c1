#include "tcp/server.hpp"

#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

#include "sys/error.hpp"
#include "tcp/congestion.hpp"
#include "tcp/health.hpp"
#include "tcp/service.hpp"
#include "tcp/socket.hpp"
#include "tcp/worker.hpp"

namespace ppinject::tcp {

// A tcp_listen entry: sk_lookup steers a transparent service's connections to the socket
// in it. Deleted when this goes.
class Server::ListenSlot {
  public:
    ListenSlot(int map, std::uint32_t slot, int fd, const std::string &svc_name)
        : map_(map), slot_(slot) {
        std::uint64_t value = static_cast<std::uint64_t>(fd);
        if (bpf_map_update_elem(map_, &slot_, &value, BPF_ANY) != 0) {
            int err = -errno;
            throw std::runtime_error(
                error_text("tcp: add listener of '" + svc_name + "' to tcp_listen", err));
        }
    }
    ~ListenSlot() {
        if (map_ >= 0) {
            bpf_map_delete_elem(map_, &slot_);
        }
    }
    ListenSlot(ListenSlot &&o) noexcept : map_(std::exchange(o.map_, -1)), slot_(o.slot_) {}
    ListenSlot &operator=(ListenSlot &&) = delete;

  private:
    int map_;
    std::uint32_t slot_;
};

// A service's listening sockets, one per worker for each address it binds; the workers
// accept on them, the Server owns them.
struct Server::Listening {
    std::shared_ptr<ServiceRt> rt;
    std::vector<std::vector<Fd>> fds;  // [worker][n]
    std::vector<ListenSlot> slots;     // transparent: out of tcp_listen before the sockets close
    // Opened, not yet steered to: tcp_listen slot and socket. A new service may take the
    // slot of one it replaces (same id), so slots are filled only once that one is gone.
    std::vector<std::pair<std::uint32_t, int>> to_steer;
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

Fd open_listener(const Bind &b, std::uint16_t port, const Service &svc) {
    sockaddr_storage ss{};
    Endpoint at = b.at;
    at.port = port;
    socklen_t len = at.to_sockaddr(ss);
    std::string where = " for service '" + svc.name + "' on " + at.to_string();
    Fd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        int err = -errno;
        throw std::runtime_error(error_text("tcp: socket" + where, err));
    }
    struct Option {
        int level, name, value;
        const char *text;
    };
    std::vector<Option> options = {{SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"},
                                   {SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT"}};
    if (ss.ss_family == AF_INET6) {
        options.push_back({IPPROTO_IPV6, IPV6_V6ONLY, b.dual_stack ? 0 : 1, "IPV6_V6ONLY"});
        options.push_back({IPPROTO_IPV6, IPV6_FREEBIND, 1, "IPV6_FREEBIND"});
    } else {
        options.push_back({IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND"});
    }
    for (const Option &o : options) {
        if (int err = set_option(fd.get(), o.level, o.name, o.value); err != 0) {
            throw std::runtime_error(error_text(std::string("tcp: ") + o.text + where, err));
        }
    }
    // Accepted connections inherit it (unless their route names a congctl). Only a name
    // the service gave is an error: the loopback default is known to be there.
    if (int err = set_congestion(fd.get(),
                                 leg_congestion(svc.congestion.client, loopback_listener(svc, at)));
        err != 0 && !svc.congestion.client.empty()) {
        throw std::runtime_error(congestion_error(svc.name, "client", svc.congestion.client, err));
    }
    if (bind(fd.get(), reinterpret_cast<sockaddr *>(&ss), len) != 0 ||
        listen(fd.get(), 4096) != 0) {
        int err = -errno;
        throw std::runtime_error(error_text(
            "tcp: listen on " + at.to_string() + " for service '" + svc.name + "'", err));
    }
    return fd;
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
    for (auto &l : services_) {  // no new connections first
        stop_serving(*l);
    }
    workers_.clear();  // joins; each closes its connections
}

std::unique_ptr<Server::Listening> Server::open_service(const Service &svc) {
    auto out = std::make_unique<Listening>();
    out->fds.resize(workers_.size());
    for (const Bind &b : binds_of(svc)) {
        std::uint16_t port = b.at.port;
        for (auto &fds : out->fds) {
            fds.push_back(open_listener(b, port, svc));
            auto bound = local_endpoint(fds.back().get());
            port = bound ? bound->port : 0;  // the others join the first one's port
        }
        if (b.slot >= 0) {
            out->to_steer.emplace_back(static_cast<std::uint32_t>(b.slot),
                                       out->fds[0].back().get());
        }
    }
    return out;
}

// Stops accepting (connections already accepted run on): once every worker has let go of
// the sockets they can close.
void Server::stop_serving(Listening &l) {
    l.slots.clear();
    std::vector<std::future<void>> done;
    for (std::size_t w = 0; w < l.fds.size(); w++) {
        auto removed = std::make_shared<std::promise<void>>();
        done.push_back(removed->get_future());
        std::vector<int> fds;
        for (const Fd &fd : l.fds[w]) {
            fds.push_back(fd.get());
        }
        workers_[w]->post([fds, removed](Worker &wk) {
            for (int fd : fds) {
                wk.remove_listener(fd);
            }
            removed->set_value();
        });
    }
    for (auto &f : done) {
        f.wait();
    }
    l.fds.clear();
}

void Server::apply(const Config &cfg) {
    // Open what is new first: a failure then leaves the running set as it was, and what
    // was opened closes with `next`.
    std::vector<std::unique_ptr<Listening>> next;
    std::vector<int> reuse;  // next[i] takes services_[reuse[i]]'s sockets, or -1
    std::vector<bool> taken(services_.size(), false);
    for (const auto &svc : cfg.services) {
        if (!svc.is_relay()) {
            continue;  // UDP and inline TCP are the tc programs' alone: no socket, no probe
        }
        probe_backend_congestion(svc);
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
        auto l = from < 0 ? open_service(svc) : std::make_unique<Listening>();
        l->rt = runtime_of(svc, old);
        next.push_back(std::move(l));
        reuse.push_back(from);
    }
    // From here nothing fails but a tcp_listen update, which is logged (the kernel refuses
    // one only for want of memory; that service's new sockets are then not steered to).
    for (std::size_t i = 0; i < services_.size(); i++) {
        if (!taken[i]) {
            stop_serving(*services_[i]);
        }
    }
    for (std::size_t i = 0; i < next.size(); i++) {
        Listening &l = *next[i];
        bool fresh = reuse[i] < 0;
        if (!fresh) {
            Listening &old = *services_[static_cast<std::size_t>(reuse[i])];
            l.fds = std::move(old.fds);
            l.slots = std::move(old.slots);
        }
        for (auto [slot, fd] : l.to_steer) {
            try {
                l.slots.emplace_back(maps_.listen, slot, fd, l.rt->cfg.name);
            } catch (const std::runtime_error &e) {
                log_(e.what());
            }
        }
        l.to_steer.clear();
        for (std::size_t w = 0; w < l.fds.size(); w++) {
            std::vector<int> fds;
            for (const Fd &fd : l.fds[w]) {
                fds.push_back(fd.get());
            }
            std::shared_ptr<const ServiceRt> rt = l.rt;
            workers_[w]->post([fds, rt, fresh](Worker &wk) {
                for (int fd : fds) {
                    if (fresh) {
                        wk.add_listener(fd, rt);
                    } else {
                        wk.set_service(fd, rt);
                    }
                }
            });
        }
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
