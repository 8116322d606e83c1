#include "tcp/sockmap_relay.hpp"

#include <bpf/bpf.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "sys/error.hpp"
#include "tcp/socket.hpp"

namespace ppinject::tcp {
namespace {

// Backpressure: bytes redirected but not yet written to the other socket (they wait in the
// kernel's queue for it). Above kBacklogHigh the sender is held (see pp_tcp_conn); below
// kBacklogLow it is let go. A precise check (two syscalls) runs only after kBacklogCheck
// more bytes were redirected.
constexpr std::uint64_t kBacklogHigh = 4 << 20;
constexpr std::uint64_t kBacklogLow = 1 << 20;
constexpr std::uint64_t kBacklogCheck = 1 << 20;

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

SockmapRelay::~SockmapRelay() {
    for (RelayBuffer &buf : buf_) {
        if (buf) {
            host_.give_buffer(std::move(buf));
        }
    }
    if (joined_) {
        for (std::uint64_t cookie : cookie_) {  // the verdict then passes
            bpf_map_delete_elem(maps_.peers, &cookie);
        }
    }
}

std::uint64_t SockmapRelay::redirected(int side) const {
    return std::atomic_ref<__u64>(kconn().redirected[side]).load();
}
std::uint64_t SockmapRelay::held(int side) const {
    return std::atomic_ref<__u64>(kconn().held[side]).load();
}
// Of side's bytes: written to the other socket (forwarded: and on their way there).
std::uint64_t SockmapRelay::delivered(const Conn &c, int side) const {
    return written_bytes(c.fd[1 - side].get()) - base_written_[1 - side];
}
std::uint64_t SockmapRelay::forwarded(int side) const {
    return redirected(side) + taken_[side] - pending_[side];
}
// Held bytes not yet written to the other.
bool SockmapRelay::owes(int side) const {
    return held(side) != taken_[side] || pending_[side] > 0;
}
// Forwarded, not delivered yet.
std::uint64_t SockmapRelay::backlog(const Conn &c, int side) const {
    std::uint64_t f = forwarded(side), d = delivered(c, side);
    return f > d ? f - d : 0;
}

SockmapRelay::Join SockmapRelay::join(Conn &c) {
    pp_tcp_conn &k = kconn();
    for (int s : {kClient, kBackend}) {
        cookie_[s] = socket_cookie(c.fd[s].get());
        base_written_[s] = written_bytes(c.fd[s].get());
        for (__u64 *v : {&k.redirected[s], &k.held[s], &k.copied[s]}) {
            std::atomic_ref<__u64>(*v).store(0);
        }
        std::atomic_ref<__u32>(k.hold[s]).store(0);
    }
    std::atomic_ref<__u32>(k.broken).store(0);
    int err = 0;
    const char *doing = "";
    auto add = [&](int map, const char *name, int s, const void *value) {
        if (err == 0 && bpf_map_update_elem(map, &cookie_[s], value, BPF_NOEXIST) != 0) {
            err = -errno;
            doing = name;
        }
    };
    for (int s : {kClient, kBackend}) {  // targets first: a redirect must find its peer
        std::uint64_t fd = static_cast<std::uint64_t>(c.fd[s].get());
        add(maps_.targets, "tcp_targets", s, &fd);
    }
    for (int s : {kClient, kBackend}) {
        pp_tcp_peer peer{};
        peer.peer_cookie = cookie_[1 - s];
        peer.conn = slot_;
        peer.service_id = c.svc->cfg.id;
        peer.dir = s == kClient ? PP_TCP_TO_BACKEND : PP_TCP_TO_CLIENT;
        add(maps_.peers, "tcp_peers", s, &peer);
    }
    for (int s : {kClient, kBackend}) {
        std::uint64_t fd = static_cast<std::uint64_t>(c.fd[s].get());
        add(maps_.socks, "tcp_socks", s, &fd);
    }
    // Bytes queued before a socket joined the map are redirected once the receive low
    // watermark is set again.
    for (int s : {kClient, kBackend}) {
        if (err == 0) {
            err = set_option(c.fd[s].get(), SOL_SOCKET, SO_RCVLOWAT, 1);
            doing = "SO_RCVLOWAT";
        }
    }
    if (err != 0) {
        for (int s : {kClient, kBackend}) {
            bpf_map_delete_elem(maps_.socks, &cookie_[s]);
            bpf_map_delete_elem(maps_.peers, &cookie_[s]);
            bpf_map_delete_elem(maps_.targets, &cookie_[s]);
        }
        if (err == -EOPNOTSUPP) {
            return Join::not_established;
        }
        host_.log(error_text(std::string("tcp: add sockets to the sockmap (") + doing + ")", err));
        return Join::failed;
    }
    joined_ = true;
    fin_[kClient] = c.client_fin;
    return Join::joined;
}

Step SockmapRelay::start(Conn &c) {
    c.last_active = Clock::now();
    for (int s : {kClient, kBackend}) {  // an early FIN is passed on by tick()
        if (!host_.arm(c, s, fin_[s] ? 0u : EPOLLRDHUP)) {
            return Ending{.reset_client = true};
        }
    }
    return std::nullopt;
}

// Side `side` sent FIN: once every byte it sent has been written to the other socket,
// shut that socket's write side. Called from tick(): the verdict's counts must also have
// stayed the same for a whole tick, so bytes still on their way through it are not
// overtaken.
Step SockmapRelay::try_pass_fin(Conn &c, int side) {
    int other = 1 - side;
    std::uint64_t m = moved(side);
    bool stable = m == seen_[side];
    seen_[side] = m;
    if (!stable || owes(side) || delivered(c, side) < forwarded(side)) {
        return std::nullopt;
    }
    shutdown(c.fd[other].get(), SHUT_WR);
    shut_[other] = true;
    if (shut_[kClient] && shut_[kBackend]) {
        return Ending{};
    }
    return std::nullopt;
}

// Holds back side `side` while too many of its bytes wait in the kernel for the other
// socket, and has its held bytes copied on once every byte redirected before them is
// through.
void SockmapRelay::watch_backlog(Conn &c, int side) {
    std::uint64_t r = redirected(side);
    bool owed = owes(side);
    if (!hold_[side] && !owed && !copying_[side] && r - checked_[side] < kBacklogCheck) {
        return;
    }
    checked_[side] = r;
    std::uint64_t waiting = backlog(c, side);
    if (waiting == 0) {
        clear_[side] = r;
    }
    bool hold = hold_[side] ? waiting >= kBacklogLow : waiting > kBacklogHigh;
    if (hold != hold_[side]) {
        hold_[side] = hold;
        std::atomic_ref<__u32>(kconn().hold[side]).store(hold ? 1 : 0);
    }
    if (copying_[side] || (owed && waiting == 0)) {
        if (!copying_[side]) {
            copying_[side] = true;  // every redirected byte is through: the held ones follow
            arm(c);
        }
        copy_held(c, side);  // also ends the copying once nothing is owed or held
    }
}

// Copies side `side`'s held bytes (its own sockmap queue, which only recv() reads) to the
// other socket, as the other socket takes them. Once none is owed, the verdict redirects
// again (pp_tcp_conn.copied catches up with held).
void SockmapRelay::copy_held(Conn &c, int side) {
    if (!buf_[side]) {
        buf_[side] = host_.take_buffer();
    }
    std::uint64_t r = redirected(side);
    if (r != clear_[side]) {  // redirected since: held bytes must not overtake those
        if (backlog(c, side) > 0) {
            return;
        }
        clear_[side] = r;
    }
    for (;;) {
        if (pending_[side] > 0) {
            ssize_t n = send(c.fd[1 - side].get(), buf_[side].get() + head_[side], pending_[side],
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                return;  // full (EPOLLOUT resumes), or an error epoll reports
            }
            pending_[side] -= static_cast<std::size_t>(n);
            head_[side] += static_cast<std::size_t>(n);
            std::atomic_ref<__u64>(kconn().copied[side]).store(taken_[side] - pending_[side]);
            count_relayed(c, side, n);
            count(c, &pp_tcp_stats::tcp_bytes_held, n);
            continue;
        }
        std::uint64_t owed = held(side) - taken_[side];
        if (owed == 0) {
            if (!hold_[side]) {
                copying_[side] = false;
                arm(c);
            }
            return;
        }
        ssize_t n = recv(c.fd[side].get(), buf_[side].get(),
                         std::min<std::uint64_t>(owed, kRelayBuffer), MSG_DONTWAIT);
        if (n <= 0) {
            return;  // counted by the verdict, not queued yet: EPOLLIN resumes
        }
        taken_[side] += static_cast<std::uint64_t>(n);
        pending_[side] = static_cast<std::size_t>(n);
        head_[side] = 0;
    }
}

// Epoll interest of the sockets: FIN and errors always; readable and writable for the
// directions whose held bytes are being copied. A refusal is logged by the worker; the
// connection then goes on with the interest it had.
void SockmapRelay::arm(const Conn &c) {
    for (int s : {kClient, kBackend}) {
        std::uint32_t ev = (fin_[s] ? 0u : EPOLLRDHUP) | (copying_[s] ? EPOLLIN : 0u) |
                           (copying_[1 - s] ? EPOLLOUT : 0u);
        host_.arm(c, s, ev == 0 ? 0u : ev | EPOLLET);
    }
}

Step SockmapRelay::on_event(Conn &c, int side, std::uint32_t events) {
    if (events & EPOLLERR) {
        if (is_reset(socket_error(c.fd[side].get()))) {
            return Ending{.reset_side = side};
        }
        // EPIPE and the like right after a shutdown we passed on: not a reset.
    }
    // Closed both ways although we never shut its write side: reset, or timed out. Its
    // error may be gone already, taken by the kernel's own send of redirected bytes.
    if ((events & EPOLLHUP) && !shut_[side]) {
        return Ending{.reset_side = side};
    }
    if ((events & (EPOLLRDHUP | EPOLLHUP)) && !fin_[side]) {
        fin_[side] = true;  // passed on by tick() once its bytes are through
        arm(c);
    }
    for (int s : {kClient, kBackend}) {
        if (copying_[s]) {
            copy_held(c, s);
        }
    }
    return std::nullopt;
}

Step SockmapRelay::tick(Conn &c) {
    if (std::atomic_ref<__u32>(kconn().broken).load() != 0) {
        host_.log(
            "tcp: a retransmitted segment repeated more bytes than the verdict could cut; "
            "connection reset rather than passing them twice");
        return Ending{.reset_client = true, .reset_side = kClient};
    }
    for (int s : {kClient, kBackend}) {
        watch_backlog(c, s);
        if (fin_[s] && !shut_[1 - s]) {
            if (Step end = try_pass_fin(c, s)) {
                return end;
            }
        }
    }
    return std::nullopt;
}

bool SockmapRelay::moved_unseen(Conn &) {
    bool moved_or_held = false;
    for (int s : {kClient, kBackend}) {
        std::uint64_t m = moved(s);
        moved_or_held = moved_or_held || m != scanned_[s] || hold_[s] || copying_[s];
        scanned_[s] = m;
    }
    return moved_or_held;
}

}  // namespace ppinject::tcp
