#include "loader/xdp.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <cerrno>
#include <stdexcept>

#include "loader/libbpf_log.hpp"
#include "ppinject.h"
#include "sys/error.hpp"
#include "sys/fd.hpp"

namespace ppinject {
namespace {

std::uint32_t mode_flag(std::uint8_t mode) {
    return mode == PP_XDP_MODE_NATIVE ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}

// The name of program `id`, for the message that refuses to replace it.
std::string describe_prog(std::uint32_t id) {
    Fd fd(bpf_prog_get_fd_by_id(id));
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (fd && bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0 && info.name[0]) {
        return "id " + std::to_string(id) + " \"" + info.name + "\"";
    }
    return "id " + std::to_string(id);
}

std::runtime_error foreign(const std::string &ifname, std::uint32_t id) {
    return std::runtime_error("attach XDP on " + ifname + ": the interface runs another XDP " +
                              "program (" + describe_prog(id) +
                              "); ppinject never replaces it: remove it or use attach = \"tc\"");
}

}  // namespace

const char *xdp_mode_name(std::uint8_t mode) {
    switch (mode) {
        case PP_XDP_MODE_NATIVE:
            return "native";
        case PP_XDP_MODE_GENERIC:
            return "generic";
        default:
            return "-";
    }
}

std::optional<XdpProgram> xdp_query(int ifindex) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q) != 0) {
        return std::nullopt;  // no such interface (any more): nothing attached
    }
    if (q.drv_prog_id) {
        return XdpProgram{q.drv_prog_id, PP_XDP_MODE_NATIVE};
    }
    if (q.skb_prog_id) {
        return XdpProgram{q.skb_prog_id, PP_XDP_MODE_GENERIC};
    }
    if (q.hw_prog_id) {
        return XdpProgram{q.hw_prog_id, PP_XDP_MODE_NONE};  // offloaded: never ours
    }
    return std::nullopt;
}

std::uint8_t xdp_attach(int ifindex, const std::string &ifname, int prog_fd,
                        const std::function<bool(std::uint32_t)> &ours) {
    if (auto there = xdp_query(ifindex)) {
        if (there->mode == PP_XDP_MODE_NONE || !ours(there->prog_id)) {
            throw foreign(ifname, there->prog_id);
        }
        // An earlier run's: swap atomically, in the mode it runs in, and only if it is
        // still the one there (XDP_FLAGS_REPLACE compares).
        Fd old(bpf_prog_get_fd_by_id(there->prog_id));
        if (!old) {
            int err = -errno;
            throw std::runtime_error(
                error_text("replace ppinject's XDP program on " + ifname, err));
        }
        LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old.get());
        int err =
            bpf_xdp_attach(ifindex, prog_fd, mode_flag(there->mode) | XDP_FLAGS_REPLACE, &opts);
        if (err) {
            throw std::runtime_error(error_text(std::string("replace ppinject's XDP program on ") +
                                                    ifname + " (" + xdp_mode_name(there->mode) +
                                                    ")",
                                                err));
        }
        return there->mode;
    }
    int native_err = 0;
    {
        QuietLibbpf quiet;  // a driver without XDP support is an answer: try generic
        native_err = bpf_xdp_attach(ifindex, prog_fd,
                                    XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_DRV_MODE, nullptr);
    }
    if (native_err == 0) {
        return PP_XDP_MODE_NATIVE;
    }
    if (native_err == -EBUSY || native_err == -EEXIST) {
        // Someone attached in between (UPDATE_IF_NOEXIST refused to replace it).
        auto there = xdp_query(ifindex);
        throw foreign(ifname, there ? there->prog_id : 0);
    }
    int err =
        bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_SKB_MODE, nullptr);
    if (err == -EBUSY || err == -EEXIST) {
        auto there = xdp_query(ifindex);
        throw foreign(ifname, there ? there->prog_id : 0);
    }
    if (err) {
        throw std::runtime_error(
            error_text(error_text("attach XDP on " + ifname + " (native", native_err) + "; generic",
                       err) +
            ")");
    }
    return PP_XDP_MODE_GENERIC;
}

bool xdp_detach(int ifindex, const std::string &ifname,
                const std::function<bool(std::uint32_t)> &ours) {
    auto there = xdp_query(ifindex);
    if (!there || there->mode == PP_XDP_MODE_NONE || !ours(there->prog_id)) {
        return false;
    }
    Fd old(bpf_prog_get_fd_by_id(there->prog_id));
    if (!old) {
        return false;  // unloaded in between: it is gone
    }
    LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old.get());
    int err = bpf_xdp_detach(ifindex, mode_flag(there->mode) | XDP_FLAGS_REPLACE, &opts);
    if (err == -EEXIST) {
        return false;  // another program took its place: not ours to remove
    }
    if (err) {
        throw std::runtime_error(error_text(
            std::string("detach XDP (") + xdp_mode_name(there->mode) + ") on " + ifname, err));
    }
    return true;
}

}  // namespace ppinject
