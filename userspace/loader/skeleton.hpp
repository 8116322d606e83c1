// Owners of libbpf objects, destroyed once when the owner goes: a BPF skeleton (bpftool's
// C++ wrapper, `udp_bpf`, `tcp_bpf`, has a static destroy()) and a BPF link.
#pragma once

#include <bpf/libbpf.h>

#include <memory>

namespace ppinject {

template <typename Skel>
struct SkeletonDestroy {
    void operator()(Skel *s) const { Skel::destroy(s); }
};
// `Skeleton<udp_bpf> skel(udp_bpf::open());`: empty when open() failed (errno says why).
template <typename Skel>
using Skeleton = std::unique_ptr<Skel, SkeletonDestroy<Skel>>;

struct LinkDestroy {
    void operator()(bpf_link *l) const { bpf_link__destroy(l); }
};
using Link = std::unique_ptr<bpf_link, LinkDestroy>;

}  // namespace ppinject
