#include "config/describe.hpp"

#include <fmt/format.h>

#include <chrono>
#include <vector>

#include "sys/kernel.hpp"

namespace ppinject {
namespace {

// "192.0.2.0/24 ports 1000-2000 (1001 keys)", "::/0 port 53, every IPv6 and IPv4 address".
std::string expanded(const ListenSpec &l) {
    std::string out = prefix_string(l);
    out += l.port_first == l.port_last
               ? fmt::format(" port {}", l.port_first)
               : fmt::format(" ports {}-{} ({} keys)", l.port_first, l.port_last, l.port_count());
    if (l.dual_stack()) {
        out += ", every IPv6 and IPv4 address";
    } else if (l.wildcard()) {
        out += ", every IPv4 address";
    }
    return out;
}

// A leg's congestion control as `check` prints it.
std::string or_host(const std::string &name) {
    return name.empty() ? "the host's (cubic to loopback peers)" : name;
}

std::string tlv_string(const TlvConfig &t) {
    std::vector<std::string> parts;
    if (t.unique_id) {
        parts.emplace_back("unique_id");
    }
    if (t.crc32c) {
        parts.emplace_back("crc32c");
    }
    if (t.authority_from_sni) {
        parts.emplace_back("authority from SNI");
    } else if (!t.authority.empty()) {
        parts.push_back("authority " + quote(t.authority));
    }
    if (!t.netns.empty()) {
        parts.push_back("netns " + quote(t.netns));
    }
    for (const auto &[type, value] : t.custom) {
        parts.push_back(fmt::format("0x{:02X} {}", type, quote(value)));
    }
    return fmt::format("{}", fmt::join(parts, ", "));
}

nlohmann::json tlv_json(const TlvConfig &t) {
    nlohmann::json custom = nlohmann::json::object();
    for (const auto &[type, value] : t.custom) {
        custom[fmt::format("0x{:02X}", type)] = value;
    }
    return {{"unique_id", t.unique_id},
            {"crc32c", t.crc32c},
            {"authority", t.authority_from_sni  ? nlohmann::json("sni")
                          : t.authority.empty() ? nlohmann::json(nullptr)
                                                : nlohmann::json(t.authority)},
            {"netns", t.netns.empty() ? nlohmann::json(nullptr) : nlohmann::json(t.netns)},
            {"custom", custom}};
}

}  // namespace

std::string describe(const Config &cfg) {
    std::string out = fmt::format(
        "global\n  bpffs             {}\n  udp_flow_timeout  {}\n  udp_max_flows     {}\n  "
        "inline_max_conns  {}\n  metrics           {}\n",
        cfg.global.bpffs, format_duration(cfg.global.udp_flow_timeout), cfg.global.udp_max_flows,
        cfg.global.inline_max_conns,
        cfg.global.metrics ? "http://" + cfg.global.metrics->to_string() + "/metrics"
                           : std::string("off"));
    for (const auto &s : cfg.services) {
        out += fmt::format("\nservice {} (id {}, line {}): {}, header {}", s.name, s.id, s.line,
                           to_string(s.protocol), to_string(s.header));
        if (s.protocol == Protocol::udp) {
            if (s.header == HeaderMode::v2) {
                out += s.udp_header == UdpHeaderPolicy::first ? " on the first datagram of a flow"
                                                              : " on every datagram";
            } else {
                out += " on every datagram, stripped from replies";
            }
            out += fmt::format(", on_error {}\n", to_string(s.on_error));
        } else if (s.is_inline()) {
            out += ", mode inline (tc writes the header, the host forwards)\n";
        } else {
            out += fmt::format(", mode relay, {}, relay {}\n",
                               s.transparent ? "transparent (sk_lookup)" : "listening socket",
                               to_string(s.relay));
        }
        for (const auto &l : s.listen) {
            out += fmt::format("  listen      {:<44} from {}, line {}\n", expanded(l),
                               quote(l.text), l.line);
        }
        if (s.is_inline()) {
            out += fmt::format("  interfaces  {}, tc ingress and egress\n",
                               fmt::join(s.interfaces, ", "));
        } else if (!s.interfaces.empty()) {
            out += fmt::format("  interfaces  {}, ingress at {}{}\n", fmt::join(s.interfaces, ", "),
                               s.attach == AttachHook::xdp ? "XDP" : "tc",
                               s.header == HeaderMode::spp ? ", replies at tc egress" : "");
        }
        if (!s.backends.empty()) {
            std::vector<std::string> b;
            for (const auto &e : s.backends) {
                b.push_back(e.to_string());
            }
            out += fmt::format("  backends    {}\n", fmt::join(b, ", "));
        }
        if (s.is_inline()) {
            out += fmt::format("  timeouts    idle {} (then its state is removed)\n",
                               format_duration(s.idle_timeout));
            if (s.tlv.any()) {
                out += fmt::format("  tlv         {}\n", tlv_string(s.tlv));
            }
        } else if (s.protocol == Protocol::tcp) {
            out += fmt::format(
                "  timeouts    connect {}, idle {}{}\n", format_duration(s.connect_timeout),
                format_duration(s.idle_timeout),
                s.tlv.authority_from_sni ? ", ClientHello " + format_duration(s.sni_timeout) : "");
            out += fmt::format("  connections {}\n",
                               s.max_connections ? "at most " + std::to_string(s.max_connections)
                                                 : std::string("no limit but the relay slots"));
            if (!(s.congestion == TcpCongestion{})) {
                out += fmt::format("  congestion  client {}, backend {}\n",
                                   or_host(s.congestion.client), or_host(s.congestion.backend));
            }
            if (s.tlv.any()) {
                out += fmt::format("  tlv         {}\n", tlv_string(s.tlv));
            }
            if (s.health_check) {
                out += fmt::format("  health      every {}, timeout {}, mode {}\n",
                                   format_duration(s.health_check->interval),
                                   format_duration(s.health_check->timeout),
                                   to_string(s.health_check->mode));
            }
        }
    }
    out +=
        fmt::format("\nservices map: {} of {} keys\n", service_key_count(cfg), PP_MAX_SERVICE_KEYS);
    return out;
}

nlohmann::json to_json(const Config &cfg) {
    nlohmann::json j;
    j["path"] = cfg.path;
    j["global"] = {{"bpffs", cfg.global.bpffs},
                   {"udp_flow_timeout", format_duration(cfg.global.udp_flow_timeout)},
                   {"udp_flow_timeout_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                               cfg.global.udp_flow_timeout)
                                               .count()},
                   {"udp_max_flows", cfg.global.udp_max_flows},
                   {"inline_max_conns", cfg.global.inline_max_conns},
                   {"metrics", nullptr}};
    if (cfg.global.metrics) {
        j["global"]["metrics"] = cfg.global.metrics->to_string();
    }
    j["service_keys"] = service_key_count(cfg);
    j["services"] = nlohmann::json::array();
    for (const auto &s : cfg.services) {
        nlohmann::json js = {{"id", s.id},
                             {"name", s.name},
                             {"line", s.line},
                             {"protocol", to_string(s.protocol)},
                             {"header", to_string(s.header)}};
        js["listen"] = nlohmann::json::array();
        for (const auto &l : s.listen) {
            js["listen"].push_back({{"text", l.text},
                                    {"line", l.line},
                                    {"address", l.addr.to_string()},
                                    {"family", l.addr.is_v4() ? "ipv4" : "ipv6"},
                                    {"prefix_len", l.prefix_len},
                                    {"prefix", prefix_string(l)},
                                    {"dual_stack", l.dual_stack()},
                                    {"port_first", l.port_first},
                                    {"port_last", l.port_last}});
        }
        if (s.protocol == Protocol::udp) {
            js["interfaces"] = s.interfaces;
            if (s.header == HeaderMode::v2) {
                js["udp_header"] = to_string(s.udp_header);
            }
            js["on_error"] = to_string(s.on_error);
            js["attach"] = to_string(s.attach);
            j["services"].push_back(js);
            continue;
        }
        js["mode"] = to_string(s.mode);
        js["idle_timeout_ms"] = s.idle_timeout.count();
        if (s.header == HeaderMode::v2) {
            js["tlv"] = tlv_json(s.tlv);
        }
        if (s.is_inline()) {
            js["interfaces"] = s.interfaces;
            j["services"].push_back(js);
            continue;
        }
        js["transparent"] = s.transparent;
        js["backends"] = nlohmann::json::array();
        for (const auto &b : s.backends) {
            js["backends"].push_back(b.to_string());
        }
        js["relay"] = to_string(s.relay);
        js["connect_timeout_ms"] = s.connect_timeout.count();
        js["sni_timeout_ms"] = s.sni_timeout.count();
        js["max_connections"] =
            s.max_connections ? nlohmann::json(s.max_connections) : nlohmann::json(nullptr);
        auto name_or_null = [](const std::string &n) {
            return n.empty() ? nlohmann::json(nullptr) : nlohmann::json(n);
        };
        js["tcp_congestion"] = {{"client", name_or_null(s.congestion.client)},
                                {"backend", name_or_null(s.congestion.backend)}};
        js["health_check"] = nullptr;
        if (s.health_check) {
            js["health_check"] = {{"interval_ms", s.health_check->interval.count()},
                                  {"timeout_ms", s.health_check->timeout.count()},
                                  {"mode", to_string(s.health_check->mode)}};
        }
        j["services"].push_back(js);
    }
    return j;
}

}  // namespace ppinject
