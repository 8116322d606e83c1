// XDP attachment of the UDP ingress program (attach = "xdp") through netlink, as the tc
// filters are: no bpf_link, so an attachment outlives a killed run until a new run adopts
// it or `ppinject detach` removes it. Native mode where the driver supports XDP, generic
// (skb) mode otherwise. A program of anyone else on the interface is never replaced.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace ppinject {

// The XDP program an interface runs and how (PP_XDP_MODE_NATIVE or _GENERIC).
struct XdpProgram {
    std::uint32_t prog_id = 0;
    std::uint8_t mode = 0;
};

// "native", "generic", or "-" for PP_XDP_MODE_NONE.
const char *xdp_mode_name(std::uint8_t mode);

// The program attached at XDP on `ifindex` (native or generic; offloaded ones count as
// foreign), if any.
std::optional<XdpProgram> xdp_query(int ifindex);

// Attaches `prog_fd`: in place of the program there when `ours` says it is ppinject's (an
// earlier run's, swapped atomically in its mode), else native, falling back to generic
// when the driver cannot. Throws std::runtime_error, changing nothing, when another
// program is there or the kernel refuses both modes. Returns the mode.
std::uint8_t xdp_attach(int ifindex, const std::string &ifname, int prog_fd,
                        const std::function<bool(std::uint32_t)> &ours);

// Removes the XDP program from `ifindex` if `ours` says it is ppinject's; only that
// program (another one that took its place in between stays). Returns false when nothing
// of ours was there. Throws on other errors.
bool xdp_detach(int ifindex, const std::string &ifname,
                const std::function<bool(std::uint32_t)> &ours);

}  // namespace ppinject
