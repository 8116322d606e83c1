#include "loader/tc.hpp"

#include <bpf/libbpf.h>
#include <net/if.h>

#include <cerrno>
#include <stdexcept>

#include "loader/libbpf_log.hpp"
#include "sys/error.hpp"

namespace ppinject {
namespace {

bpf_tc_attach_point attach_point(TcHook hook) {
    return hook == TcHook::ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

std::string where(const char *what, const std::string &ifname, TcHook hook) {
    return std::string(what) + " tc " + to_string(hook) + " on " + ifname;
}

}  // namespace

const char *to_string(TcHook hook) {
    return hook == TcHook::ingress ? "ingress" : "egress";
}

int interface_index(const std::string &ifname) {
    unsigned idx = if_nametoindex(ifname.c_str());
    if (idx == 0) {
        throw std::runtime_error("interface " + ifname + " not found in this network namespace");
    }
    return static_cast<int>(idx);
}

bool interface_is(int ifindex, const std::string &ifname) {
    char name[IF_NAMESIZE] = {};
    return if_indextoname(static_cast<unsigned>(ifindex), name) && ifname == name;
}

bool ensure_clsact(int ifindex, const std::string &ifname) {
    QuietLibbpf quiet;  // EEXIST ("exclusivity flag on") means it is there already
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    int err = bpf_tc_hook_create(&hook);
    if (err == -EEXIST) {
        return false;
    }
    if (err) {
        throw std::runtime_error(error_text("create clsact qdisc on " + ifname, err));
    }
    return true;
}

void tc_attach(int ifindex, const std::string &ifname, TcHook hook, int prog_fd) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex, .attach_point = attach_point(hook));
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
                .handle = kTcHandle, .priority = kTcPriority);
    int err = bpf_tc_attach(&h, &opts);
    if (err) {
        throw std::runtime_error(error_text(where("attach", ifname, hook), err));
    }
}

std::optional<std::uint32_t> tc_query(int ifindex, TcHook hook, std::uint32_t priority) {
    QuietLibbpf quiet;  // "no clsact" and "no such filter" are answers here
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex, .attach_point = attach_point(hook));
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = priority);
    if (bpf_tc_query(&h, &opts) != 0) {
        return std::nullopt;
    }
    return opts.prog_id;
}

bool tc_detach(int ifindex, const std::string &ifname, TcHook hook) {
    QuietLibbpf quiet;  // a missing filter is reported by the return value
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex, .attach_point = attach_point(hook));
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
    int err = bpf_tc_detach(&h, &opts);
    if (err == -ENOENT || err == -EINVAL) {
        return false;  // no clsact qdisc, or no filter at our handle/priority
    }
    if (err) {
        throw std::runtime_error(error_text(where("detach", ifname, hook), err));
    }
    return true;
}

void destroy_clsact(int ifindex, const std::string &ifname) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex,
                .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
    int err = bpf_tc_hook_destroy(&h);
    if (err && err != -ENOENT && err != -EINVAL) {
        throw std::runtime_error(error_text("delete clsact qdisc on " + ifname, err));
    }
}

}  // namespace ppinject
