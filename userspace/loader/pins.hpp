// What ppinject leaves in the kernel between runs, and the one way to remove it: pinned
// maps under the pin root, and TC filters recorded in the pinned `attachments` map.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <string_view>

namespace ppinject {

// Maps of the UDP object that ppinject pins under its pin root (also their file names
// there). A new run adopts them when their layout matches: flows and counters carry on.
inline constexpr std::array<std::string_view, 6> kPinnedMaps = {
    "services", "udp_addresses", "udp_ports", "counters", "udp_flows", "attachments"};
// Maps of the TCP object that are pinned for inspection only: their sockets live and die
// with the run, so each run pins fresh ones.
inline constexpr std::array<std::string_view, 2> kPinnedTcpMaps = {"tcp_socks", "tcp_stats"};

// Names of ppinject's TC programs; a filter at ppinject's handle and priority running one
// of these is ppinject's own.
inline constexpr std::array<std::string_view, 2> kTcPrograms = {"udp_ingress", "udp_egress"};

// Path of a pinned object.
std::string pin_path(const std::string &root, std::string_view name);

// Removes every TC filter a run recorded in <root>/attachments (and any other filter of
// ppinject's at its handle and priority on this namespace's interfaces), deletes clsact
// qdiscs that ppinject created, unpins the maps and removes the pin root. Each step is
// reported through `log`; errors are reported and the rest still runs. Returns the number
// of errors.
int detach_all(const std::string &root, const std::function<void(const std::string &)> &log);

}  // namespace ppinject
