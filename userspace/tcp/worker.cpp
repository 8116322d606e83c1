#include "tcp/worker.hpp"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sys/error.hpp"
#include "tcp/congestion.hpp"
#include "tcp/sni.hpp"
#include "tcp/sockmap_relay.hpp"
#include "tcp/socket.hpp"

namespace ppinject::tcp {
namespace {

constexpr std::uint64_t kListenerToken = 1ull << 63;
constexpr std::uint64_t kWakeToken = 1ull << 62;
constexpr std::uint32_t kGenMask = (1u << 29) - 1;  // connection tokens: bits 32..60
// A connection's sockets are registered once, edge-triggered for everything, and never
// modified in splice and copy modes (sockmap mode narrows them once joined); close()
// removes them from the epoll set.
constexpr std::uint32_t kAllEdges = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr std::size_t kSniPeek = 4096;                // a ClientHello's server_name comes early
constexpr auto kTick = std::chrono::milliseconds(5);  // drains and deadlines pending
constexpr auto kIdleScan = std::chrono::seconds(1);
// How long a listener is not watched after accept ran out of descriptors or memory.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
// Empty copy-mode buffers kept for the next reads (64 KiB each); more are freed.
constexpr std::size_t kKeptBuffers = 256;

// A connection socket's epoll token: generation (29 bits), slot, side. Events of a
// connection that ended earlier in the same epoll_wait batch must not reach the next
// connection in its slot.
std::uint64_t conn_token(std::uint32_t id, std::uint32_t gen, int side) {
    return static_cast<std::uint64_t>(gen & kGenMask) << 32 | static_cast<std::uint64_t>(id) << 1 |
           static_cast<std::uint64_t>(side);
}

}  // namespace

Worker::Worker(const Datapath::TcpMaps &maps, LogFn log, std::uint32_t slot_base,
               std::uint32_t slots)
    : maps_(maps),
      log_(std::move(log)),
      slot_base_(slot_base),
      slots_(slots),
      ep_(epoll_create1(EPOLL_CLOEXEC)),
      wake_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      next_idle_scan_(Clock::now() + kIdleScan) {
    if (!ep_ || !wake_) {
        throw std::runtime_error(error_text("tcp worker: epoll/eventfd", -errno));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeToken;
    if (epoll_ctl(ep_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
        throw std::runtime_error(error_text("tcp worker: watch its wake-up eventfd", -errno));
    }
    conns_.reserve(slots_);  // a Conn stays where it is while it lives
    thread_ = std::thread([this] { run(); });
}

Worker::~Worker() {
    post([](Worker &w) { w.stopping_ = true; });
    thread_.join();
    for (Slot &s : conns_) {
        if (s.conn) {
            finish(*s.conn, {});
        }
    }
}

void Worker::post(std::function<void(Worker &)> cmd) {
    {
        std::lock_guard lock(mu_);
        commands_.push_back(std::move(cmd));
    }
    std::uint64_t one = 1;
    if (write(wake_.get(), &one, sizeof one) < 0) {
        // EAGAIN only: the counter is full of wake-ups the thread has yet to read.
    }
}

void Worker::add_listener(int fd, std::shared_ptr<const ServiceRt> svc) {
    Listener &l = listeners_[fd];
    l.svc = std::move(svc);
    l.local = local_endpoint(fd);
    if (l.local && l.local->addr.is_unspecified()) {
        l.local.reset();  // a wildcard: each connection's own address
    }
    l.loopback = l.local && loopback_listener(l.svc->cfg, *l.local);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerToken | static_cast<std::uint32_t>(fd);
    if (epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
        int err = -errno;
        log_(error_text("tcp: watch a listening socket of service '" + l.svc->cfg.name + "'", err));
        listeners_.erase(fd);
    }
}

void Worker::set_service(int fd, std::shared_ptr<const ServiceRt> svc) {
    if (auto it = listeners_.find(fd); it != listeners_.end()) {  // else epoll refused it
        it->second.svc = std::move(svc);
    }
}

void Worker::remove_listener(int fd) {
    auto it = listeners_.find(fd);
    if (it == listeners_.end()) {
        return;
    }
    paused_ -= it->second.paused_until ? 1 : 0;
    listeners_.erase(it);
    if (epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr) != 0) {
        log_(error_text("tcp: stop watching a listening socket", -errno));
    }
}

// accept() ran out of descriptors or memory: the connection stays in the listener's
// backlog, and the socket stays readable, so watching it would spin on the same failure.
// It is not watched for kAcceptPause (events 0: registered, nothing reported); then it is
// tried again, and what waited in the backlog is accepted once there is room.
void Worker::pause_listener(int lfd, Listener &l) {
    epoll_event ev{};
    ev.data.u64 = kListenerToken | static_cast<std::uint32_t>(lfd);
    if (epoll_ctl(ep_.get(), EPOLL_CTL_MOD, lfd, &ev) != 0) {
        log_(error_text("tcp: pause a listening socket of service '" + l.svc->cfg.name + "'",
                        -errno));
        return;
    }
    if (!l.paused_until) {
        paused_++;
    }
    l.paused_until = Clock::now() + kAcceptPause;
}

void Worker::resume_listeners(Clock::time_point now) {
    for (auto &[fd, l] : listeners_) {
        if (!l.paused_until || now < *l.paused_until) {
            continue;
        }
        l.paused_until.reset();
        paused_--;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kListenerToken | static_cast<std::uint32_t>(fd);
        if (epoll_ctl(ep_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
            log_(error_text("tcp: watch a listening socket of service '" + l.svc->cfg.name + "'",
                            -errno));
        }
    }
}

void Worker::give_buffer(RelayBuffer buf) {
    if (buffers_.size() < kKeptBuffers) {
        buffers_.push_back(std::move(buf));
    }
}

RelayBuffer Worker::take_buffer() {
    if (buffers_.empty()) {
        return std::make_unique_for_overwrite<std::uint8_t[]>(kRelayBuffer);
    }
    RelayBuffer buf = std::move(buffers_.back());
    buffers_.pop_back();
    return buf;
}

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

bool Worker::watch(const Conn &c, int side, std::uint32_t events, bool add) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = conn_token(c.id, c.gen, side);
    if (epoll_ctl(ep_.get(), add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd[side].get(), &ev) != 0) {
        int err = -errno;
        log_(error_text(std::string("tcp: watch the ") + (side == kClient ? "client" : "backend") +
                            " socket of a connection of service '" + c.svc->cfg.name + "'",
                        err));
        return false;
    }
    return true;
}

void Worker::run_commands() {
    std::uint64_t v;
    if (read(wake_.get(), &v, sizeof v) < 0) {
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
}

void Worker::run() {
    std::array<epoll_event, 256> events;
    while (!stopping_) {
        int timeout = watched_.empty() && ticking_ == 0 && paused_ == 0
                          ? 1000
                          : static_cast<int>(kTick.count());
        int n = epoll_wait(ep_.get(), events.data(), static_cast<int>(events.size()), timeout);
        for (int i = 0; i < n; i++) {
            std::uint64_t token = events[i].data.u64;
            if (token == kWakeToken) {
                run_commands();
            } else if (token & kListenerToken) {
                int fd = static_cast<int>(token & 0xFFFFFFFFu);
                auto it = listeners_.find(fd);
                if (it != listeners_.end()) {
                    accept_from(fd, it->second);
                }
            } else {
                auto id = static_cast<std::uint32_t>(token & 0xFFFFFFFFu) >> 1;
                int side = static_cast<int>(token & 1);
                if (id < conns_.size() && conns_[id].conn &&
                    token == conn_token(id, conns_[id].gen, side)) {
                    on_event(*conns_[id].conn, side, events[i].events);
                }
            }
        }
        tick();
    }
}

void Worker::accept_from(int lfd, Listener &l) {
    const std::shared_ptr<const ServiceRt> &svc = l.svc;
    for (int burst = 0; burst < 64; burst++) {
        sockaddr_storage peer{};
        socklen_t plen = sizeof peer;
        Fd fd(
            accept4(lfd, reinterpret_cast<sockaddr *>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                log_(error_text("tcp: accept on service '" + svc->cfg.name +
                                    "' (the connection waits in the backlog)",
                                -err));
                pause_listener(lfd, l);
            } else if (err != EAGAIN && err != EINTR && err != ECONNABORTED) {
                log_(error_text("tcp: accept on service '" + svc->cfg.name + "'", -err));
            }
            return;
        }
        auto client = Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&peer));
        // The address the client dialled: the listener's, unless it is a wildcard or
        // sk_lookup steered the connection here from another address.
        std::optional<Endpoint> dialled = svc->cfg.transparent ? std::nullopt : l.local;
        if (!dialled) {
            dialled = local_endpoint(fd.get());
        }
        if (!client || !dialled) {
            continue;
        }
        // A loopback client through a listener that others reach too: its leg's congestion
        // control is set now, unless the service names one (the listener has that).
        if (!l.loopback && client->addr.is_loopback() && svc->cfg.congestion.client.empty()) {
            if (int err = set_congestion(fd.get(), loopback_congestion()); err != 0) {
                log_(error_text(
                    "tcp: cubic for a loopback client of service '" + svc->cfg.name + "'", err));
            }
        }
        // A service at its max_connections (over all workers: tcp_active is shared).
        pp_tcp_stats &stats = maps_.stats[svc->cfg.id];
        if (svc->cfg.max_connections != 0 &&
            std::atomic_ref<__u64>(stats.tcp_active).load() >= svc->cfg.max_connections) {
            close_with_reset(std::move(fd));
            std::atomic_ref<__u64>(stats.tcp_refused).fetch_add(1);
            continue;
        }
        std::uint32_t id;
        if (!free_.empty()) {
            id = free_.back();
            free_.pop_back();
        } else if (conns_.size() < slots_) {
            id = static_cast<std::uint32_t>(conns_.size());
            conns_.emplace_back();
        } else {
            close_with_reset(std::move(fd));  // as many connections as tcp_conns holds
            std::atomic_ref<__u64>(maps_.stats[svc->cfg.id].tcp_refused).fetch_add(1);
            continue;
        }
        Slot &slot = conns_[id];
        Conn &c = slot.conn.emplace(id, slot.gen, svc, &maps_.stats[svc->cfg.id], std::move(fd));
        c.facts.client = *client;
        c.facts.dialled = *dialled;
        c.backend =
            static_cast<std::size_t>(svc->next_backend.fetch_add(1) % svc->cfg.backends.size());
        c.sni_pending = svc->cfg.tlv.authority_from_sni && svc->cfg.header == HeaderMode::v2;
        count(c, &pp_tcp_stats::tcp_accepted);
        count(c, &pp_tcp_stats::tcp_active);
        // Before the relay: FIN and errors, and the ClientHello for SNI; what else the
        // client sends waits in its socket for the relay's first read.
        if (!watch(c, kClient, kAllEdges, true)) {
            finish(c, {.reset_client = true});
            continue;
        }
        start_connect(c);
    }
}

// The backend after the one that failed, which is counted.
void Worker::next_backend(Conn &c) {
    c.fd[kBackend].reset();
    count(c, &pp_tcp_stats::tcp_backend_failed);
    c.backend = (c.backend + 1) % c.svc->cfg.backends.size();
}

// Connects to c.backend, or the next one after a failure; resets the client when none is
// left.
void Worker::start_connect(Conn &c) {
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
        Fd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (fd &&
            set_congestion(fd.get(), leg_congestion(c.svc->cfg.congestion.backend,
                                                    b.addr.is_loopback())) == 0 &&
            (connect(fd.get(), reinterpret_cast<sockaddr *>(&ss), len) == 0 ||
             errno == EINPROGRESS)) {
            c.fd[kBackend] = std::move(fd);
            c.deadline = Clock::now() + c.svc->cfg.connect_timeout;
            if (!watch(c, kBackend, kAllEdges, true)) {  // EPOLLOUT: connected
                finish(c, {.reset_client = true});
                return;
            }
            watched_.emplace_back(c.id, c.gen);
            return;
        }
        next_backend(c);
    }
    count(c, &pp_tcp_stats::tcp_no_backend);
    finish(c, {.reset_client = true});
}

void Worker::on_event(Conn &c, int side, std::uint32_t events) {
    switch (c.state) {
        case Conn::State::connecting:
            if (side == kBackend) {
                // A failed connect reports EPOLLERR; a completed one only EPOLLOUT.
                bool failed = (events & (EPOLLERR | EPOLLHUP)) != 0;
                if (!failed && (events & EPOLLOUT)) {
                    on_connected(c);
                } else if (failed) {
                    next_backend(c);
                    start_connect(c);
                }
                return;
            }
            [[fallthrough]];
        case Conn::State::writing_header:
            if (side == kClient) {
                if (events & EPOLLERR) {
                    bool reset = is_reset(socket_error(c.fd[kClient].get()));
                    finish(c, {.reset_side = reset ? kClient : -1});
                    return;
                }
                if (events & EPOLLRDHUP) {
                    c.client_fin = true;  // passed on once the relay runs
                }
                if (events & EPOLLIN) {
                    c.client_waiting = !c.client_fin;  // bytes, not only a FIN
                }
                if (c.sni_pending && (events & (EPOLLIN | EPOLLRDHUP))) {
                    peek_sni(c);
                }
            } else if (events & EPOLLERR) {
                bool reset = is_reset(socket_error(c.fd[kBackend].get()));
                finish(c, {.reset_side = reset ? kBackend : -1});
            } else if (events & EPOLLOUT) {
                send_header(c);
            }
            return;
        case Conn::State::relaying:
            apply(c, c.relay->on_event(c, side, events));
            return;
    }
}

void Worker::on_connected(Conn &c) {
    c.connected = true;
    if (c.sni_pending) {
        c.deadline = Clock::now() + c.svc->cfg.sni_timeout;  // a client that says nothing
    }
    maybe_send_header(c);
}

void Worker::peek_sni(Conn &c) {
    std::array<std::uint8_t, kSniPeek> buf;
    ssize_t n = recv(c.fd[kClient].get(), buf.data(), buf.size(), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    SniResult r = find_sni(std::span(buf.data(), n > 0 ? static_cast<std::size_t>(n) : 0));
    if (r.kind == SniResult::need_more && n > 0 && static_cast<std::size_t>(n) < buf.size() &&
        !c.client_fin) {
        return;
    }
    if (r.kind == SniResult::found) {
        c.sni.assign(r.name);
    }
    c.sni_pending = false;
    maybe_send_header(c);
}

void Worker::maybe_send_header(Conn &c) {
    if (!c.connected || c.sni_pending) {
        return;
    }
    c.header.resize(c.svc->max_header);
    c.facts.sni = c.sni;
    if (c.svc->cfg.tlv.unique_id) {
        random_id(c.facts.unique_id);
    }
    if (build_header(c.svc->cfg, c.facts, c.header, c.header_len) != proxy::Error::ok) {
        log_("tcp: cannot build the header of service '" + c.svc->cfg.name + "'");
        finish(c, {.reset_client = true});
        return;
    }
    c.header_off = 0;
    c.state = Conn::State::writing_header;
    send_header(c);
}

void Worker::send_header(Conn &c) {
    // In splice and copy modes the relay's first write follows at once and pushes both.
    c.corked = c.client_waiting && c.svc->cfg.relay != RelayMode::sockmap;
    while (c.header_off < c.header_len) {
        ssize_t n = send(c.fd[kBackend].get(), c.header.data() + c.header_off,
                         c.header_len - c.header_off, MSG_NOSIGNAL | (c.corked ? MSG_MORE : 0));
        if (n < 0) {
            if (errno == EAGAIN) {
                return;  // the next EPOLLOUT edge resumes
            }
            if (errno == EINTR) {
                continue;
            }
            finish(c, {.reset_side = is_reset(errno) ? kBackend : -1});
            return;
        }
        c.header_off += static_cast<std::size_t>(n);
    }
    count(c, &pp_tcp_stats::tcp_header_bytes, static_cast<std::int64_t>(c.header_len));
    start_relay(c);
}

// Hands the connection to the relay its service names. A sockmap service's connection
// whose client already sent FIN (no longer established, so the sockmap refuses it) is
// relayed with splice(2).
void Worker::start_relay(Conn &c) {
    c.state = Conn::State::relaying;
    RelayMode mode = c.svc->cfg.relay;
    if (mode == RelayMode::sockmap) {
        auto sockmap = std::make_unique<SockmapRelay>(host(), maps_, slot_base_ + c.id);
        switch (sockmap->join(c)) {
            case SockmapRelay::Join::joined:
                c.relay = std::move(sockmap);
                break;
            case SockmapRelay::Join::failed:
                finish(c, {.reset_client = true});
                return;
            case SockmapRelay::Join::not_established:
                break;
        }
    }
    if (!c.relay) {
        c.relay = std::make_unique<PipeRelay>(
            host(), pipes_,
            mode == RelayMode::copy ? PipeRelay::Through::buffer : PipeRelay::Through::pipe);
    }
    if (c.relay->ticks()) {
        ticking_++;
    }
    apply(c, c.relay->start(c));
}

void Worker::apply(Conn &c, const Step &step) {
    if (step) {
        finish(c, *step);
    }
}

void Worker::tick() {
    auto now = Clock::now();
    if (paused_ > 0) {
        resume_listeners(now);
    }
    std::vector<std::pair<std::uint32_t, std::uint32_t>> watched;
    watched.swap(watched_);
    for (auto [id, gen] : watched) {
        Slot &slot = conns_[id];
        if (!slot.conn || slot.gen != gen || slot.conn->state != Conn::State::connecting) {
            continue;  // ended, or past connecting
        }
        Conn &c = *slot.conn;
        if (now < c.deadline) {
            watched_.emplace_back(id, gen);
        } else if (!c.connected) {  // connect timed out: the next backend
            next_backend(c);
            start_connect(c);
        } else {  // no ClientHello in time: a header without AUTHORITY
            c.sni_pending = false;
            maybe_send_header(c);
        }
    }
    if (ticking_ > 0) {
        for (Slot &slot : conns_) {
            if (slot.conn && slot.conn->relay && slot.conn->relay->ticks()) {
                apply(*slot.conn, slot.conn->relay->tick(*slot.conn));
            }
        }
    }
    if (now < next_idle_scan_) {
        return;
    }
    next_idle_scan_ = now + kIdleScan;
    log_.flush();
    for (Slot &slot : conns_) {
        if (!slot.conn || !slot.conn->relay) {
            continue;
        }
        Conn &c = *slot.conn;
        if (c.relay->moved_unseen(c)) {
            c.last_active = now;
        }
        if (now - c.last_active >= c.svc->cfg.idle_timeout) {
            count(c, &pp_tcp_stats::tcp_idle_closed);
            finish(c, {});
        }
    }
}

void Worker::finish(Conn &c, Ending how) {
    if (c.relay) {
        ticking_ -= c.relay->ticks() ? 1 : 0;
        c.relay.reset();  // sockmap: out of tcp_peers before the sockets close
    }
    if (how.reset_side >= 0) {
        count(c, &pp_tcp_stats::tcp_resets);
    }
    for (int s : {kClient, kBackend}) {
        bool reset =
            (s == kClient && how.reset_client) || (how.reset_side >= 0 && s != how.reset_side);
        if (reset && c.fd[s]) {
            close_with_reset(std::move(c.fd[s]));
        } else {
            c.fd[s].reset();  // also leaves tcp_socks and tcp_targets
        }
    }
    count(c, &pp_tcp_stats::tcp_active, -1);
    std::uint32_t id = c.id;
    conns_[id].gen++;
    conns_[id].conn.reset();
    free_.push_back(id);
}

}  // namespace ppinject::tcp
