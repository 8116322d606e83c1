// TC (clsact) attachment of BPF programs as direct-action cls_bpf filters, through
// libbpf's TC API (libbpf 1.1 has no TCX). ppinject uses one fixed handle and one fixed
// priority per program family (UDP, inline TCP), so a later run or `ppinject detach`
// finds its own filters and nobody else's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ppinject {

enum class TcHook { ingress, egress };
// Which of ppinject's filters on a hook: the UDP programs, or the inline TCP ones behind
// them (a lower priority runs first; the UDP programs pass TCP on untouched).
enum class TcFilter { udp, inline_tcp };
inline constexpr TcFilter kTcFilters[] = {TcFilter::udp, TcFilter::inline_tcp};

// Filter handle ppinject's filters use on every hook, and their priorities.
inline constexpr std::uint32_t kTcHandle = 0x9b1;
inline constexpr std::uint32_t kTcPriority = 0x9b1;
inline constexpr std::uint32_t kTcInlinePriority = 0x9b2;

const char *to_string(TcHook hook);
// "" for the UDP filter, "inline TCP " for the other: what log lines put in front.
const char *to_string(TcFilter filter);

// Creates the clsact qdisc on `ifindex` unless one is there. Returns true when this call
// created it (only then may ppinject delete it). Throws std::runtime_error.
bool ensure_clsact(int ifindex, const std::string &ifname);

// Attaches `prog_fd` as ppinject's `filter` on that hook, replacing a filter already there
// (an earlier run's: the swap is atomic, no packet sees neither). Throws.
void tc_attach(int ifindex, const std::string &ifname, TcHook hook, TcFilter filter, int prog_fd);

// The id of the program of ppinject's `filter` on that hook, if any.
std::optional<std::uint32_t> tc_query(int ifindex, TcHook hook, TcFilter filter);

// Removes ppinject's `filter` from that hook. Returns false if none was there. Throws on
// other errors.
bool tc_detach(int ifindex, const std::string &ifname, TcHook hook, TcFilter filter);

// Deletes the clsact qdisc (and with it every filter on it). Throws.
void destroy_clsact(int ifindex, const std::string &ifname);

// Interface index of `ifname` in this network namespace; throws with a clear message.
int interface_index(const std::string &ifname);

// Whether `ifindex` still names interface `ifname` in this network namespace (false once
// the interface is deleted, or renamed; its filters went with it, or are not the ones
// recorded under that name).
bool interface_is(int ifindex, const std::string &ifname);

}  // namespace ppinject
