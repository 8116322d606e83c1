// The TOML configuration: its model, parsing and validation. Every error is one line,
// "FILE:LINE: reason", pointing at the offending key.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codec/address.hpp"

namespace ppinject {

enum class Protocol { udp, tcp };
enum class HeaderMode { v1, v2, spp };
enum class UdpHeaderPolicy { first, every };
enum class OnError { drop, pass };
enum class SpliceMode { sockmap, splice, copy };
enum class HealthMode { local, proxy };

// One listen spec: an address prefix (in its own family's bits) and a port range.
// "0.0.0.0" is every IPv4 address; "[::]" every IPv6 address and, as a Linux [::] socket,
// every IPv4 one too.
struct ListenSpec {
    IpAddress addr;
    unsigned prefix_len = 0;
    std::uint16_t port_first = 0;
    std::uint16_t port_last = 0;
    std::string text;  // as written
    unsigned line = 0;
};

// PROXY v2 TLVs a TCP service adds to its headers.
struct TlvConfig {
    bool unique_id = false;
    bool crc32c = false;
    bool authority_from_sni = false;
    std::string authority;  // fixed AUTHORITY value (when not from SNI)
    std::string netns;
    std::vector<std::pair<std::uint8_t, std::string>> custom;  // types 0xE0..0xEF
};

// Active health checks of a TCP service's backends.
struct HealthCheck {
    std::chrono::milliseconds interval{5000};
    std::chrono::milliseconds timeout{1000};
    HealthMode mode = HealthMode::local;
};

// A [[service]] table, resolved: defaults applied, addresses parsed, id assigned.
struct Service {
    std::uint32_t id = 0;  // 1.. in file order; indexes the BPF counters
    std::string name;
    Protocol protocol = Protocol::udp;
    std::vector<ListenSpec> listen;
    HeaderMode header = HeaderMode::v2;
    // UDP
    std::vector<std::string> interfaces;
    UdpHeaderPolicy udp_header = UdpHeaderPolicy::first;
    OnError on_error = OnError::drop;
    // TCP
    bool transparent = false;
    std::vector<Endpoint> backends;
    SpliceMode splice = SpliceMode::sockmap;
    std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
    TlvConfig tlv;
    std::optional<HealthCheck> health_check;
    unsigned line = 0;  // of its [[service]] header
};

// The [global] table.
struct GlobalConfig {
    std::string bpffs = "/sys/fs/bpf/ppinject";
    std::chrono::nanoseconds udp_flow_timeout{std::chrono::seconds(30)};
    std::uint32_t udp_max_flows = 65536;
    std::optional<Endpoint> metrics;
};

struct Config {
    std::string path;
    GlobalConfig global;
    std::vector<Service> services;
};

// A configuration error; what() is "FILE:LINE: reason" (or "FILE: reason" without a line).
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

// Reads and validates a file. Throws ConfigError.
Config load_config(const std::string &path);
// Parses and validates TOML text; `display_path` names it in errors. Throws ConfigError.
Config parse_config(std::string_view toml_text, const std::string &display_path);

// "30s", "500ms", "1m30s", "2h": a positive duration. nullopt when malformed.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

// "udp", "v2", "first", ... as written in the file.
std::string to_string(Protocol p);
std::string to_string(HeaderMode h);
std::string to_string(UdpHeaderPolicy u);
std::string to_string(OnError o);
std::string to_string(SpliceMode s);
// "192.0.2.0/24:1000-2000", "[2001:db8::/64]:443": the resolved form of a listen spec.
std::string to_string(const ListenSpec &l);
std::string format_duration(std::chrono::nanoseconds d);

// The resolved configuration for people (`check`) and machines (`check --json`).
std::string describe(const Config &cfg);
nlohmann::json to_json(const Config &cfg);

}  // namespace ppinject
