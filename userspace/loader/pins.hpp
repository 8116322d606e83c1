// What ppinject leaves in the kernel between runs, and the one way to remove it: pinned
// maps under the pin root, and TC filters and XDP programs recorded in the pinned `attachments`
// map. Which maps are pinned, and under which names, comes from the skeletons: the file of a map
// under the pin root is its name in the BPF object.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

struct bpf_map;
struct udp_bpf;
struct tcp_bpf;
struct tcp_inline_bpf;

namespace ppinject {

// The UDP object's maps that are pinned. A new run adopts them when their layout matches:
// flows and counters carry on.
std::array<bpf_map *, 6> adopted_maps(const udp_bpf &udp);
// The inline TCP object's: its connection table, which outlives a run (connections go on),
// and the timer that sweeps it.
std::array<bpf_map *, 2> adopted_maps(const tcp_inline_bpf &inl);
// The TCP object's maps pinned for inspection only (tcp_listen: whether a transparent
// service has a listener, for the health check): their sockets live and die with the run,
// so each run pins fresh ones.
std::array<bpf_map *, 3> run_maps(const tcp_bpf &tcp);

// The BPF objects opened from the skeletons (never loaded), for the names of their maps
// and programs where nothing is loaded: detach, status, flows. Opened once per process;
// throws std::runtime_error if they cannot be.
const udp_bpf &udp_object();
const tcp_bpf &tcp_object();
const tcp_inline_bpf &tcp_inline_object();

// Whether program `prog_id` is one of ppinject's packet programs (by name: udp_ingress,
// udp_egress, udp_xdp, inline_ingress, inline_egress), so that a run or `detach` replaces or
// removes it and nobody else's.
bool is_ours(std::uint32_t prog_id);

// Path of a pinned map under `root`.
std::string pin_path(const std::string &root, const bpf_map *map);

// Removes every TC filter a run recorded in <root>/attachments (and any other filter of
// ppinject's at its handle and priority on this namespace's interfaces), deletes clsact
// qdiscs that ppinject created, unpins the maps and removes the pin root. Each step is
// reported through `log`; errors are reported and the rest still runs. Returns the number
// of errors.
int detach_all(const std::string &root, const std::function<void(const std::string &)> &log);

}  // namespace ppinject
