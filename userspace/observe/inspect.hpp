// Reading a running (or crashed) ppinject's state from its pinned maps, from any process:
// the services with their counters, the attachments, the UDP flow table and the inline TCP
// connection table.
#pragma once

#include <nlohmann/json.hpp>

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <vector>

#include "codec/address.hpp"
#include "sys/kernel.hpp"

namespace ppinject {

// One service as the `services` map holds it, its listen keys folded back into
// "ADDR[/PREFIX]:PORT[-PORT]" specs, and its counters summed over CPUs.
struct ServiceView {
    pp_service value{};
    std::uint8_t protocol = 0;
    std::vector<pp_service_key> keys;  // its entries in `services`
    std::vector<std::string> listen;
    pp_counters counters{};  // UDP services
    pp_tcp_stats tcp{};      // TCP services (zero when no run pinned tcp_stats)

    std::string name() const;
    // A TCP service with mode = "inline": the tc programs serve it, not the relay.
    bool is_inline() const { return protocol == IPPROTO_TCP && (value.flags & PP_SVC_INLINE); }
    // Whether the tc programs count it in `counters` (UDP, inline TCP); else the relay does,
    // in tcp_stats.
    bool kernel_counted() const { return protocol == IPPROTO_UDP || is_inline(); }
};

// A service's counters by name: kCounters for UDP, kTcpStats for TCP services. The one
// list status, --json and metrics show.
std::vector<std::pair<std::string_view, std::uint64_t>> counters_of(const ServiceView &svc);

// An interface with ppinject's filters on it.
struct AttachmentView {
    std::string ifname;
    int ifindex = 0;
    pp_attachment value{};
};

struct Snapshot {
    std::vector<ServiceView> services;  // by id
    std::vector<AttachmentView> attachments;
    std::uint64_t flows = 0;      // entries in udp_flows (0 with FlowTable::skip)
    std::uint64_t max_flows = 0;  // its capacity
    // inline_conns, when a run pinned it: entries (0 with FlowTable::skip) and capacity.
    bool inline_table = false;
    std::uint64_t inline_conns = 0;
    std::uint64_t max_inline_conns = 0;
};

// One entry of a table keyed by pp_flow_key (`udp_flows`, `inline_conns`), with ages
// computed against CLOCK_MONOTONIC_COARSE now. `service` is the address the client sent
// to (dialled, before any DNAT).
template <typename V>
struct TableEntry {
    Endpoint client;
    Endpoint service;
    V value{};
    std::string service_name;
    double age_s = 0;
    double idle_s = 0;
};
using FlowView = TableEntry<pp_flow>;
using ConnView = TableEntry<pp_inline_conn>;

// Whether read_snapshot counts the entries of udp_flows and inline_conns: one syscall per
// entry, which a frequent caller (the health check) has no use for.
enum class FlowTable { count, skip };

// Reads the pins under `root`. Throws std::runtime_error naming the missing pin when there
// is no ppinject state there.
Snapshot read_snapshot(const std::string &root, FlowTable flow_table = FlowTable::count);
std::vector<FlowView> read_flows(const std::string &root);
// Throws as read_snapshot does, naming inline_conns when no run pinned it.
std::vector<ConnView> read_conns(const std::string &root);

// Text for people and JSON for machines; counter names are those of PP_COUNTER_LIST.
std::string render_text(const Snapshot &s);
nlohmann::json to_json(const Snapshot &s);
std::string render_text(const std::vector<FlowView> &flows);
nlohmann::json to_json(const std::vector<FlowView> &flows);
std::string render_text(const std::vector<ConnView> &conns);
nlohmann::json to_json(const std::vector<ConnView> &conns);

// The state of an inline connection from pp_inline_conn.flags and .flags_backend, a word
// each: "header-sent", "header-acked", "fin-client", "fin-backend", "reset-client",
// "reset-backend"; "syn" for none.
std::vector<std::string_view> inline_state_words(const pp_inline_conn &c);

// "udp"/"tcp", "v1"/"v2"/"spp", "first"/"every", "drop"/"pass".
std::string protocol_name(std::uint8_t protocol);
std::string header_name(std::uint8_t header);
std::string udp_header_name(std::uint8_t mode);
std::string on_error_name(std::uint8_t mode);

}  // namespace ppinject
