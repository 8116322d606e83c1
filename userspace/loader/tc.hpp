// TC (clsact) attachment of BPF programs as direct-action cls_bpf filters, through
// libbpf's TC API (libbpf 1.1 has no TCX). ppinject uses one fixed handle and priority,
// so a later run or `ppinject detach` finds its own filters and nobody else's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ppinject {

enum class TcHook { ingress, egress };

// Filter handle and priority ppinject's filters use on every hook.
inline constexpr std::uint32_t kTcHandle = 0x9b1;
inline constexpr std::uint32_t kTcPriority = 0x9b1;
// The inline TCP programs' filters: the same handle at a priority of their own, beside the
// UDP ones on the same hooks.
inline constexpr std::uint32_t kTcInlinePriority = 0x9b2;

const char *to_string(TcHook hook);

// Creates the clsact qdisc on `ifindex` unless one is there. Returns true when this call
// created it (only then may ppinject delete it). Throws std::runtime_error.
bool ensure_clsact(int ifindex, const std::string &ifname);

// Attaches `prog_fd` at ppinject's handle/priority, replacing a filter already there
// (an earlier run's: the swap is atomic, no packet sees neither). Throws.
void tc_attach(int ifindex, const std::string &ifname, TcHook hook, int prog_fd);

// The id of the program at ppinject's handle and `priority` on that hook, if any.
std::optional<std::uint32_t> tc_query(int ifindex, TcHook hook,
                                      std::uint32_t priority = kTcPriority);

// Removes ppinject's filter from that hook. Returns false if none was there. Throws on
// other errors.
bool tc_detach(int ifindex, const std::string &ifname, TcHook hook);

// Deletes the clsact qdisc (and with it every filter on it). Throws.
void destroy_clsact(int ifindex, const std::string &ifname);

// Interface index of `ifname` in this network namespace; throws with a clear message.
int interface_index(const std::string &ifname);

// Whether `ifindex` still names interface `ifname` in this network namespace (false once
// the interface is deleted, or renamed; its filters went with it, or are not the ones
// recorded under that name).
bool interface_is(int ifindex, const std::string &ifname);

}  // namespace ppinject
