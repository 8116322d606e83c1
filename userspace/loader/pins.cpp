#include "loader/pins.hpp"

#include <bpf/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "loader/libbpf_log.hpp"
#include "loader/bpffs.hpp"
#include "sys/kernel.hpp"
#include "loader/tc.hpp"

namespace ppinject {
namespace {

// Name of the BPF program with this id, or "" if it is gone.
std::string prog_name(std::uint32_t id) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) {
        return {};
    }
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    std::string name;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
        name = info.name;
    }
    close(fd);
    return name;
}

bool is_ours(std::uint32_t prog_id) {
    std::string name = prog_name(prog_id);
    return std::find(kTcPrograms.begin(), kTcPrograms.end(), name) != kTcPrograms.end();
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

}  // namespace

std::string pin_path(const std::string &root, std::string_view name) {
    return root + "/" + std::string(name);
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
    int fd = bpf_obj_get(pin_path(root, "attachments").c_str());
    if (fd >= 0) {
        std::uint32_t key, next;
        std::uint32_t *prev = nullptr;
        while (bpf_map_get_next_key(fd, prev, &next) == 0) {
            pp_attachment a{};
            if (bpf_map_lookup_elem(fd, &next, &a) == 0) {
                recorded.emplace_back(static_cast<int>(next), a);
            }
            key = next;
            prev = &key;
        }
    }
    for (const auto &[ifindex, a] : recorded) {
        char name[IF_NAMESIZE] = {};
        std::string recorded_name(a.ifname, strnlen(a.ifname, sizeof a.ifname));
        if (!if_indextoname(static_cast<unsigned>(ifindex), name) || recorded_name != name) {
            log("interface " + recorded_name + " is gone; its filters went with it");
        } else {
            for (TcHook hook : {TcHook::ingress, TcHook::egress}) {
                auto id = tc_query(ifindex, hook);
                if (id && is_ours(*id)) {
                    attempt([&] {
                        if (tc_detach(ifindex, name, hook)) {
                            log(std::string("detached tc ") + to_string(hook) + " on " + name);
                        }
                    });
                }
            }
            if (a.created_clsact) {
                attempt([&] {
                    destroy_clsact(ifindex, name);
                    log(std::string("deleted clsact qdisc on ") + name);
                });
            }
        }
        if (fd >= 0) {
            std::uint32_t k = static_cast<std::uint32_t>(ifindex);
            bpf_map_delete_elem(fd, &k);
        }
    }
    if (fd >= 0) {
        close(fd);
    }

    // 2. Filters of ours that no record names (the record was lost or never written).
    for (const auto &itf : interfaces()) {
        for (TcHook hook : {TcHook::ingress, TcHook::egress}) {
            auto id = tc_query(itf.ifindex, hook);
            if (id && is_ours(*id)) {
                attempt([&] {
                    if (tc_detach(itf.ifindex, itf.name, hook)) {
                        log(std::string("detached unrecorded tc ") + to_string(hook) + " on " +
                            itf.name);
                    }
                });
            }
        }
    }

    // 3. Pins, then the pin root if nothing else is in it.
    std::vector<std::string_view> names(kPinnedMaps.begin(), kPinnedMaps.end());
    names.insert(names.end(), kPinnedTcpMaps.begin(), kPinnedTcpMaps.end());
    for (auto name : names) {
        std::string path = pin_path(root, name);
        if (unlink(path.c_str()) == 0) {
            log("unpinned " + path);
        } else if (errno != ENOENT) {
            log("unpin " + path + ": " + std::strerror(errno));
            errors++;
        }
    }
    remove_pin_root(root);
    return errors;
}

}  // namespace ppinject
