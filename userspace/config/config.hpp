// The TOML configuration: its model and the entry points that read and validate a file.
// Every error is one line, "FILE:LINE: reason", pointing at the offending key (or at the
// [[service]] that lacks one). toml_reader.hpp reads the TOML, validate.cpp turns it into
// this model, names.hpp names the enums, describe.hpp prints the result.
// tools/ppinject.example.toml documents every key; README.md the choices behind them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codec/address.hpp"

namespace ppinject {

// Transport of a service: UDP is served by tc programs, TCP by the acceptor.
enum class Protocol { udp, tcp };
// Header a service's traffic gets: v1 (TCP text), v2 (TCP or UDP binary), spp (UDP).
enum class HeaderMode { v1, v2, spp };
// Which datagrams of a UDP v2 flow carry the header.
enum class UdpHeaderPolicy { first, every };
// What happens to a UDP datagram that cannot carry its header.
enum class OnError { drop, pass };
// Where a UDP service's ingress injection runs on its interfaces: tc (clsact ingress) or
// XDP (native where the driver supports it, generic otherwise). SPP replies are always
// stripped at tc egress.
enum class AttachHook { tc, xdp };
// How a TCP service is served: relayed by the daemon (sk_lookup or a listening socket), or
// inline, the header written into the client's stream by tc programs on `interfaces`.
enum class TcpMode { relay, inline_ };
// How a TCP connection's payload is relayed once the header is written.
enum class RelayMode { sockmap, splice, copy };
// How a TCP health check probes a backend: plain connect, or connect and send a header.
enum class HealthMode { local, proxy };

// One listen spec: an address prefix (in its own family's bits) and a port range.
// "0.0.0.0" is every IPv4 address; "[::]" every IPv6 address and, as a Linux [::] socket,
// every IPv4 one too (a more specific IPv4 spec of another service wins over it).
struct ListenSpec {
    IpAddress addr;                // host bits past prefix_len are zero
    unsigned prefix_len = 0;       // 0..32 for IPv4, 0..128 for IPv6
    std::uint16_t port_first = 0;  // 1..65535
    std::uint16_t port_last = 0;   // port_first..65535
    std::string text;              // as written
    unsigned line = 0;

    // Every address of its family ("0.0.0.0", "[::]", "…/0").
    bool wildcard() const { return prefix_len == 0; }
    // "[::]": IPv6 and IPv4 alike.
    bool dual_stack() const { return prefix_len == 0 && !addr.is_v4(); }
    // Keys of the services map it takes: one per port.
    std::size_t port_count() const { return std::size_t{port_last} - port_first + 1; }
};

// PROXY v2 TLVs a TCP service adds to its headers.
struct TlvConfig {
    bool unique_id = false;           // PP2_TYPE_UNIQUE_ID: 16 random bytes per connection
    bool crc32c = false;              // PP2_TYPE_CRC32C over the whole header
    bool authority_from_sni = false;  // PP2_TYPE_AUTHORITY from the TLS ClientHello's SNI
    std::string authority;            // fixed AUTHORITY value (when not from SNI)
    std::string netns;                // PP2_TYPE_NETNS value
    std::vector<std::pair<std::uint8_t, std::string>> custom;  // 0xE0..0xEF, by type

    bool any() const {
        return unique_id || crc32c || authority_from_sni || !authority.empty() || !netns.empty() ||
               !custom.empty();
    }
};

// Active health checks of a TCP service's backends.
struct HealthCheck {
    std::chrono::milliseconds interval{5000};
    std::chrono::milliseconds timeout{1000};  // <= interval
    HealthMode mode = HealthMode::local;
};

// TCP congestion control of the daemon's own sockets of a TCP service, per leg: the
// client leg's sockets send to clients, the backend leg's to backends. Empty: cubic when
// the peer is on a loopback address (if the kernel has it), else the host's
// (net.ipv4.tcp_congestion_control, or a route's congctl). A route's congctl wins over a
// name set here (the kernel's rule for sockets that chose one themselves).
struct TcpCongestion {
    std::string client;
    std::string backend;
    bool operator==(const TcpCongestion &) const = default;
};

// A [[service]] table, resolved: defaults applied, addresses parsed, id assigned.
struct Service {
    std::uint32_t id = 0;  // 1.. in file order; indexes the BPF counters
    std::string name;      // 1..PP_NAME_LEN-1 of [A-Za-z0-9_-], unique
    Protocol protocol = Protocol::udp;
    std::vector<ListenSpec> listen;
    HeaderMode header = HeaderMode::v2;
    // UDP, and TCP with mode = "inline"
    std::vector<std::string> interfaces;  // client-facing: tc ingress (and egress for spp)
    AttachHook attach = AttachHook::tc;   // the ingress hook on every interface of the service
    UdpHeaderPolicy udp_header = UdpHeaderPolicy::first;
    OnError on_error = OnError::drop;
    // TCP
    TcpMode mode = TcpMode::relay;
    bool transparent = false;  // sk_lookup steering instead of a plain listening socket
    std::vector<Endpoint> backends;
    RelayMode relay = RelayMode::splice;  // measured faster than sockmap (tools/bench)
    std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
    // How long a tlv.authority = "sni" service waits for the ClientHello before it writes
    // the header without AUTHORITY (a client that says nothing, or a server-first protocol).
    std::chrono::milliseconds sni_timeout{std::chrono::seconds(1)};
    // Connections of this service at once, 1..65536; more are reset and counted in
    // tcp_refused, so that one service cannot take every relay slot. 0: no limit but the slots.
    std::uint32_t max_connections = 0;
    TcpCongestion congestion;
    TlvConfig tlv;  // header v2 only
    std::optional<HealthCheck> health_check;
    unsigned line = 0;  // of its [[service]] header
};

// The [global] table.
struct GlobalConfig {
    std::string bpffs = "/sys/fs/bpf/ppinject";  // absolute, no trailing '/'
    std::chrono::nanoseconds udp_flow_timeout{std::chrono::seconds(30)};
    std::uint32_t udp_max_flows = 65536;     // 1..16777216
    std::uint32_t inline_max_conns = 65536;  // 1..16777216: entries of inline_conns
    std::optional<Endpoint> metrics;         // Prometheus endpoint, port != 0
};

// A whole configuration file, validated.
struct Config {
    std::string path;  // as given to load_config / parse_config
    GlobalConfig global;
    std::vector<Service> services;  // in file order; services[i].id == i + 1
};

// A configuration error; what() is "FILE:LINE: reason" (or "FILE: reason" when line is 0,
// which only an unreadable file gives).
class ConfigError : public std::runtime_error {
  public:
    ConfigError(const std::string &file, unsigned line, const std::string &reason);
    const std::string &file() const { return file_; }
    unsigned line() const { return line_; }
    const std::string &reason() const { return reason_; }

  private:
    std::string file_;
    unsigned line_;
    std::string reason_;
};

// Reads and validates a file. Throws ConfigError ("FILE: cannot read: <strerror>" when the
// file cannot be read).
Config load_config(const std::string &path);
// Parses and validates TOML text; `display_path` names it in errors. Throws ConfigError.
Config parse_config(std::string_view toml_text, const std::string &display_path);

// "30s", "500ms", "1m30s", "2h": a positive duration, units h, m, s, ms each at most once
// and largest first. nullopt when malformed, zero or absurdly large.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);
// The shortest form parse_duration() reads back: "1h", "90s" -> "1m30s", "500ms".
std::string format_duration(std::chrono::nanoseconds d);

// "udp", "v2", "first", ... as written in the file (the tables of config/names.hpp).
std::string to_string(Protocol p);
std::string to_string(HeaderMode h);
std::string to_string(UdpHeaderPolicy u);
std::string to_string(OnError o);
std::string to_string(AttachHook a);
std::string to_string(RelayMode s);
std::string to_string(HealthMode m);
// "192.0.2.0/24:1000-2000", "[2001:db8::/64]:443", "192.0.2.1:53": the canonical form of a
// listen spec, the same syntax the file takes (prefix only when not a single address).
std::string to_string(const ListenSpec &l);
// "192.0.2.0/24", "2001:db8::/64", "0.0.0.0/0": the prefix alone, always with its length.
std::string prefix_string(const ListenSpec &l);

// Keys the services map needs for `cfg` (one per address prefix, protocol and port).
std::size_t service_key_count(const Config &cfg);

// `text` in double quotes with TOML escapes (`\"`, `\\`, `\n`, `\u0007`), as errors and
// `check` show what the file wrote: always one line.
std::string quote(std::string_view text);
// A key as errors show it: 'name' when it is a bare key, else quote(key).
std::string quote_key(std::string_view key);

}  // namespace ppinject
