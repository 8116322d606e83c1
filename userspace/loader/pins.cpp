#include "loader/pins.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "loader/bpffs.hpp"
#include "sys/kernel.hpp"
#include "loader/map_iter.hpp"
#include "loader/skeleton.hpp"
#include "loader/tc.hpp"
#include "loader/xdp.hpp"
#include "sys/error.hpp"
#include "sys/fd.hpp"
#include "tcp.skel.h"
#include "tcp_inline.skel.h"
#include "udp.skel.h"

namespace ppinject {
namespace {

// Name of the BPF program with this id, or "" if it is gone.
std::string prog_name(std::uint32_t id) {
    Fd fd(bpf_prog_get_fd_by_id(id));
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (!fd || bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) {
        return {};
    }
    return info.name;
}

template <typename Skel>
const Skel &opened(Skel *(*open)(const bpf_object_open_opts *), const char *what) {
    static const Skeleton<Skel> skel(open(nullptr));
    if (!skel) {
        int err = -errno;
        throw std::runtime_error(error_text(std::string("open BPF object ") + what, err));
    }
    return *skel;
}

struct Interface {
    int ifindex;
    std::string name;
};

std::vector<Interface> interfaces() {
    std::vector<Interface> out;
    struct if_nameindex *list = if_nameindex();
    if (!list) {
        return out;
    }
    for (struct if_nameindex *i = list; i->if_index != 0; i++) {
        out.push_back({static_cast<int>(i->if_index), i->if_name});
    }
    if_freenameindex(list);
    return out;
}

// Removes every filter of ours on the interface's two hooks; `what` goes into the log line.
void detach_filters(int ifindex, const std::string &name, const char *what,
                    const std::function<void(const std::function<void()> &)> &attempt,
                    const std::function<void(const std::string &)> &log) {
    for (TcHook hook : {TcHook::ingress, TcHook::egress}) {
        for (TcFilter filter : kTcFilters) {
            auto id = tc_query(ifindex, hook, filter);
            if (id && is_ours(*id)) {
                attempt([&] {
                    if (tc_detach(ifindex, name, hook, filter)) {
                        log(std::string("detached ") + what + to_string(filter) + "tc " +
                            to_string(hook) + " on " + name);
                    }
                });
            }
        }
    }
}

}  // namespace

bool is_ours(std::uint32_t prog_id) {
    std::string name = prog_name(prog_id);
    const udp_bpf &udp = udp_object();
    const tcp_inline_bpf &inl = tcp_inline_object();
    for (const bpf_program *p : {udp.progs.udp_ingress, udp.progs.udp_egress, udp.progs.udp_xdp,
                                 inl.progs.inline_ingress, inl.progs.inline_egress}) {
        if (name == bpf_program__name(p)) {
            return true;
        }
    }
    return false;
}

std::array<bpf_map *, 6> adopted_maps(const udp_bpf &udp) {
    return {udp.maps.services, udp.maps.udp_addresses, udp.maps.udp_ports,
            udp.maps.counters, udp.maps.udp_flows,     udp.maps.attachments};
}

std::array<bpf_map *, 2> adopted_maps(const tcp_inline_bpf &inl) {
    return {inl.maps.inline_conns, inl.maps.inline_sweep};
}

std::array<bpf_map *, 3> run_maps(const tcp_bpf &tcp) {
    return {tcp.maps.tcp_listen, tcp.maps.tcp_socks, tcp.maps.tcp_stats};
}

const udp_bpf &udp_object() {
    return opened<udp_bpf>(udp_bpf::open, "udp");
}
const tcp_bpf &tcp_object() {
    return opened<tcp_bpf>(tcp_bpf::open, "tcp");
}
const tcp_inline_bpf &tcp_inline_object() {
    return opened<tcp_inline_bpf>(tcp_inline_bpf::open, "tcp_inline");
}

std::string pin_path(const std::string &root, const bpf_map *map) {
    return root + "/" + bpf_map__name(map);
}

int detach_all(const std::string &root, const std::function<void(const std::string &)> &log) {
    int errors = 0;
    auto attempt = [&](const std::function<void()> &step) {
        try {
            step();
        } catch (const std::exception &e) {
            log(e.what());
            errors++;
        }
    };

    // 1. What a run recorded: its filters, and the clsact qdiscs it created.
    std::vector<std::pair<int, pp_attachment>> recorded;
    const udp_bpf &udp = udp_object();
    Fd fd(bpf_obj_get(pin_path(root, udp.maps.attachments).c_str()));
    if (fd) {
        for_each_entry<std::uint32_t, pp_attachment>(
            fd.get(), [&](std::uint32_t ifindex, const pp_attachment &a) {
                recorded.emplace_back(static_cast<int>(ifindex), a);
            });
    }
    for (const auto &[ifindex, a] : recorded) {
        std::string name(a.ifname, strnlen(a.ifname, sizeof a.ifname));
        if (!interface_is(ifindex, name)) {
            log("interface " + name + " is gone; its filters went with it");
        } else {
            attempt([&] {
                if (xdp_detach(ifindex, name, is_ours)) {
                    log("detached XDP on " + name);
                }
            });
            detach_filters(ifindex, name, "", attempt, log);
            if (a.created_clsact) {
                attempt([&] {
                    destroy_clsact(ifindex, name);
                    log(std::string("deleted clsact qdisc on ") + name);
                });
            }
        }
        std::uint32_t k = static_cast<std::uint32_t>(ifindex);
        bpf_map_delete_elem(fd.get(), &k);  // the map is unpinned below in any case
    }

    // 2. Filters of ours that no record names (the record was lost or never written).
    for (const auto &itf : interfaces()) {
        attempt([&] {
            if (xdp_detach(itf.ifindex, itf.name, is_ours)) {
                log("detached unrecorded XDP on " + itf.name);
            }
        });
        detach_filters(itf.ifindex, itf.name, "unrecorded ", attempt, log);
    }

    // 3. Pins, then the pin root if nothing else is in it.
    std::vector<const bpf_map *> maps;
    for (const bpf_map *m : adopted_maps(udp)) {
        maps.push_back(m);
    }
    for (const bpf_map *m : run_maps(tcp_object())) {
        maps.push_back(m);
    }
    for (const bpf_map *m : adopted_maps(tcp_inline_object())) {
        maps.push_back(m);
    }
    for (const bpf_map *m : maps) {
        std::string path = pin_path(root, m);
        if (unlink(path.c_str()) == 0) {
            log("unpinned " + path);
        } else if (errno != ENOENT) {
            int err = -errno;
            log(error_text("unpin " + path, err));
            errors++;
        }
    }
    remove_pin_root(root);
    return errors;
}

}  // namespace ppinject
