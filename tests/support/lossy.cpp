#include "support/lossy.hpp"

#include <bpf/libbpf.h>

#include <cerrno>
#include <stdexcept>

#include "loader/tc.hpp"
#include "lossy.skel.h"
#include "sys/error.hpp"

namespace pptest {
namespace {

// Not ppinject's handle and priority (loader/tc.hpp): the link never touches its filters.
constexpr std::uint32_t kLossyHandle = 0x7e57, kLossyPriority = 0x7e57;

bpf_tc_attach_point point(LossyLink::Hook hook) {
    return hook == LossyLink::Hook::ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

}  // namespace

LossyLink::LossyLink(const Netns &ns, const std::string &ifname, Hook hook)
    : ns_(ns), ifname_(ifname), hook_(hook) {
    skel_ = lossy_bpf__open_and_load();
    if (!skel_) {
        int err = -errno;
        throw std::runtime_error(ppinject::error_text("load lossy.bpf.o", err));
    }
    try {
        ns_.run_inside([&] {
            ifindex_ = ppinject::interface_index(ifname_);
            created_qdisc_ = ppinject::ensure_clsact(ifindex_, ifname_);
            bpf_program *prog =
                hook_ == Hook::ingress ? skel_->progs.lossy_ingress : skel_->progs.lossy_egress;
            LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex_, .attach_point = point(hook_));
            LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(prog), .handle = kLossyHandle,
                        .priority = kLossyPriority);
            int err = bpf_tc_attach(&h, &opts);
            if (err) {
                throw std::runtime_error(
                    ppinject::error_text("attach the lossy link on " + ifname_, err));
            }
            attached_ = true;
        });
    } catch (...) {
        remove();  // what was attached so far goes again
        throw;
    }
}

LossyLink::~LossyLink() {
    remove();
}

void LossyLink::remove() {
    if (attached_ || created_qdisc_) {
        try {
            ns_.run_inside([&] {
                if (!ppinject::interface_is(ifindex_, ifname_)) {
                    return;  // gone with its namespace or link, and its filters with it
                }
                LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex_, .attach_point = point(hook_));
                LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kLossyHandle, .priority = kLossyPriority);
                if (attached_) {
                    bpf_tc_detach(&h, &opts);
                }
                if (created_qdisc_) {
                    ppinject::destroy_clsact(ifindex_, ifname_);
                }
            });
        } catch (...) {
            // The namespace is being removed anyway; nothing else is left to undo.
        }
        attached_ = created_qdisc_ = false;
    }
    lossy_bpf__destroy(skel_);
    skel_ = nullptr;
}

void LossyLink::set(const lossy_conf &conf) {
    std::uint32_t zero = 0;
    int err = bpf_map__update_elem(skel_->maps.lossy_conf, &zero, sizeof zero, &conf, sizeof conf,
                                   BPF_ANY);
    if (err) {
        throw std::runtime_error(ppinject::error_text("configure the lossy link", err));
    }
}

std::uint64_t LossyLink::stat(unsigned i) const {
    std::uint64_t v = 0;
    int err = bpf_map__lookup_elem(skel_->maps.lossy_stats, &i, sizeof i, &v, sizeof v, 0);
    if (err) {
        throw std::runtime_error(ppinject::error_text("read the lossy link's stats", err));
    }
    return v;
}

std::string LossyLink::describe() const {
    static const char *const kNames[LOSSY_STATS] = {
        "tcp",        "headers seen",    "headers dropped", "random dropped",
        "duplicated", "duplicate failed"};
    std::string s = "lossy link on " + ifname_ + ":";
    for (unsigned i = 0; i < LOSSY_STATS; i++) {
        s += std::string(i ? "," : "") + " " + kNames[i] + " " + std::to_string(stat(i));
    }
    return s;
}

}  // namespace pptest
