// Configuration: the DESIGN.md example and the example file resolve as documented; defaults,
// listen forms and limits hold; every invalid form is refused with the exact line and a
// reason that names the problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "config/config.hpp"
#include "config/describe.hpp"
#include "sys/kernel.hpp"

namespace {

using namespace ppinject;
using namespace std::chrono_literals;

std::string source(const std::string &rel) {
    return std::string(PPINJECT_SOURCE_DIR) + "/" + rel;
}

// One UDP and one TCP service, lines 1-6 each: tests append keys on line 7.
const std::string kUdp =
    "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:53\"\n"
    "interfaces = [\"eth0\"]\nheader = \"v2\"\n";
const std::string kTcp =
    "[[service]]\nname = \"t\"\nprotocol = \"tcp\"\nlisten = \"192.0.2.1:443\"\n"
    "backends = [\"198.51.100.1:443\"]\nheader = \"v2\"\n";
// An inline TCP service, lines 1-7: tests append keys on line 8.
const std::string kInline =
    "[[service]]\nname = \"e\"\nprotocol = \"tcp\"\nlisten = \"203.0.113.1:443\"\n"
    "mode = \"inline\"\ninterfaces = [\"eth0\"]\nheader = \"v2\"\n";

// A UDP service named `name` listening on `listen` (6 lines).
std::string udp(const std::string &name, const std::string &listen,
                const std::string &header = "v2") {
    return "[[service]]\nname = \"" + name + "\"\nprotocol = \"udp\"\nlisten = " + listen +
           "\ninterfaces = [\"eth0\"]\nheader = \"" + header + "\"\n";
}

// ---- valid files ---------------------------------------------------------------------------

TEST(Config, DesignExampleResolves) {
    Config c = load_config(source("tests/configs/design.toml"));
    EXPECT_EQ(c.path, source("tests/configs/design.toml"));
    EXPECT_EQ(c.global.bpffs, "/sys/fs/bpf/ppinject");
    EXPECT_EQ(c.global.udp_flow_timeout, 30s);
    EXPECT_EQ(c.global.udp_max_flows, 65536u);
    ASSERT_TRUE(c.global.metrics);
    EXPECT_EQ(c.global.metrics->to_string(), "127.0.0.1:9477");
    ASSERT_EQ(c.services.size(), 2u);

    const Service &dns = c.services[0];
    EXPECT_EQ(dns.id, 1u);
    EXPECT_EQ(dns.name, "dns");
    EXPECT_EQ(dns.line, 9u);
    EXPECT_EQ(dns.protocol, Protocol::udp);
    ASSERT_EQ(dns.listen.size(), 1u);
    EXPECT_EQ(dns.listen[0].addr, *IpAddress::parse("0.0.0.0"));
    EXPECT_TRUE(dns.listen[0].addr.is_v4());
    EXPECT_EQ(dns.listen[0].prefix_len, 0u);  // 0.0.0.0 is every IPv4 address
    EXPECT_TRUE(dns.listen[0].wildcard());
    EXPECT_FALSE(dns.listen[0].dual_stack());
    EXPECT_EQ(dns.listen[0].port_first, 53);
    EXPECT_EQ(dns.listen[0].port_last, 53);
    EXPECT_EQ(dns.listen[0].text, "0.0.0.0:53");
    EXPECT_EQ(dns.listen[0].line, 12u);
    EXPECT_EQ(dns.interfaces, std::vector<std::string>{"eth0"});
    EXPECT_EQ(dns.header, HeaderMode::v2);
    EXPECT_EQ(dns.udp_header, UdpHeaderPolicy::first);
    EXPECT_EQ(dns.on_error, OnError::drop);
    EXPECT_EQ(dns.attach, AttachHook::tc);

    const Service &web = c.services[1];
    EXPECT_EQ(web.id, 2u);
    EXPECT_EQ(web.name, "web");
    EXPECT_EQ(web.line, 17u);
    EXPECT_EQ(web.protocol, Protocol::tcp);
    ASSERT_EQ(web.listen.size(), 1u);
    EXPECT_EQ(web.listen[0].prefix_len, 32u);
    EXPECT_EQ(to_string(web.listen[0]), "192.0.2.1:443");
    EXPECT_TRUE(web.transparent);
    ASSERT_EQ(web.backends.size(), 2u);
    EXPECT_EQ(web.backends[0].to_string(), "198.51.100.10:8443");
    EXPECT_EQ(web.backends[1].to_string(), "[2001:db8::10]:8443");
    EXPECT_EQ(web.header, HeaderMode::v2);
    EXPECT_TRUE(web.tlv.unique_id);
    EXPECT_TRUE(web.tlv.crc32c);
    EXPECT_TRUE(web.tlv.authority_from_sni);
    EXPECT_EQ(web.tlv.authority, "");
    EXPECT_TRUE(web.tlv.custom.empty());
    // Defaults of the keys the example leaves out.
    EXPECT_EQ(web.relay, RelayMode::splice);
    EXPECT_EQ(web.connect_timeout, 5s);
    EXPECT_EQ(web.idle_timeout, 1h);
    EXPECT_FALSE(web.health_check);
    EXPECT_TRUE(web.interfaces.empty());
}

TEST(Config, DefaultsOfAnEmptyGlobal) {
    Config c = load_config(source("tests/configs/minimal-udp.toml"));
    EXPECT_EQ(c.global.bpffs, "/sys/fs/bpf/ppinject");
    EXPECT_EQ(c.global.udp_flow_timeout, 30s);
    EXPECT_EQ(c.global.udp_max_flows, 65536u);
    EXPECT_FALSE(c.global.metrics);
    ASSERT_EQ(c.services.size(), 1u);
    const Service &s = c.services[0];
    EXPECT_EQ(s.header, HeaderMode::spp);
    EXPECT_EQ(s.udp_header, UdpHeaderPolicy::first);
    EXPECT_EQ(s.on_error, OnError::drop);
    ASSERT_EQ(s.listen.size(), 1u);
    // [::] is every IPv6 address and every IPv4 one, as a Linux [::] socket.
    EXPECT_FALSE(s.listen[0].addr.is_v4());
    EXPECT_EQ(s.listen[0].prefix_len, 0u);
    EXPECT_TRUE(s.listen[0].dual_stack());
    EXPECT_EQ(to_string(s.listen[0]), "[::]:53");
    EXPECT_EQ(prefix_string(s.listen[0]), "::/0");
}

TEST(Config, GlobalValues) {
    Config c = parse_config(
        "[global]\nbpffs = \"/sys/fs/bpf/other/\"\nudp_flow_timeout = "
        "\"1m30s\"\nudp_max_flows = 16777216\nmetrics = \"[::1]:9477\"\n" +
            kUdp,
        "g.toml");
    EXPECT_EQ(c.global.bpffs, "/sys/fs/bpf/other");  // trailing '/' dropped
    EXPECT_EQ(c.global.udp_flow_timeout, 90s);
    EXPECT_EQ(c.global.udp_max_flows, 16777216u);
    EXPECT_EQ(c.global.inline_max_conns, 65536u);  // PP_MAX_INLINE_CONNS_DEFAULT
    EXPECT_EQ(c.global.metrics->to_string(), "[::1]:9477");
}

TEST(Config, ListenForms) {
    Config c = parse_config(R"(
[[service]]
name = "many"
protocol = "udp"
listen = [
  "192.0.2.0/24:1000-2000",
  "[2001:DB8::/64]:53",
  "[::]:5353",
  "203.0.113.7:9",
  "0.0.0.0/0:7",
  "[2001:db8::1]:65535",
  "198.51.100.0/32:1-2",
]
interfaces = "veth0"
header = "spp"
on_error = "pass"
)",
                            "l.toml");
    const Service &s = c.services[0];
    const auto &l = s.listen;
    ASSERT_EQ(l.size(), 7u);
    EXPECT_EQ(to_string(l[0]), "192.0.2.0/24:1000-2000");
    EXPECT_EQ(l[0].prefix_len, 24u);
    EXPECT_EQ(l[0].port_first, 1000);
    EXPECT_EQ(l[0].port_last, 2000);
    EXPECT_EQ(l[0].port_count(), 1001u);
    EXPECT_EQ(l[0].line, 6u);  // each element of a multi-line array has its own line
    EXPECT_EQ(to_string(l[1]), "[2001:db8::/64]:53");
    EXPECT_EQ(l[1].text, "[2001:DB8::/64]:53");
    EXPECT_EQ(l[1].prefix_len, 64u);
    EXPECT_EQ(l[1].line, 7u);
    EXPECT_TRUE(l[2].dual_stack());
    EXPECT_EQ(to_string(l[3]), "203.0.113.7:9");
    EXPECT_EQ(l[3].prefix_len, 32u);
    EXPECT_TRUE(l[4].wildcard());
    EXPECT_TRUE(l[4].addr.is_v4());
    EXPECT_EQ(to_string(l[4]), "0.0.0.0:7");
    EXPECT_EQ(l[5].port_first, 65535);
    EXPECT_EQ(l[5].prefix_len, 128u);
    EXPECT_EQ(l[6].prefix_len, 32u);
    EXPECT_EQ(l[6].port_last, 2);
    EXPECT_EQ(l[6].line, 12u);
    // A single string is a one-element list.
    EXPECT_EQ(s.interfaces, std::vector<std::string>{"veth0"});
    EXPECT_EQ(s.on_error, OnError::pass);
    EXPECT_EQ(service_key_count(c), 1001u + 1 + 1 + 1 + 1 + 1 + 2);
}

// attach: tc unless said; xdp for a service, and for another service on other interfaces
// tc beside it; services sharing an interface at the same hook.
TEST(Config, AttachHooks) {
    Config c = parse_config(kUdp + "attach = \"xdp\"\n" +
                                "[[service]]\nname = \"b\"\nprotocol = \"udp\"\n"
                                "listen = \"192.0.2.2:53\"\ninterfaces = [\"eth1\"]\n"
                                "header = \"spp\"\n"
                                "[[service]]\nname = \"c\"\nprotocol = \"udp\"\n"
                                "listen = \"192.0.2.3:53\"\ninterfaces = [\"eth0\"]\n"
                                "header = \"spp\"\nattach = \"xdp\"\n",
                            "a.toml");
    ASSERT_EQ(c.services.size(), 3u);
    EXPECT_EQ(c.services[0].attach, AttachHook::xdp);
    EXPECT_EQ(c.services[1].attach, AttachHook::tc);
    EXPECT_EQ(c.services[2].attach, AttachHook::xdp);
    EXPECT_EQ(to_json(c)["services"][0]["attach"], "xdp");
    std::string d = describe(c);
    EXPECT_NE(d.find("interfaces  eth0, ingress at XDP\n"), std::string::npos) << d;
    EXPECT_NE(d.find("interfaces  eth1, ingress at tc, replies at tc egress\n"), std::string::npos)
        << d;
    EXPECT_NE(d.find("interfaces  eth0, ingress at XDP, replies at tc egress\n"), std::string::npos)
        << d;
}

TEST(Config, TcpKeys) {
    Config c = parse_config(R"([[service]]
name = "web"
protocol = "tcp"
listen = ["192.0.2.0/24:443", "[2001:db8::/48]:443"]
transparent = true
backends = "[2001:db8::10]:8443"
header = "v2"
relay = "copy"
connect_timeout = "250ms"
idle_timeout = "2h"
tlv = { netns = "blue", authority = "www.example.com", custom = { "0xef" = "z", "0xE0" = "a" } }
health_check = { interval = "10s", timeout = "10s", mode = "proxy" }
tcp_congestion = "cubic"

[[service]]
name = "plain"
protocol = "tcp"
listen = "0.0.0.0:25"
backends = ["198.51.100.1:25"]
header = "v1"
tcp_congestion = { backend = "reno" }
max_connections = 100

[[service]]
name = "tls"
protocol = "tcp"
listen = "192.0.2.1:443"
backends = ["198.51.100.1:443"]
header = "v2"
tlv = { authority = "sni" }
sni_timeout = "300ms"
)",
                            "t.toml");
    const Service &s = c.services[0];
    EXPECT_TRUE(s.transparent);
    ASSERT_EQ(s.backends.size(), 1u);
    EXPECT_EQ(s.backends[0].port, 8443);
    EXPECT_EQ(s.relay, RelayMode::copy);
    EXPECT_EQ(s.connect_timeout, 250ms);
    EXPECT_EQ(s.idle_timeout, 2h);
    EXPECT_EQ(s.sni_timeout, 1s);      // the default
    EXPECT_EQ(s.max_connections, 0u);  // no limit but the relay slots
    EXPECT_FALSE(s.tlv.unique_id);
    EXPECT_FALSE(s.tlv.authority_from_sni);
    EXPECT_EQ(s.tlv.authority, "www.example.com");
    EXPECT_EQ(s.tlv.netns, "blue");
    // Sorted by type, whatever the order in the file.
    ASSERT_EQ(s.tlv.custom.size(), 2u);
    EXPECT_EQ(s.tlv.custom[0], (std::pair<std::uint8_t, std::string>{0xE0, "a"}));
    EXPECT_EQ(s.tlv.custom[1], (std::pair<std::uint8_t, std::string>{0xEF, "z"}));
    ASSERT_TRUE(s.health_check);
    EXPECT_EQ(s.health_check->interval, 10s);
    EXPECT_EQ(s.health_check->timeout, 10s);
    EXPECT_EQ(s.health_check->mode, HealthMode::proxy);

    EXPECT_EQ(s.congestion, (TcpCongestion{"cubic", "cubic"}));  // one name: both legs

    const Service &p = c.services[1];
    EXPECT_EQ(p.id, 2u);
    EXPECT_EQ(p.congestion, (TcpCongestion{"", "reno"}));  // the client leg keeps the host's
    EXPECT_FALSE(p.transparent);                           // a wildcard needs no sk_lookup
    EXPECT_EQ(p.header, HeaderMode::v1);
    EXPECT_FALSE(p.tlv.any());
    EXPECT_EQ(p.max_connections, 100u);
    EXPECT_EQ(c.services[2].sni_timeout, 300ms);
}

// mode = "inline": interfaces instead of backends, prefixes without transparent, TLVs up to
// the inline header's room, and a relay service and a UDP service at XDP on the same
// interface beside it.
TEST(Config, InlineTcp) {
    const std::string authority(111, 'a');  // 52 + 19 + 7 + 114 = 192: exactly full
    Config c = parse_config(R"([global]
inline_max_conns = 1000

[[service]]
name = "edge"
protocol = "tcp"
mode = "inline"
listen = ["203.0.113.0/24:443", "[2001:db8::/64]:8000-8009"]
interfaces = ["eth0", "eth1"]
header = "v2"
idle_timeout = "10m"
tlv = { unique_id = true, crc32c = true, authority = ")" +
                                authority +
                                R"(" }

[[service]]
name = "smtp"
protocol = "tcp"
mode = "inline"
listen = "0.0.0.0:25"
interfaces = "eth0"
header = "v1"

[[service]]
name = "web"
protocol = "tcp"
mode = "relay"
listen = "192.0.2.1:443"
backends = ["198.51.100.1:443"]
header = "v2"

[[service]]
name = "dns"
protocol = "udp"
listen = "192.0.2.1:53"
interfaces = ["eth0"]
header = "v2"
attach = "xdp"
)",
                            "i.toml");
    EXPECT_EQ(c.global.inline_max_conns, 1000u);
    ASSERT_EQ(c.services.size(), 4u);
    const Service &e = c.services[0];
    EXPECT_EQ(e.mode, TcpMode::inline_);
    EXPECT_TRUE(e.is_inline());
    EXPECT_FALSE(e.is_relay());
    EXPECT_EQ(e.interfaces, (std::vector<std::string>{"eth0", "eth1"}));
    EXPECT_TRUE(e.backends.empty());
    EXPECT_FALSE(e.transparent);
    EXPECT_EQ(e.listen[0].prefix_len, 24u);
    EXPECT_EQ(e.idle_timeout, 10min);
    EXPECT_EQ(max_header_len(e), std::size_t{PP_INLINE_HDR_MAX});
    EXPECT_EQ(c.services[1].idle_timeout, 1h);  // the default applies inline too
    EXPECT_EQ(max_header_len(c.services[1]), 107u);
    EXPECT_EQ(c.services[2].mode, TcpMode::relay);
    EXPECT_TRUE(c.services[2].is_relay());
    EXPECT_EQ(c.services[3].mode, TcpMode::relay);  // UDP: neither
    EXPECT_FALSE(c.services[3].is_relay() || c.services[3].is_inline());
    EXPECT_EQ(to_string(TcpMode::inline_), "inline");
    EXPECT_EQ(to_string(TcpMode::relay), "relay");
    EXPECT_EQ(parse_config(kTcp, "t.toml").services[0].mode, TcpMode::relay);  // the default

    std::string d = describe(c);
    for (const std::string &want : std::vector<std::string>{
             "inline_max_conns  1000\n",
             "service edge (id 1, line 4): tcp, header v2, mode inline (tc writes the header, "
             "the host forwards)\n",
             "  interfaces  eth0, eth1, tc ingress and egress\n",
             "  timeouts    idle 10m (then its state is removed)\n",
             "  tlv         unique_id, crc32c, authority \"" + authority + "\"\n",
             "service smtp (id 2, line 14): tcp, header v1, mode inline",
             "service web (id 3, line 22): tcp, header v2, mode relay, listening socket, relay "
             "splice\n",
         }) {
        EXPECT_NE(d.find(want), std::string::npos) << "missing: " << want << "\n" << d;
    }
    EXPECT_EQ(d.find("backends    \n"), std::string::npos) << d;
    nlohmann::json j = to_json(c);
    EXPECT_EQ(j["global"]["inline_max_conns"], 1000);
    const auto &je = j["services"][0];
    EXPECT_EQ(je["mode"], "inline");
    EXPECT_EQ(je["interfaces"], nlohmann::json::array({"eth0", "eth1"}));
    EXPECT_EQ(je["idle_timeout_ms"], 600000);
    EXPECT_EQ(je["tlv"]["unique_id"], true);
    EXPECT_FALSE(je.contains("backends"));
    EXPECT_FALSE(je.contains("relay"));
    EXPECT_FALSE(j["services"][1].contains("tlv"));  // v1
    EXPECT_EQ(j["services"][2]["mode"], "relay");
    EXPECT_FALSE(j["services"][3].contains("mode"));  // UDP
}

TEST(Config, IdsAndLinesInFileOrder) {
    std::string text = "# comment\n\n" + udp("one", "\"192.0.2.1:1\"") + "\n" +
                       udp("two", "\"192.0.2.1:2\"") + udp("three", "\"192.0.2.1:3\"");
    Config c = parse_config(text, "ids.toml");
    ASSERT_EQ(c.services.size(), 3u);
    for (std::uint32_t i = 0; i < 3; i++) {
        EXPECT_EQ(c.services[i].id, i + 1);
    }
    EXPECT_EQ(c.services[0].line, 3u);
    EXPECT_EQ(c.services[1].line, 10u);
    EXPECT_EQ(c.services[2].line, 16u);
    EXPECT_EQ(c.services[2].name, "three");
}

TEST(IpAddress, LoopbackIs127Slash8AndColonColon1) {
    for (const char *yes : {"127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"}) {
        EXPECT_TRUE(IpAddress::parse(yes)->is_loopback()) << yes;
    }
    for (const char *no : {"128.0.0.1", "126.255.255.255", "0.0.0.0", "::", "::2", "::101", "1::1",
                           "2001:db8::1", "192.0.2.127"}) {
        EXPECT_FALSE(IpAddress::parse(no)->is_loopback()) << no;
    }
}

TEST(Config, SameAddressOtherProtocolOrMoreSpecificPrefixMayCoexist) {
    std::string tcp53 = kTcp;
    tcp53.replace(tcp53.find("192.0.2.1:443"), 13, "192.0.2.1:53");
    Config c = parse_config(kUdp + tcp53 +                                  // udp and tcp on :53
                                udp("net", "\"192.0.2.0/24:53\"", "spp") +  // /24 around .1
                                udp("any4", "\"0.0.0.0:53\"") +             // all IPv4
                                udp("any", "\"[::]:53\"") +                 // all, dual stack
                                udp("v6", "\"[2001:db8::/32]:53\"") +
                                udp("v6exact", "\"[2001:db8::1]:53\"") +
                                udp("next", "\"192.0.2.1:54-60\""),  // adjacent ports
                            "ok.toml");
    EXPECT_EQ(c.services.size(), 8u);
}

TEST(Config, ServiceKeyLimitIsInclusive) {
    // 65535 + 1 keys: exactly PP_MAX_SERVICE_KEYS fit.
    Config c = parse_config(udp("a", "[\"192.0.2.1:1-65535\", \"192.0.2.2:1\"]"), "k.toml");
    EXPECT_EQ(service_key_count(c), static_cast<std::size_t>(PP_MAX_SERVICE_KEYS));
}

TEST(Config, AtMostMaxServicesMinusOne) {
    auto many = [](int n) {
        std::string text;
        for (int i = 1; i <= n; i++) {
            text += udp("s" + std::to_string(i), "\"192.0.2.1:" + std::to_string(i) + "\"");
        }
        return text;
    };
    Config c = parse_config(many(PP_MAX_SERVICES - 1), "many.toml");
    EXPECT_EQ(c.services.size(), static_cast<std::size_t>(PP_MAX_SERVICES - 1));
    EXPECT_EQ(c.services.back().id, static_cast<std::uint32_t>(PP_MAX_SERVICES - 1));
    try {
        parse_config(many(PP_MAX_SERVICES), "many.toml");
        FAIL() << "256 services accepted";
    } catch (const ConfigError &e) {
        // The first service that does not fit: 6 lines per service.
        EXPECT_EQ(e.line(), 6u * (PP_MAX_SERVICES - 1) + 1) << e.what();
        EXPECT_NE(std::string(e.what()).find("too many services: at most 255"), std::string::npos)
            << e.what();
    }
}

TEST(Config, Durations) {
    EXPECT_EQ(parse_duration("500ms"), std::chrono::nanoseconds(500ms));
    EXPECT_EQ(parse_duration("30s"), std::chrono::nanoseconds(30s));
    EXPECT_EQ(parse_duration("2m"), std::chrono::nanoseconds(2min));
    EXPECT_EQ(parse_duration("1h"), std::chrono::nanoseconds(1h));
    EXPECT_EQ(parse_duration("1m30s"), std::chrono::nanoseconds(90s));
    EXPECT_EQ(parse_duration("1h2m3s4ms"), std::chrono::nanoseconds(1h + 2min + 3s + 4ms));
    EXPECT_EQ(parse_duration("90s"), std::chrono::nanoseconds(90s));
    for (const char *bad :
         {"", "30", "s", "30 s", " 30s", "-1s", "+1s", "0s", "0ms", "1d", "1.5s", "10sec", "1S",
          "30s1m", "1s1s", "1ms1s", "1000000001s", "999999999h999999999m"}) {
        EXPECT_FALSE(parse_duration(bad)) << bad;
    }
    EXPECT_EQ(format_duration(90s), "1m30s");
    EXPECT_EQ(format_duration(1h), "1h");
    EXPECT_EQ(format_duration(2500ms), "2s500ms");
    EXPECT_EQ(format_duration(30s), "30s");
    for (const char *text : {"1h2m3s4ms", "500ms", "25h", "59m59s"}) {
        EXPECT_EQ(format_duration(*parse_duration(text)), text);
    }
}

TEST(Config, DescribeShowsResolvedServices) {
    Config c = load_config(source("tests/configs/design.toml"));
    std::string d = describe(c);
    for (const char *want : {
             "bpffs             /sys/fs/bpf/ppinject",
             "udp_flow_timeout  30s",
             "metrics           http://127.0.0.1:9477/metrics",
             "service dns (id 1, line 9): udp, header v2 on the first datagram of a flow, "
             "on_error drop",
             "0.0.0.0/0 port 53, every IPv4 address",
             "from \"0.0.0.0:53\", line 12",
             "interfaces  eth0",
             "service web (id 2, line 17): tcp, header v2, mode relay, transparent (sk_lookup), "
             "relay splice",
             "192.0.2.1/32 port 443",
             "backends    198.51.100.10:8443, [2001:db8::10]:8443",
             "timeouts    connect 5s, idle 1h, ClientHello 1s",
             "connections no limit but the relay slots",
             "tlv         unique_id, crc32c, authority from SNI",
             "services map: 2 of 65536 keys",
         }) {
        EXPECT_NE(d.find(want), std::string::npos) << "missing: " << want << "\n" << d;
    }
}

TEST(Config, JsonHasEveryResolvedField) {
    Config c = load_config(source("tests/configs/design.toml"));
    nlohmann::json j = to_json(c);
    EXPECT_EQ(j["global"]["bpffs"], "/sys/fs/bpf/ppinject");
    EXPECT_EQ(j["global"]["udp_flow_timeout_ms"], 30000);
    EXPECT_EQ(j["global"]["metrics"], "127.0.0.1:9477");
    EXPECT_EQ(j["service_keys"], 2);
    ASSERT_EQ(j["services"].size(), 2u);
    const auto &dns = j["services"][0];
    EXPECT_EQ(dns["id"], 1);
    EXPECT_EQ(dns["name"], "dns");
    EXPECT_EQ(dns["line"], 9);
    EXPECT_EQ(dns["protocol"], "udp");
    EXPECT_EQ(dns["header"], "v2");
    EXPECT_EQ(dns["udp_header"], "first");
    EXPECT_EQ(dns["on_error"], "drop");
    EXPECT_EQ(dns["interfaces"], nlohmann::json::array({"eth0"}));
    EXPECT_EQ(dns["listen"][0]["prefix"], "0.0.0.0/0");
    EXPECT_EQ(dns["listen"][0]["prefix_len"], 0);
    EXPECT_EQ(dns["listen"][0]["port_first"], 53);
    EXPECT_EQ(dns["listen"][0]["text"], "0.0.0.0:53");
    const auto &web = j["services"][1];
    EXPECT_EQ(web["transparent"], true);
    EXPECT_EQ(web["backends"][1], "[2001:db8::10]:8443");
    EXPECT_EQ(web["connect_timeout_ms"], 5000);
    EXPECT_EQ(web["sni_timeout_ms"], 1000);
    EXPECT_TRUE(web["max_connections"].is_null());
    EXPECT_EQ(web["tlv"]["authority"], "sni");
    EXPECT_EQ(web["tlv"]["crc32c"], true);
    EXPECT_TRUE(web["health_check"].is_null());
    EXPECT_TRUE(web["tcp_congestion"]["client"].is_null());  // the host's
    EXPECT_TRUE(web["tcp_congestion"]["backend"].is_null());
    Config set = parse_config(kTcp + "tcp_congestion = { client = \"bbr\" }\n", "t.toml");
    nlohmann::json t = to_json(set)["services"][0]["tcp_congestion"];
    EXPECT_EQ(t["client"], "bbr");
    EXPECT_TRUE(t["backend"].is_null());
    EXPECT_NE(
        describe(set).find("congestion  client bbr, backend the host's (cubic to loopback peers)"),
        std::string::npos)
        << describe(set);
    EXPECT_EQ(describe(c).find("congestion"), std::string::npos);  // not set: not shown
}

TEST(Config, ExampleFileIsValidAndCoversEveryKind) {
    Config c = load_config(source("tools/ppinject.example.toml"));
    bool udp_v2 = false, spp = false, tcp_v1 = false, tcp_v2_transparent_tlv = false,
         inline_tlv = false;
    for (const auto &s : c.services) {
        udp_v2 |= s.protocol == Protocol::udp && s.header == HeaderMode::v2;
        spp |= s.header == HeaderMode::spp;
        tcp_v1 |= s.protocol == Protocol::tcp && s.header == HeaderMode::v1;
        tcp_v2_transparent_tlv |= s.protocol == Protocol::tcp && s.header == HeaderMode::v2 &&
                                  s.transparent && s.tlv.any() && s.health_check;
        inline_tlv |= s.is_inline() && s.tlv.any();
    }
    EXPECT_TRUE(udp_v2 && spp && tcp_v1 && tcp_v2_transparent_tlv && inline_tlv);
}

TEST(Config, ExampleFileUsesDocumentationAddressesOnly) {
    Config c = load_config(source("tools/ppinject.example.toml"));
    auto documentation = [](const IpAddress &a) {
        auto m = a.mapped();
        if (a.is_v4()) {
            return (m[12] == 192 && m[13] == 0 && m[14] == 2) ||
                   (m[12] == 198 && m[13] == 51 && m[14] == 100) ||
                   (m[12] == 203 && m[13] == 0 && m[14] == 113) || a.is_unspecified() ||
                   m[12] == 127;
        }
        return (m[0] == 0x20 && m[1] == 0x01 && m[2] == 0x0d && m[3] == 0xb8) || a.is_unspecified();
    };
    for (const auto &s : c.services) {
        for (const auto &l : s.listen) {
            EXPECT_TRUE(documentation(l.addr)) << l.text;
        }
        for (const auto &b : s.backends) {
            EXPECT_TRUE(documentation(b.addr)) << b.to_string();
        }
    }
}

TEST(Config, UnreadableFile) {
    try {
        load_config("/nonexistent/ppinject.toml");
        FAIL();
    } catch (const ConfigError &e) {
        EXPECT_STREQ(e.what(),
                     "/nonexistent/ppinject.toml: cannot read: No such file or directory");
        EXPECT_EQ(e.line(), 0u);
        EXPECT_EQ(e.file(), "/nonexistent/ppinject.toml");
        EXPECT_EQ(e.reason(), "cannot read: No such file or directory");
    }
    try {
        load_config("/");
        FAIL();
    } catch (const ConfigError &e) {
        EXPECT_STREQ(e.what(), "/: cannot read: Is a directory");
    }
}

TEST(Config, LoadReportsTheGivenPath) {
    std::string path = "/tmp/ppt-config-" + std::to_string(getpid()) + ".toml";
    std::ofstream(path) << kUdp << "udp_header = \"sometimes\"\n";
    try {
        load_config(path);
        FAIL();
    } catch (const ConfigError &e) {
        EXPECT_EQ(std::string(e.what()),
                  path +
                      ":7: 'udp_header' in service 'a' is \"sometimes\"; allowed: \"first\" | "
                      "\"every\"");
    }
    unlink(path.c_str());
}

// ---- invalid files -------------------------------------------------------------------------

// One invalid file: the error must point at `line` and mention `needle`.
struct Bad {
    const char *what;
    std::string toml;
    unsigned line;
    const char *needle;
};

void PrintTo(const Bad &b, std::ostream *os) {
    *os << b.what;
}

class ConfigErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(ConfigErrors, NamesFileLineAndReason) {
    const Bad &b = GetParam();
    try {
        parse_config(b.toml, "bad.toml");
        FAIL() << b.what << ": accepted";
    } catch (const ConfigError &e) {
        std::string what = e.what();
        EXPECT_EQ(e.file(), "bad.toml");
        EXPECT_EQ(e.line(), b.line) << what;
        EXPECT_NE(what.find(b.needle), std::string::npos) << what;
        EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
        EXPECT_EQ(what.rfind("bad.toml:" + std::to_string(b.line) + ": ", 0), 0u) << what;
        EXPECT_EQ(what, "bad.toml:" + std::to_string(b.line) + ": " + e.reason());
    }
}

std::string name_of(const ::testing::TestParamInfo<Bad> &info) {
    std::string n;
    for (const char *p = info.param.what; *p; p++) {
        n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
    }
    return n;
}

const std::string kHead = "[[service]]\nname = \"a\"\nprotocol = \"udp\"\n";  // lines 1-3
const std::string kTcpHead = "[[service]]\nname = \"t\"\nprotocol = \"tcp\"\n";

INSTANTIATE_TEST_SUITE_P(
    Syntax, ConfigErrors,
    ::testing::Values(Bad{"unclosed table header", "[global\nbpffs = 1\n", 1, "TOML syntax: "},
                      Bad{"duplicate key", kUdp + "name = \"b\"\n", 7, "already exists"},
                      Bad{"duplicate key names first line", kUdp + "name = \"b\"\n", 7,
                          "(line 2: "},
                      Bad{"unterminated string", "[global]\nbpffs = \"/x\n", 2, "TOML syntax: "},
                      Bad{"missing value", "[global]\nbpffs =\n", 2, "missing value"},
                      Bad{"two values", "[global]\nudp_max_flows = 1 2\n", 2, "expected newline"},
                      // toml11 places this error on line 2 (after the newline it adds).
                      Bad{"error at the end of a file without a final newline", "i=[", 1,
                          "(line 1: array starts here)"}),
    name_of);

INSTANTIATE_TEST_SUITE_P(
    Structure, ConfigErrors,
    ::testing::Values(
        Bad{"empty file", "", 1, "no [[service]] defined"},
        Bad{"no services", "[global]\nbpffs = \"/sys/fs/bpf/x\"\n", 1, "no [[service]] defined"},
        Bad{"empty service array", "service = []\n", 1, "no [[service]] defined"},
        Bad{"service as a table", "[service]\nname = \"a\"\n", 1, "write [[service]]"},
        Bad{"service not a table", "service = [1]\n", 1, "service #1 must be a table"},
        Bad{"global as an array", "[[global]]\n" + kUdp, 1, "[global] must be a table"},
        Bad{"unknown top table", kUdp + "[extra]\n", 7, "unknown key 'extra' at the top level"},
        Bad{"top typo", "[[services]]\n", 1, "(did you mean 'service'?)"},
        Bad{"unknown global key", "[global]\nbpfs = \"/x\"\n", 2,
            "unknown key 'bpfs' in [global] (did you mean 'bpffs'?)"},
        Bad{"typo in service", kUdp + "udp_heade = \"every\"\n", 7,
            "unknown key 'udp_heade' in service 'a' (did you mean 'udp_header'?)"},
        Bad{"typo reported before the missing key it was meant to be",
            kHead + "listen = \"192.0.2.1:53\"\ninterface = [\"eth0\"]\nheader = \"v2\"\n", 5,
            "unknown key 'interface' in service 'a' (did you mean 'interfaces'?)"},
        Bad{"unrelated unknown key gets no suggestion", kUdp + "colour = \"blue\"\n", 7,
            "unknown key 'colour' in service 'a'"},
        Bad{"first unknown key by line", kUdp + "zz = 1\naa = 2\n", 7, "unknown key 'zz'"},
        Bad{"unknown key of an unnamed service", "[[service]]\nnme = \"a\"\n", 2,
            "unknown key 'nme' in service #1 (did you mean 'name'?)"},
        Bad{"subtable unknown", kUdp + "[service.extra]\nx = 1\n", 7,
            "unknown key 'extra' in service 'a'"}),
    name_of);

INSTANTIATE_TEST_SUITE_P(
    Global, ConfigErrors,
    ::testing::Values(
        Bad{"relative bpffs", "[global]\nbpffs = \"ppinject\"\n", 2, "absolute"},
        Bad{"root bpffs", "[global]\nbpffs = \"/\"\n", 2, "absolute directory path"},
        Bad{"dotdot bpffs", "[global]\nbpffs = \"/sys/fs/bpf/../x\"\n", 2, "\"..\""},
        Bad{"bpffs type", "[global]\nbpffs = 1\n", 2, "'bpffs' in [global] must be a string"},
        Bad{"bare number duration", "[global]\nudp_flow_timeout = \"30\"\n", 2,
            "is \"30\"; expected a positive duration"},
        Bad{"integer duration", "[global]\nudp_flow_timeout = 30\n", 2,
            "'udp_flow_timeout' in [global] must be a string: a positive duration"},
        Bad{"zero duration", "[global]\nudp_flow_timeout = \"0s\"\n", 2, "positive duration"},
        Bad{"max flows type", "[global]\nudp_max_flows = \"many\"\n", 2, "1..16777216"},
        Bad{"max flows zero", "[global]\nudp_max_flows = 0\n", 2, "1..16777216"},
        Bad{"max flows too large", "[global]\nudp_max_flows = 16777217\n", 2, "1..16777216"},
        Bad{"max flows float", "[global]\nudp_max_flows = 1000.0\n", 2, "must be an integer"},
        Bad{"inline max conns zero", "[global]\ninline_max_conns = 0\n", 2,
            "'inline_max_conns' in [global] must be an integer in 1..16777216"},
        Bad{"inline max conns too large", "[global]\ninline_max_conns = 16777217\n", 2,
            "'inline_max_conns' in [global] must be an integer in 1..16777216"},
        Bad{"inline max conns type", "[global]\ninline_max_conns = \"1k\"\n", 2,
            "'inline_max_conns' in [global] must be an integer"},
        Bad{"metrics without port", "[global]\nmetrics = \"localhost\"\n", 2, "'metrics'"},
        Bad{"metrics port zero", "[global]\nmetrics = \"127.0.0.1:0\"\n", 2, "other than 0"}),
    name_of);

INSTANTIATE_TEST_SUITE_P(
    Service, ConfigErrors,
    ::testing::Values(
        Bad{"no name", "[[service]]\nprotocol = \"udp\"\n", 1, "service #1 has no 'name'"},
        Bad{"name with space", "[[service]]\nname = \"a b\"\n", 2, "A-Z a-z 0-9 _ -"},
        Bad{"empty name", "[[service]]\nname = \"\"\n", 2, "must be 1..31 characters"},
        Bad{"name of 32", "[[service]]\nname = \"" + std::string(32, 'n') + "\"\n", 2,
            "1..31 characters"},
        Bad{"name type", "[[service]]\nname = 5\n", 2, "'name' in service #1 must be a string"},
        Bad{"duplicate name", kUdp + kUdp, 8,
            "service name 'a' is already used by the service on line 1"},
        Bad{"no protocol", "[[service]]\nname = \"a\"\n", 1, "service 'a' has no 'protocol'"},
        Bad{"bad protocol", "[[service]]\nname = \"a\"\nprotocol = \"sctp\"\n", 3,
            "'protocol' in service 'a' is \"sctp\"; allowed: \"udp\" | \"tcp\""},
        Bad{"no header", kHead + "listen = \"192.0.2.1:53\"\n", 1, "has no 'header'"},
        Bad{"bad header", kHead + "listen = \"192.0.2.1:53\"\nheader = \"v3\"\n", 5,
            "allowed: \"v1\" | \"v2\" | \"spp\""},
        Bad{"header type", kHead + "listen = \"192.0.2.1:53\"\nheader = 2\n", 5,
            "'header' in service 'a' must be a string"}),
    name_of);

INSTANTIATE_TEST_SUITE_P(
    Listen, ConfigErrors,
    ::testing::Values(
        Bad{"no listen", kHead, 1, "has no 'listen'"},
        Bad{"listen type", kHead + "listen = 53\n", 4, "must be a string or an array of strings"},
        Bad{"listen empty", kHead + "listen = []\n", 4,
            "'listen' in service 'a' must not be empty"},
        Bad{"listen element type", kHead + "listen = [\n  \"192.0.2.1:53\",\n  54,\n]\n", 6,
            "must hold strings only"},
        Bad{"bad element of a multi-line array",
            kHead + "listen = [\n  \"192.0.2.1:53\",\n  \"192.0.2.1\",\n]\n", 6,
            "listen \"192.0.2.1\" of service 'a': missing \":PORT\""},
        Bad{"v6 without brackets", kHead + "listen = \"2001:db8::1:53\"\n", 4, "needs brackets"},
        Bad{"v6 prefix without brackets", kHead + "listen = \"2001:db8::/64:53\"\n", 4,
            "needs brackets"},
        Bad{"v4 in brackets", kHead + "listen = \"[192.0.2.1]:53\"\n", 4, "brackets are for IPv6"},
        Bad{"v4-mapped v6", kHead + "listen = \"[::ffff:192.0.2.1]:53\"\n", 4, "dotted quads"},
        Bad{"unclosed bracket", kHead + "listen = \"[2001:db8::1:53\"\n", 4,
            "expected \"[IPV6]:PORT\""},
        Bad{"no port", kHead + "listen = \"192.0.2.1\"\n", 4, "missing \":PORT\""},
        Bad{"empty port", kHead + "listen = \"192.0.2.1:\"\n", 4, "must be N or N-M"},
        Bad{"bad address", kHead + "listen = \"192.0.2.300:53\"\n", 4,
            "\"192.0.2.300\" is not an IPv4 or IPv6 address"},
        Bad{"host name", kHead + "listen = \"localhost:53\"\n", 4, "not an IPv4 or IPv6"},
        Bad{"port zero", kHead + "listen = \"192.0.2.1:0\"\n", 4, "1..65535"},
        Bad{"port too big", kHead + "listen = \"192.0.2.1:65536\"\n", 4, "must be N or N-M"},
        Bad{"port leading zero", kHead + "listen = \"192.0.2.1:053\"\n", 4, "must be N or N-M"},
        Bad{"open range", kHead + "listen = \"192.0.2.1:10-\"\n", 4, "must be N or N-M"},
        Bad{"reversed range", kHead + "listen = \"192.0.2.1:20-10\"\n", 4, "N <= M"},
        Bad{"v4 prefix too long", kHead + "listen = \"192.0.2.0/33:53\"\n", 4, "0..32"},
        Bad{"v6 prefix too long", kHead + "listen = \"[2001:db8::/129]:53\"\n", 4, "0..128"},
        Bad{"prefix not a number", kHead + "listen = \"192.0.2.0/x:53\"\n", 4,
            "prefix length \"x\""},
        Bad{"v4 host bits", kHead + "listen = [\"192.0.2.0/24:1\", \"192.0.2.1/24:53\"]\n", 4,
            "\"192.0.2.1/24\" has host bits set past the /24 prefix"},
        Bad{"v6 host bits", kHead + "listen = \"[2001:db8::1/64]:53\"\n", 4,
            "has host bits set past the /64 prefix"},
        Bad{"wildcard with host bits", kHead + "listen = \"192.0.2.1/0:53\"\n", 4,
            "host bits set past the /0 prefix"}),
    name_of);

INSTANTIATE_TEST_SUITE_P(
    Udp, ConfigErrors,
    ::testing::Values(
        Bad{"udp v1", kHead + "listen = \"192.0.2.1:53\"\nheader = \"v1\"\n", 5,
            "a UDP service takes \"v2\" or \"spp\""},
        Bad{"udp without interfaces", kHead + "listen = \"192.0.2.1:53\"\nheader = \"v2\"\n", 1,
            "service 'a' needs 'interfaces'"},
        Bad{"empty interfaces",
            kHead + "listen = \"192.0.2.1:53\"\ninterfaces = []\nheader = "
                    "\"v2\"\n",
            5, "'interfaces' in service 'a' must not be empty"},
        Bad{"interface with slash",
            kUdp + "[[service]]\nname = \"b\"\nprotocol = \"udp\"\nlisten = \"192.0.2.2:53\"\n"
                   "interfaces = [\"a/b\"]\nheader = \"v2\"\n",
            11, "\"a/b\" is not a valid Linux interface name"},
        Bad{"interface too long",
            kHead + "listen = \"192.0.2.1:53\"\ninterfaces = [\"eth0\", \"" + std::string(16, 'e') +
                "\"]\nheader = \"v2\"\n",
            5, "is not a valid Linux interface name"},
        Bad{"interface with space",
            kHead + "listen = \"192.0.2.1:53\"\ninterfaces = [\"eth 0\"]\nheader = \"v2\"\n", 5,
            "not a valid Linux interface name"},
        Bad{"interface twice",
            kHead +
                "listen = \"192.0.2.1:53\"\ninterfaces = [\"eth0\", \"eth0\"]\nheader = \"v2\"\n",
            5, "interface \"eth0\" is listed twice"},
        Bad{"udp_header on spp",
            kHead + "listen = \"192.0.2.1:53\"\ninterfaces = [\"eth0\"]\nheader = \"spp\"\n"
                    "udp_header = \"every\"\n",
            7, "'udp_header' in service 'a' applies to UDP services with header = \"v2\" only"},
        Bad{"bad udp_header", kUdp + "udp_header = \"all\"\n", 7, "allowed: \"first\" | \"every\""},
        Bad{"bad on_error", kUdp + "on_error = \"ignore\"\n", 7, "allowed: \"drop\" | \"pass\""},
        Bad{"bad attach", kUdp + "attach = \"xdpgeneric\"\n", 7, "allowed: \"tc\" | \"xdp\""},
        // One injector per interface: the later service's attach (or [[service]]) is named.
        Bad{"both hooks on one interface",
            kUdp + "attach = \"xdp\"\n[[service]]\nname = \"b\"\nprotocol = \"udp\"\n"
                   "listen = \"192.0.2.2:53\"\ninterfaces = [\"eth1\", \"eth0\"]\n"
                   "header = \"spp\"\nattach = \"tc\"\n",
            14,
            "service 'b' injects on \"eth0\" at tc but service 'a' (line 1) injects there at "
            "xdp: one injector per interface"},
        Bad{"both hooks, the default tc",
            kUdp + "[[service]]\nname = \"b\"\nprotocol = \"udp\"\nlisten = \"192.0.2.2:53\"\n"
                   "interfaces = [\"eth0\"]\nheader = \"v2\"\nattach = \"xdp\"\n",
            13, "service 'b' injects on \"eth0\" at xdp but service 'a' (line 1)"},
        Bad{"both hooks, attach not written",
            kUdp + "attach = \"xdp\"\n[[service]]\nname = \"b\"\nprotocol = \"udp\"\n"
                   "listen = \"192.0.2.2:53\"\ninterfaces = [\"eth0\"]\nheader = \"v2\"\n",
            8, "service 'b' injects on \"eth0\" at tc"},
        Bad{"backends on udp", kUdp + "backends = [\"198.51.100.1:53\"]\n", 7,
            "'backends' in service 'a' is for TCP services"},
        Bad{"transparent on udp", kUdp + "transparent = true\n", 7, "'transparent' in service"},
        Bad{"relay on udp", kUdp + "relay = \"copy\"\n", 7, "'relay' in service 'a' is for TCP"},
        Bad{"idle_timeout on udp", kUdp + "idle_timeout = \"1m\"\n", 7, "udp_flow_timeout"},
        Bad{"connect_timeout on udp", kUdp + "connect_timeout = \"1s\"\n", 7,
            "'connect_timeout' in service 'a' is for TCP"},
        Bad{"health_check on udp", kUdp + "health_check = { interval = \"1s\" }\n", 7,
            "'health_check' in service 'a' is for TCP"},
        Bad{"tlv on udp", kUdp + "tlv = { crc32c = true }\n", 7,
            "'tlv' in service 'a' applies to TCP services with header = \"v2\" only"}),
    name_of);

INSTANTIATE_TEST_SUITE_P(
    Tcp, ConfigErrors,
    ::testing::Values(
        Bad{"tcp spp", kTcpHead + "listen = \"192.0.2.1:53\"\nheader = \"spp\"\n", 5,
            "SPP is for UDP"},
        Bad{"interfaces on tcp", kTcp + "interfaces = [\"eth0\"]\n", 7,
            "'interfaces' in service 't' is for UDP"},
        Bad{"udp_header on tcp", kTcp + "udp_header = \"every\"\n", 7, "'udp_header'"},
        Bad{"on_error on tcp", kTcp + "on_error = \"pass\"\n", 7,
            "'on_error' in service 't' is for UDP"},
        Bad{"attach on tcp", kTcp + "attach = \"xdp\"\n", 7,
            "'attach' in service 't' is for UDP services"},
        Bad{"tlv on v1",
            kTcpHead + "listen = \"192.0.2.1:443\"\nbackends = [\"198.51.100.1:443\"]\n"
                       "header = \"v1\"\ntlv = { crc32c = true }\n",
            7, "'tlv' in service 't' applies to TCP services with header = \"v2\" only"},
        Bad{"tcp without backends", kTcpHead + "listen = \"192.0.2.1:443\"\nheader = \"v1\"\n", 1,
            "service 't' needs 'backends'"},
        Bad{"empty backends",
            kTcpHead + "listen = \"192.0.2.1:443\"\nbackends = []\nheader = \"v1\"\n", 5,
            "'backends' in service 't' must not be empty"},
        Bad{"backend without port",
            kTcpHead +
                "listen = \"192.0.2.1:443\"\nbackends = [\"198.51.100.1\"]\nheader = \"v1\"\n",
            5, "backend \"198.51.100.1\" must be \"ADDR:PORT\""},
        Bad{"wildcard backend",
            kTcpHead +
                "listen = \"192.0.2.1:443\"\nbackends = [\"0.0.0.0:443\"]\nheader = \"v1\"\n",
            5, "needs a real address"},
        Bad{"v6 wildcard backend",
            kTcpHead + "listen = \"192.0.2.1:443\"\nbackends = [\"198.51.100.1:1\", \"[::]:443\"]\n"
                       "header = \"v1\"\n",
            5, "backend \"[::]:443\" needs a real address"},
        Bad{"backend port zero",
            kTcpHead +
                "listen = \"192.0.2.1:443\"\nbackends = \"198.51.100.1:0\"\nheader = \"v1\"\n",
            5, "a port other than 0"},
        Bad{"transparent type", kTcp + "transparent = \"yes\"\n", 7, "must be true or false"},
        Bad{"prefix without transparent",
            kTcpHead + "listen = [\"192.0.2.1:443\", \"192.0.2.0/24:80\"]\n"
                       "backends = [\"198.51.100.1:443\"]\nheader = \"v1\"\n",
            4, "is a prefix: a TCP service accepts for a prefix only with transparent = true"},
        Bad{"relay mode", kTcp + "relay = \"zerocopy\"\n", 7,
            "allowed: \"sockmap\" | \"splice\" | \"copy\""},
        Bad{"bad connect_timeout", kTcp + "connect_timeout = \"5\"\n", 7,
            "'connect_timeout' in service 't' is \"5\""},
        Bad{"sub-millisecond idle_timeout", kTcp + "idle_timeout = \"0ms\"\n", 7,
            "positive duration"},
        Bad{"tlv not a table", kTcp + "tlv = true\n", 7, "tlv of service 't' must be a table"},
        Bad{"bad tlv key", kTcp + "tlv = { crc = true }\n", 7,
            "unknown key 'crc' in tlv of service 't'"},
        Bad{"tlv subtable typo", kTcp + "[service.tlv]\nunique = true\n", 8,
            "(did you mean 'unique_id'?)"},
        Bad{"tlv flag type", kTcp + "tlv = { crc32c = 1 }\n", 7, "must be true or false"},
        Bad{"empty authority", kTcp + "tlv = { authority = \"\" }\n", 7,
            "must be \"sni\" or a host name"},
        Bad{"authority with space", kTcp + "tlv = { authority = \"a b\" }\n", 7,
            "must be \"sni\" or a host name"},
        Bad{"empty netns", kTcp + "tlv = { netns = \"\" }\n", 7, "'netns'"},
        Bad{"custom not a table", kTcp + "tlv = { custom = 5 }\n", 7,
            "'custom' in tlv of service 't' must be a table"},
        Bad{"custom tlv type", kTcp + "tlv = { custom = { \"0xF0\" = \"x\" } }\n", 7,
            "custom TLV type '0xF0' must be 0xE0..0xEF"},
        Bad{"custom tlv decimal", kTcp + "tlv = { custom = { \"224\" = \"x\" } }\n", 7,
            "must be 0xE0..0xEF"},
        Bad{"custom tlv value type", kTcp + "tlv = { custom = { \"0xE1\" = 1 } }\n", 7,
            "custom TLV 0xE1 must be a string"},
        Bad{"custom tlv too long",
            kTcp + "tlv = { custom = { \"0xE1\" = \"" + std::string(1025, 'x') + "\" } }\n", 7,
            "longer than 1024 bytes"},
        Bad{"custom tlv twice", kTcp + "[service.tlv.custom]\n0xE2 = \"a\"\n0xe2 = \"b\"\n", 9,
            "is the same type as"},
        Bad{"health_check unknown key", kTcp + "health_check = { interval = \"1s\", tries = 3 }\n",
            7, "unknown key 'tries' in health_check of service 't'"},
        Bad{"health_check mode", kTcp + "health_check = { mode = \"http\" }\n", 7,
            "allowed: \"local\" | \"proxy\""},
        Bad{"health_check timeout over interval",
            kTcp + "health_check = { interval = \"1s\", timeout = \"2s\" }\n", 7,
            "health_check timeout 2s is longer than its interval 1s"},
        Bad{"tcp_congestion on udp", kUdp + "tcp_congestion = \"cubic\"\n", 7,
            "'tcp_congestion' in service 'a' is for TCP services"},
        Bad{"tcp_congestion number", kTcp + "tcp_congestion = 1\n", 7,
            "'tcp_congestion' in service 't' must be a name (\"cubic\") or a table"},
        Bad{"tcp_congestion empty", kTcp + "tcp_congestion = \"\"\n", 7,
            "tcp_congestion \"\" of service 't' is not a congestion control name"},
        Bad{"tcp_congestion too long", kTcp + "tcp_congestion = \"abcdefghijklmnop\"\n", 7,
            "is not a congestion control name (1..15 characters"},
        Bad{"tcp_congestion space", kTcp + "tcp_congestion = { backend = \"cu bic\" }\n", 7,
            "tcp_congestion \"cu bic\" of service 't' is not a congestion control name"},
        Bad{"tcp_congestion leg typo", kTcp + "tcp_congestion = { clients = \"bbr\" }\n", 7,
            "unknown key 'clients' in tcp_congestion of service 't' (did you mean 'client'?)"},
        Bad{"tcp_congestion leg type", kTcp + "tcp_congestion = { client = 2 }\n", 7,
            "'client' in tcp_congestion of service 't' must be a string"},
        Bad{"max_connections zero", kTcp + "max_connections = 0\n", 7,
            "'max_connections' in service 't' must be an integer in 1..65536 (the relay slots)"},
        Bad{"max_connections over the slots", kTcp + "max_connections = 65537\n", 7, "1..65536"},
        Bad{"max_connections as text", kTcp + "max_connections = \"10\"\n", 7, "1..65536"},
        Bad{"max_connections for udp", kUdp + "max_connections = 10\n", 7, "is for TCP services"},
        Bad{"sni_timeout without sni", kTcp + "sni_timeout = \"2s\"\n", 7,
            "'sni_timeout' in service 't' applies only with tlv = { authority = \"sni\" }"},
        Bad{"sni_timeout zero", kTcp + "tlv = { authority = \"sni\" }\nsni_timeout = \"0s\"\n", 8,
            "positive duration"}),
    name_of);

const std::string kInlineHead =
    "[[service]]\nname = \"e\"\nprotocol = \"tcp\"\nmode = \"inline\"\n";  // lines 1-4

INSTANTIATE_TEST_SUITE_P(
    Inline, ConfigErrors,
    ::testing::Values(
        Bad{"mode on udp", kUdp + "mode = \"inline\"\n", 7,
            "'mode' in service 'a' is for TCP services (\"relay\" or \"inline\")"},
        Bad{"bad mode", kTcp + "mode = \"dnat\"\n", 7,
            "'mode' in service 't' is \"dnat\"; allowed: \"relay\" | \"inline\""},
        Bad{"inline without interfaces",
            kInlineHead + "listen = \"203.0.113.1:443\"\nheader = \"v2\"\n", 1,
            "service 'e' needs 'interfaces': the client-facing interfaces to attach to"},
        Bad{"inline empty interfaces",
            kInlineHead + "listen = \"203.0.113.1:443\"\ninterfaces = []\nheader = \"v2\"\n", 6,
            "'interfaces' in service 'e' must not be empty"},
        Bad{"inline interface twice",
            kInlineHead + "listen = \"203.0.113.1:443\"\ninterfaces = [\"eth0\", \"eth0\"]\nheader "
                          "= \"v2\"\n",
            6, "interface \"eth0\" is listed twice in service 'e'"},
        Bad{"inline bad interface name",
            kInlineHead + "listen = \"203.0.113.1:443\"\ninterfaces = [\"a:b\"]\nheader = \"v2\"\n",
            6, "interface name \"a:b\" is not a valid Linux interface name"},
        Bad{"backends inline", kInline + "backends = [\"198.51.100.1:443\"]\n", 8,
            "'backends' in service 'e' is for relay services: with mode = \"inline\" the front "
            "host forwards (DNAT, IPVS, routes)"},
        Bad{"transparent inline", kInline + "transparent = true\n", 8,
            "'transparent' in service 'e' is for relay services: with mode = \"inline\" no "
            "socket binds its addresses, nothing to steer"},
        Bad{"relay inline", kInline + "relay = \"splice\"\n", 8,
            "'relay' in service 'e' is for relay services: with mode = \"inline\" its "
            "connections are not terminated, nothing is relayed"},
        Bad{"connect_timeout inline", kInline + "connect_timeout = \"1s\"\n", 8,
            "'connect_timeout' in service 'e' is for relay services: with mode = \"inline\" the "
            "client itself connects to the backend"},
        Bad{"sni_timeout inline", kInline + "sni_timeout = \"1s\"\n", 8,
            "'sni_timeout' in service 'e' is for relay services: with mode = \"inline\" the "
            "header is written at the handshake, before any SNI"},
        Bad{"max_connections inline", kInline + "max_connections = 10\n", 8,
            "'max_connections' in service 'e' is for relay services: with mode = \"inline\" "
            "[global] inline_max_conns bounds its connections"},
        Bad{"health_check inline", kInline + "health_check = { interval = \"1s\" }\n", 8,
            "'health_check' in service 'e' is for relay services: with mode = \"inline\" it "
            "has no backends to probe"},
        Bad{"tcp_congestion inline", kInline + "tcp_congestion = \"cubic\"\n", 8,
            "'tcp_congestion' in service 'e' is for relay services: with mode = \"inline\" the "
            "client's and the backend's own stacks choose"},
        Bad{"attach inline", kInline + "attach = \"tc\"\n", 8,
            "'attach' in service 'e' is for UDP services"},
        Bad{"udp_header inline", kInline + "udp_header = \"every\"\n", 8,
            "'udp_header' in service 'e' applies to UDP services"},
        Bad{"sni authority inline", kInline + "tlv = { unique_id = true, authority = \"sni\" }\n",
            8,
            "tlv authority = \"sni\" in service 'e' cannot be inline: the header is written at "
            "the handshake, before any payload (SNI) exists; use a fixed authority or mode = "
            "\"relay\""},
        Bad{"sni authority inline, sub-table",
            kInline + "[service.tlv]\nunique_id = true\nauthority = \"sni\"\n", 10,
            "tlv authority = \"sni\" in service 'e' cannot be inline"},
        Bad{"inline header one byte too long",
            kInline + "tlv = { unique_id = true, crc32c = true, authority = \"" +
                std::string(112, 'a') + "\" }\n",
            8,
            "the PROXY v2 header of inline service 'e' would take 193 bytes (52 for IPv6 "
            "addresses, 141 of TLVs); an inline header holds at most 192"},
        Bad{"inline header too long by custom TLVs",
            kInline + "tlv = { netns = \"n\", custom = { \"0xE0\" = \"" + std::string(100, 'x') +
                "\", \"0xE1\" = \"" + std::string(100, 'y') + "\" } }\n",
            8,
            "would take 262 bytes (52 for IPv6 addresses, 210 of TLVs); an inline header holds "
            "at most 192"},
        Bad{"tlv on inline v1",
            kInlineHead + "listen = \"203.0.113.1:443\"\ninterfaces = [\"eth0\"]\nheader = \"v1\"\n"
                          "tlv = { crc32c = true }\n",
            8, "'tlv' in service 'e' applies to TCP services with header = \"v2\" only"},
        Bad{"inline and relay claim one address",
            kTcp + kInlineHead +
                "listen = \"192.0.2.1:443\"\ninterfaces = [\"eth0\"]\nheader = \"v1\"\n",
            11,
            "listen \"192.0.2.1:443\" of service 'e' overlaps \"192.0.2.1:443\" of service 't' "
            "(line 4)"},
        Bad{"inline port ranges overlap",
            kInline +
                "[[service]]\nname = \"g\"\nprotocol = \"tcp\"\nmode = \"inline\"\n"
                "listen = \"203.0.113.1:400-500\"\ninterfaces = [\"eth1\"]\nheader = \"v2\"\n",
            12,
            "listen \"203.0.113.1:400-500\" of service 'g' overlaps \"203.0.113.1:443\" of "
            "service 'e' (line 4)"}),
    name_of);

INSTANTIATE_TEST_SUITE_P(
    Conflicts, ConfigErrors,
    ::testing::Values(
        Bad{"overlapping port ranges",
            kUdp + "[[service]]\nname = \"b\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:50-60\"\n"
                   "interfaces = [\"eth0\"]\nheader = \"spp\"\n",
            10,
            "listen \"192.0.2.1:50-60\" of service 'b' overlaps \"192.0.2.1:53\" of service "
            "'a' (line 4)"},
        Bad{"same prefix twice", udp("a", "\"192.0.2.0/24:53\"") + udp("b", "\"192.0.2.0/24:53\""),
            10, "overlaps \"192.0.2.0/24:53\""},
        Bad{"same v6 prefix written differently",
            udp("a", "\"[2001:db8::/64]:53\"") + udp("b", "\"[2001:DB8:0::/64]:53\""), 10,
            "overlaps"},
        Bad{"wildcard written two ways", udp("a", "\"0.0.0.0:53\"") + udp("b", "\"0.0.0.0/0:53\""),
            10, "overlaps \"0.0.0.0:53\""},
        Bad{"dual-stack wildcard twice", udp("a", "\"[::]:1-100\"") + udp("b", "\"[::]:100\""), 10,
            "overlaps \"[::]:1-100\""},
        Bad{"same listen twice in one service", udp("a", "[\"192.0.2.1:53\",\n  \"192.0.2.1:53\"]"),
            5, "of service 'a' overlaps \"192.0.2.1:53\" of service 'a' (line 4)"},
        Bad{"tcp listens overlap",
            kTcp + "[[service]]\nname = \"u\"\nprotocol = \"tcp\"\nlisten = \"192.0.2.1:443\"\n"
                   "backends = [\"198.51.100.2:443\"]\nheader = \"v1\"\n",
            10, "overlaps \"192.0.2.1:443\" of service 't'"},
        Bad{"too many keys", udp("a", "[\"192.0.2.1:1-65535\",\n  \"192.0.2.2:1-2\"]"), 5,
            "listen \"192.0.2.2:1-2\" of service 'a' brings the services map to 65537 keys"},
        Bad{"too many keys over services",
            udp("a", "\"192.0.2.1:1-40000\"") + udp("b", "\"192.0.2.2:1-40000\""), 10,
            "at most 65536 fit"}),
    name_of);

// Hostile text (issue 20): what toml11 itself cannot take is refused before it sees it, and
// every message stays one line whatever the file holds.
std::string repeat(const std::string &text, int times) {
    std::string s;
    for (int i = 0; i < times; i++) {
        s += text;
    }
    return s;
}

std::string nested(const std::string &open, int depth) {
    return "[global]\na = " + repeat(open, depth) + "\n";
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, ConfigErrors,
    ::testing::Values(
        Bad{"invalid UTF-8 in a literal string", "[global]\nbpffs = '\xff'\n", 2,
            "not valid UTF-8 (byte 0xff at column 10)"},
        Bad{"invalid UTF-8 in a multi-line literal string", "[global]\n\nbpffs = '''\n\xc3'''\n", 4,
            "not valid UTF-8 (byte 0xc3 at column 1)"},
        Bad{"invalid UTF-8 in a comment", "# \xe2\x82\n", 1, "not valid UTF-8"},
        Bad{"overlong UTF-8", "[global]\nbpffs = \"\xc0\xaf\"\n", 2, "not valid UTF-8"},
        Bad{"UTF-8 surrogate", "[global]\nbpffs = \"\xed\xa0\x80\"\n", 2, "not valid UTF-8"},
        Bad{"UTF-8 past U+10FFFF", "[global]\nbpffs = \"\xf4\x90\x80\x80\"\n", 2,
            "not valid UTF-8"},
        Bad{"4000 nested arrays", nested("[", 4000), 2,
            "arrays and inline tables nested deeper than 32"},
        Bad{"4000 nested inline tables", nested("{b=", 4000), 2,
            "arrays and inline tables nested deeper than 32"},
        Bad{"dotted key of 4000 parts", "[global]\n" + repeat("a.", 4000) + "a = 1\n", 2,
            "a dotted key of more parts than 32"},
        Bad{"20000 values on one line", "[global]\na = [" + repeat("1,", 20000) + "]\n", 2,
            "more keys and values on one line than 256"},
        Bad{"key with a newline", kUdp + "\"a\\nb\" = 1\n", 7,
            "unknown key \"a\\nb\" in service 'a'"},
        Bad{"key with a quote and a backslash", kUdp + "'a\"\\' = 1\n", 7,
            "unknown key \"a\\\"\\\\\" in service 'a'"},
        Bad{"value with control characters", kUdp + "udp_header = \"v\\u0007\\r\"\n", 7,
            "is \"v\\u0007\\r\"; allowed"},
        Bad{"key that looks like a source line, twice",
            "\"\\n99999999999999999999 | \" = 1\n\"\\n99999999999999999999 | \" = 2\n", 2,
            "TOML syntax: "}),
    name_of);

// A file far past toml11's 128 KiB read buffer with invalid UTF-8 at the end: toml11 read
// past its heap buffer here (segfault) before the text was checked first.
TEST(Config, LargeFileWithInvalidUtf8IsRefused) {
    std::string text = "[global]\n";
    for (int i = 0; i < 20000; i++) {
        text += "# padding padding padding\n";
    }
    text += "bpffs = '\xff'\n";
    try {
        parse_config(text, "big.toml");
        FAIL() << "accepted";
    } catch (const ConfigError &e) {
        EXPECT_EQ(e.line(), 20002u) << e.what();
        EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos) << e.what();
    }
}

// Nesting up to the limit is still TOML like any other (and refused only for its meaning).
TEST(Config, NestingAtTheLimitReachesValidation) {
    std::string text = "[global]\na = " + std::string(32, '[') + std::string(32, ']') + "\n";
    try {
        parse_config(text, "n.toml");
        FAIL() << "accepted";
    } catch (const ConfigError &e) {
        EXPECT_NE(std::string(e.what()).find("unknown key 'a' in [global]"), std::string::npos)
            << e.what();
    }
}

}  // namespace
