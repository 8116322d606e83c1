#include "observe/host_health.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "loader/datapath.hpp"
#include "loader/pins.hpp"
#include "loader/tc.hpp"
#include "loader/xdp.hpp"
#include "observe/inspect.hpp"
#include "sys/error.hpp"
#include "sys/fd.hpp"
#include "tcp.skel.h"

namespace ppinject {
namespace {

// Local endpoints of the TCP sockets listening in this network namespace, from sock_diag:
// the kernel filters by state, so a host with many connections answers as fast as an idle
// one.
std::vector<Endpoint> tcp_listeners() {
    Fd nl(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!nl) {
        throw std::runtime_error(error_text("open a sock_diag socket", -errno));
    }
    std::vector<Endpoint> out;
    for (std::uint8_t family : {AF_INET, AF_INET6}) {
        struct {
            nlmsghdr nlh;
            inet_diag_req_v2 req;
        } msg{};
        msg.nlh.nlmsg_len = sizeof msg;
        msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        msg.req.sdiag_family = family;
        msg.req.sdiag_protocol = IPPROTO_TCP;
        msg.req.idiag_states = 1u << TCP_LISTEN;
        if (send(nl.get(), &msg, sizeof msg, 0) != static_cast<ssize_t>(sizeof msg)) {
            throw std::runtime_error(error_text("ask sock_diag for listening TCP sockets", -errno));
        }
        for (bool done = false; !done;) {
            alignas(nlmsghdr) char buf[16384];
            ssize_t n = recv(nl.get(), buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                throw std::runtime_error(
                    error_text("read listening TCP sockets from sock_diag", n < 0 ? -errno : -EIO));
            }
            int len = static_cast<int>(n);
            for (auto *h = reinterpret_cast<nlmsghdr *>(buf); NLMSG_OK(h, len);
                 h = NLMSG_NEXT(h, len)) {
                if (h->nlmsg_type == NLMSG_DONE) {
                    done = true;
                    break;
                }
                if (h->nlmsg_type == NLMSG_ERROR) {
                    int err = static_cast<const nlmsgerr *>(NLMSG_DATA(h))->error;
                    throw std::runtime_error(error_text("list listening TCP sockets", err));
                }
                const auto *m = static_cast<const inet_diag_msg *>(NLMSG_DATA(h));
                IpAddress addr;
                if (family == AF_INET) {
                    std::array<std::uint8_t, 4> v4;
                    std::memcpy(v4.data(), m->id.idiag_src, 4);
                    addr = IpAddress::v4(v4);
                } else {
                    std::array<std::uint8_t, 16> v6;
                    std::memcpy(v6.data(), m->id.idiag_src, 16);
                    addr = IpAddress::v6(v6);
                }
                out.push_back({addr, ntohs(m->id.idiag_sport)});
            }
        }
    }
    return out;
}

// An IPv4-mapped prefix of at least 96 bits: an IPv4 address or prefix.
bool is_v4_key(const pp_service_key &k) {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return k.prefixlen >= PP_SERVICE_KEY_FIXED_BITS + 96 &&
           std::memcmp(k.addr, kMapped, sizeof kMapped) == 0;
}

// The checks of one pass, with what they share read once.
class Check {
  public:
    Check(const std::string &root, HostHealth &out) : root_(root), out_(out) {}

    void udp(const ServiceView &svc, const std::vector<AttachmentView> &attachments) {
        on_interfaces(svc, attachments, [&](const AttachmentView &a) {
            if (a.value.xdp_prog_id) {
                xdp(svc, a);
            } else {
                hook(svc, a, TcHook::ingress, TcFilter::udp, a.value.ingress_prog_id);
            }
            if (svc.value.header == PP_HDR_SPP) {
                hook(svc, a, TcHook::egress, TcFilter::udp, a.value.egress_prog_id);
            }
        });
    }

    // An inline TCP service: both of its filters on every interface it names (the header
    // goes in on ingress, acknowledgements are shifted back on egress).
    void inline_tcp(const ServiceView &svc, const std::vector<AttachmentView> &attachments) {
        on_interfaces(svc, attachments, [&](const AttachmentView &a) {
            hook(svc, a, TcHook::ingress, TcFilter::inline_tcp, a.value.inline_ingress_prog_id);
            hook(svc, a, TcHook::egress, TcFilter::inline_tcp, a.value.inline_egress_prog_id);
        });
    }

    void tcp(const ServiceView &svc) {
        if (svc.value.flags & PP_SVC_TRANSPARENT) {
            steered(svc);
        } else {
            listening(svc);
        }
    }

  private:
    void problem(const ServiceView &svc, const std::string &what) {
        out_.problems.push_back(protocol_name(svc.protocol) + " service \"" + svc.name() +
                                "\": " + what);
    }

    // Calls f for each interface whose attachment names `svc` and still exists; a service
    // no attachment names is a problem.
    template <typename F>
    void on_interfaces(const ServiceView &svc, const std::vector<AttachmentView> &attachments,
                       F &&f) {
        std::uint32_t id = svc.value.id;
        bool any = false;
        for (const AttachmentView &a : attachments) {
            if (id / 32 >= PP_ATTACHMENT_SERVICE_WORDS ||
                !(a.value.services[id / 32] & (std::uint32_t{1} << (id % 32)))) {
                continue;
            }
            any = true;
            if (!interface_is(a.ifindex, a.ifname)) {
                problem(svc, "interface " + a.ifname + " is gone");
                continue;
            }
            f(a);
        }
        if (!any) {
            problem(svc, "attached to no interface");
        }
    }

    // ppinject's `filter` on that hook runs the program the run recorded.
    void hook(const ServiceView &svc, const AttachmentView &a, TcHook h, TcFilter filter,
              std::uint32_t recorded) {
        std::optional<std::uint32_t> id = tc_query(a.ifindex, h, filter);
        if (recorded == 0 || !id || *id != recorded) {
            problem(svc, std::string(to_string(filter)) + "tc " + to_string(h) + " on " + a.ifname +
                             (id ? " runs another program" : " is not attached"));
        }
    }

    // The interface runs at XDP the program the run recorded, in the mode recorded.
    void xdp(const ServiceView &svc, const AttachmentView &a) {
        std::optional<XdpProgram> p = xdp_query(a.ifindex);
        if (!p || p->prog_id != a.value.xdp_prog_id || p->mode != a.value.xdp_mode) {
            problem(svc, "XDP on " + a.ifname + (p ? " runs another program" : " is not attached"));
        }
    }

    // A transparent service: sk_lookup steers each family to the socket in its tcp_listen
    // slot, which the kernel removes when the socket closes.
    void steered(const ServiceView &svc) {
        bool v4 = false, v6 = false;
        for (const auto &k : svc.keys) {
            bool dual = k.prefixlen == PP_SERVICE_KEY_FIXED_BITS;  // [::]/0 takes IPv4 too
            v4 = v4 || is_v4_key(k) || dual;
            v6 = v6 || !is_v4_key(k);
        }
        if (!tcp_listen_ && tcp_listen_error_.empty()) {
            std::string path = pin_path(root_, tcp_object().maps.tcp_listen);
            tcp_listen_.reset(bpf_obj_get(path.c_str()));
            if (!tcp_listen_) {
                tcp_listen_error_ = error_text("open " + path, -errno);
            }
        }
        if (!tcp_listen_) {
            problem(svc, "cannot tell whether it listens: " + tcp_listen_error_);
            return;
        }
        for (bool ipv6 : {false, true}) {
            if (!(ipv6 ? v6 : v4)) {
                continue;
            }
            std::uint32_t slot = PP_TCP_LISTEN_SLOT(svc.value.id, ipv6);
            std::uint64_t cookie = 0;  // what a lookup from userspace returns
            if (bpf_map_lookup_elem(tcp_listen_.get(), &slot, &cookie) != 0) {
                problem(svc, std::string("not listening (no ") + (ipv6 ? "IPv6" : "IPv4") +
                                 " listener for sk_lookup in tcp_listen)");
            }
        }
    }

    // A service the daemon listens for on its own addresses: one socket for each address
    // and port.
    void listening(const ServiceView &svc) {
        if (!listeners_ && listeners_error_.empty()) {
            try {
                listeners_ = tcp_listeners();
            } catch (const std::exception &e) {
                listeners_error_ = e.what();
            }
        }
        if (!listeners_) {
            problem(svc, "cannot tell whether it listens: " + listeners_error_);
            return;
        }
        std::vector<std::string> missing;
        for (const auto &k : svc.keys) {
            std::array<std::uint8_t, 16> raw;
            std::memcpy(raw.data(), k.addr, 16);
            Endpoint want{IpAddress::v6(raw), ntohs(k.port)};
            if (std::find(listeners_->begin(), listeners_->end(), want) == listeners_->end()) {
                missing.push_back(want.to_string());
            }
        }
        if (!missing.empty()) {
            std::sort(missing.begin(), missing.end());
            problem(svc, "not listening on " + missing[0] +
                             (missing.size() > 1
                                  ? " (and " + std::to_string(missing.size() - 1) + " more)"
                                  : std::string()));
        }
    }

    const std::string &root_;
    HostHealth &out_;
    Fd tcp_listen_;
    std::string tcp_listen_error_;
    std::optional<std::vector<Endpoint>> listeners_;
    std::string listeners_error_;
};

}  // namespace

std::string HostHealth::summary() const {
    if (problems.empty()) {
        return "ok";
    }
    std::string out;
    for (const auto &p : problems) {
        out += (out.empty() ? "" : "; ") + p;
    }
    return out;
}

HostHealth check_host_health(const std::string &root) {
    HostHealth h;
    Snapshot s;
    try {
        s = read_snapshot(root, FlowTable::skip);
    } catch (const std::exception &e) {
        h.problems.push_back(e.what());
        return h;
    }
    if (pin_root_owner(root) == 0) {
        h.problems.push_back("no ppinject run owns " + root +
                             " (a killed run's UDP data path may still be attached)");
    }
    try {
        Check check(root, h);
        for (const ServiceView &svc : s.services) {
            if (svc.protocol == IPPROTO_UDP) {
                check.udp(svc, s.attachments);
            } else if (svc.is_inline()) {
                check.inline_tcp(svc, s.attachments);
            } else {
                check.tcp(svc);
            }
        }
    } catch (const std::exception &e) {
        h.problems.push_back(e.what());  // the BPF object could not be opened for a map name
    }
    return h;
}

nlohmann::json to_json(const HostHealth &h) {
    return {{"healthy", h.ok()}, {"summary", h.summary()}, {"problems", h.problems}};
}

}  // namespace ppinject
