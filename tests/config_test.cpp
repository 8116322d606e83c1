// Configuration: the DESIGN.md example and the example file resolve as documented; every
// invalid form is refused with the exact line and a reason that names the problem.
#include <gtest/gtest.h>

#include <string>

#include "core/config.hpp"

namespace {

using namespace ppinject;
using namespace std::chrono_literals;

constexpr const char *kDesignExample = R"([global]
bpffs = "/sys/fs/bpf/ppinject"     # pin directory
udp_flow_timeout = "30s"
udp_max_flows = 65536
metrics = "127.0.0.1:9477"          # Prometheus text format, optional

[[service]]
name = "dns"
protocol = "udp"
listen = "0.0.0.0:53"               # "[::]:53", "192.0.2.0/24:1000-2000"
interfaces = ["eth0"]
header = "v2"                        # udp: "v2" | "spp"
udp_header = "first"                 # v2 only: "first" datagram of a flow | "every"

[[service]]
name = "web"
protocol = "tcp"
listen = "192.0.2.1:443"
transparent = true                   # sk_lookup steering
backends = ["198.51.100.10:8443", "[2001:db8::10]:8443"]
header = "v2"                        # tcp: "v1" | "v2"
tlv = { unique_id = true, crc32c = true, authority = "sni" }
)";

TEST(Config, DesignExampleResolves) {
    Config c = parse_config(kDesignExample, "design.toml");
    EXPECT_EQ(c.global.bpffs, "/sys/fs/bpf/ppinject");
    EXPECT_EQ(c.global.udp_flow_timeout, 30s);
    EXPECT_EQ(c.global.udp_max_flows, 65536u);
    ASSERT_TRUE(c.global.metrics);
    EXPECT_EQ(c.global.metrics->to_string(), "127.0.0.1:9477");
    ASSERT_EQ(c.services.size(), 2u);

    const Service &dns = c.services[0];
    EXPECT_EQ(dns.id, 1u);
    EXPECT_EQ(dns.name, "dns");
    EXPECT_EQ(dns.line, 7u);
    EXPECT_EQ(dns.protocol, Protocol::udp);
    ASSERT_EQ(dns.listen.size(), 1u);
    EXPECT_EQ(dns.listen[0].prefix_len, 0u);  // 0.0.0.0 is every IPv4 address
    EXPECT_EQ(dns.listen[0].port_first, 53);
    EXPECT_EQ(dns.listen[0].port_last, 53);
    EXPECT_EQ(dns.interfaces, std::vector<std::string>{"eth0"});
    EXPECT_EQ(dns.header, HeaderMode::v2);
    EXPECT_EQ(dns.udp_header, UdpHeaderPolicy::first);
    EXPECT_EQ(dns.on_error, OnError::drop);

    const Service &web = c.services[1];
    EXPECT_EQ(web.id, 2u);
    EXPECT_EQ(web.protocol, Protocol::tcp);
    EXPECT_TRUE(web.transparent);
    ASSERT_EQ(web.backends.size(), 2u);
    EXPECT_EQ(web.backends[1].to_string(), "[2001:db8::10]:8443");
    EXPECT_TRUE(web.tlv.unique_id);
    EXPECT_TRUE(web.tlv.crc32c);
    EXPECT_TRUE(web.tlv.authority_from_sni);
    EXPECT_EQ(web.splice, SpliceMode::sockmap);
    EXPECT_EQ(web.connect_timeout, 5s);
}

TEST(Config, ListenForms) {
    Config c = parse_config(R"(
[[service]]
name = "many"
protocol = "udp"
listen = ["192.0.2.0/24:1000-2000", "[2001:db8::/64]:53", "[::]:5353", "203.0.113.7:9"]
interfaces = ["veth0", "eth1"]
header = "spp"
on_error = "pass"
)",
                            "l.toml");
    const auto &l = c.services[0].listen;
    ASSERT_EQ(l.size(), 4u);
    EXPECT_EQ(to_string(l[0]), "192.0.2.0/24:1000-2000");
    EXPECT_EQ(l[0].prefix_len, 24u);
    EXPECT_EQ(l[0].port_first, 1000);
    EXPECT_EQ(l[0].port_last, 2000);
    EXPECT_EQ(to_string(l[1]), "[2001:db8::/64]:53");
    EXPECT_EQ(l[2].prefix_len, 0u);
    EXPECT_FALSE(l[2].addr.is_v4());
    EXPECT_EQ(to_string(l[3]), "203.0.113.7:9");
    EXPECT_EQ(l[3].prefix_len, 32u);
    EXPECT_EQ(c.services[0].on_error, OnError::pass);
    // Defaults of [global].
    EXPECT_EQ(c.global.bpffs, "/sys/fs/bpf/ppinject");
    EXPECT_EQ(c.global.udp_flow_timeout, 30s);
}

TEST(Config, Durations) {
    EXPECT_EQ(parse_duration("500ms"), std::chrono::nanoseconds(500ms));
    EXPECT_EQ(parse_duration("1m30s"), std::chrono::nanoseconds(90s));
    EXPECT_EQ(parse_duration("2h"), std::chrono::nanoseconds(2h));
    for (const char *bad : {"", "30", "s", "30 s", "-1s", "0s", "1d", "1.5s", "10sec"}) {
        EXPECT_FALSE(parse_duration(bad)) << bad;
    }
}

// One invalid file: the error must point at `line` and mention `needle`.
struct Bad {
    const char *what;
    std::string toml;
    unsigned line;
    const char *needle;
};

const char *kUdp =
    "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:53\"\n"
    "interfaces = [\"eth0\"]\nheader = \"v2\"\n";  // lines 1-6
const char *kTcp =
    "[[service]]\nname = \"t\"\nprotocol = \"tcp\"\nlisten = \"192.0.2.1:443\"\n"
    "backends = [\"198.51.100.1:443\"]\nheader = \"v2\"\n";  // lines 1-6

class ConfigErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(ConfigErrors, NamesFileLineAndReason) {
    const Bad &b = GetParam();
    try {
        parse_config(b.toml, "bad.toml");
        FAIL() << b.what << ": accepted";
    } catch (const ConfigError &e) {
        EXPECT_EQ(e.file(), "bad.toml");
        EXPECT_EQ(e.line(), b.line) << e.what();
        EXPECT_NE(std::string(e.what()).find(b.needle), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
        if (b.line) {
            EXPECT_EQ(std::string(e.what()).rfind("bad.toml:" + std::to_string(b.line) + ": ", 0),
                      0u)
                << e.what();
        }
    }
}

INSTANTIATE_TEST_SUITE_P(
    Config, ConfigErrors,
    ::testing::Values(
        Bad{"syntax", "[global\nbpffs = 1\n", 1, "TOML syntax"},
        Bad{"no services", "[global]\nbpffs = \"/sys/fs/bpf/x\"\n", 0, "no [[service]]"},
        Bad{"unknown global key", "[global]\nbpfs = \"/x\"\n", 2, "unknown key 'bpfs' in [global]"},
        Bad{"unknown top key", std::string(kUdp) + "[extra]\n", 7, "unknown key 'extra'"},
        Bad{"typo in service", std::string(kUdp) + "udp_heade = \"every\"\n", 7,
            "unknown key 'udp_heade' in service 'a'"},
        Bad{"relative bpffs", "[global]\nbpffs = \"ppinject\"\n", 2, "absolute path"},
        Bad{"bad duration", "[global]\nudp_flow_timeout = \"30\"\n", 2, "positive duration"},
        Bad{"max flows type", "[global]\nudp_max_flows = \"many\"\n", 2, "1..16777216"},
        Bad{"max flows zero", "[global]\nudp_max_flows = 0\n", 2, "1..16777216"},
        Bad{"metrics", "[global]\nmetrics = \"localhost\"\n", 2, "'metrics'"},
        Bad{"no name", "[[service]]\nprotocol = \"udp\"\n", 1, "has no 'name'"},
        Bad{"bad name", "[[service]]\nname = \"a b\"\n", 2, "A-Z a-z 0-9"},
        Bad{"name type", "[[service]]\nname = 5\n", 2, "must be a string"},
        Bad{"no protocol", "[[service]]\nname = \"a\"\n", 1, "has no 'protocol'"},
        Bad{"bad protocol", "[[service]]\nname = \"a\"\nprotocol = \"sctp\"\n", 3,
            "allowed: \"udp\" | \"tcp\""},
        Bad{"no listen", "[[service]]\nname = \"a\"\nprotocol = \"udp\"\n", 1, "no 'listen'"},
        Bad{"v6 without brackets",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"2001:db8::1:53\"\n", 4,
            "needs brackets"},
        Bad{"no port", "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1\"\n", 4,
            "missing \":PORT\""},
        Bad{"bad address",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.300:53\"\n", 4,
            "not an IPv4 or IPv6 address"},
        Bad{"port zero",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:0\"\n", 4,
            "1..65535"},
        Bad{"reversed range",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:20-10\"\n", 4,
            "N <= M"},
        Bad{"prefix too long",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.0/33:53\"\n", 4,
            "0..32"},
        Bad{"host bits",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = [\"192.0.2.0/24:1\", "
            "\"192.0.2.1/24:53\"]\n",
            4, "host bits set"},
        Bad{"no header",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:53\"\n", 1,
            "has no 'header'"},
        Bad{"udp v1",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:53\"\nheader = "
            "\"v1\"\n",
            5, "a UDP service takes"},
        Bad{"tcp spp",
            "[[service]]\nname = \"a\"\nprotocol = \"tcp\"\nlisten = \"192.0.2.1:53\"\nheader = "
            "\"spp\"\n",
            5, "SPP is for UDP"},
        Bad{"udp without interfaces",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:53\"\nheader = "
            "\"v2\"\n",
            1, "needs 'interfaces'"},
        Bad{"bad interface",
            std::string(kUdp) +
                "[[service]]\nname = \"b\"\nprotocol = \"udp\"\n"
                "listen = \"192.0.2.2:53\"\ninterfaces = [\"a/b\"]\nheader = \"v2\"\n",
            11, "not a valid Linux interface name"},
        Bad{"udp_header on spp",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:53\"\n"
            "interfaces = [\"eth0\"]\nheader = \"spp\"\nudp_header = \"every\"\n",
            7, "header = \"v2\" only"},
        Bad{"bad udp_header", std::string(kUdp) + "udp_header = \"all\"\n", 7,
            "allowed: \"first\" | \"every\""},
        Bad{"backends on udp", std::string(kUdp) + "backends = [\"198.51.100.1:53\"]\n", 7,
            "'backends' is for TCP"},
        Bad{"interfaces on tcp", std::string(kTcp) + "interfaces = [\"eth0\"]\n", 7,
            "'interfaces' is for UDP"},
        Bad{"tlv on udp", std::string(kUdp) + "tlv = { crc32c = true }\n", 7, "'tlv' applies"},
        Bad{"tlv on v1",
            "[[service]]\nname = \"t\"\nprotocol = \"tcp\"\nlisten = \"192.0.2.1:443\"\n"
            "backends = [\"198.51.100.1:443\"]\nheader = \"v1\"\ntlv = { crc32c = true }\n",
            7, "'tlv' applies"},
        Bad{"tcp without backends",
            "[[service]]\nname = \"t\"\nprotocol = \"tcp\"\nlisten = \"192.0.2.1:443\"\nheader = "
            "\"v1\"\n",
            1, "needs 'backends'"},
        Bad{"backend without port",
            "[[service]]\nname = \"t\"\nprotocol = \"tcp\"\nlisten = \"192.0.2.1:443\"\n"
            "backends = [\"198.51.100.1\"]\nheader = \"v1\"\n",
            5, "backend \"198.51.100.1\""},
        Bad{"wildcard backend",
            "[[service]]\nname = \"t\"\nprotocol = \"tcp\"\nlisten = \"192.0.2.1:443\"\n"
            "backends = [\"0.0.0.0:443\"]\nheader = \"v1\"\n",
            5, "real address"},
        Bad{"bad tlv key", std::string(kTcp) + "tlv = { crc = true }\n", 7, "unknown key 'crc'"},
        Bad{"custom tlv type", std::string(kTcp) + "tlv = { custom = { \"0xF0\" = \"x\" } }\n", 7,
            "0xE0..0xEF"},
        Bad{"splice mode", std::string(kTcp) + "splice = \"zerocopy\"\n", 7,
            "allowed: \"sockmap\" | \"splice\" | \"copy\""},
        Bad{"duplicate name", std::string(kUdp) + std::string(kUdp), 7, "already used on line 1"},
        Bad{"overlap",
            std::string(kUdp) +
                "[[service]]\nname = \"b\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:50-60\"\n"
                "interfaces = [\"eth0\"]\nheader = \"spp\"\n",
            10, "overlaps \"192.0.2.1:53\" of service 'a' (line 4)"},
        Bad{"too many keys",
            "[[service]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = [\"192.0.2.1:1-65535\", "
            "\"192.0.2.2:1-65535\"]\ninterfaces = [\"eth0\"]\nheader = \"v2\"\n",
            1, "at most 65536"}));

TEST(Config, SameAddressOtherProtocolOrPrefixMayCoexist) {
    // UDP and TCP on the same address and port; a /24 and an exact address inside it.
    Config c = parse_config(
        std::string(kUdp) +
            std::string(kTcp).replace(std::string(kTcp).find("192.0.2.1:443"), 13, "192.0.2.1:53") +
            "[[service]]\nname = \"net\"\nprotocol = \"udp\"\nlisten = "
            "\"192.0.2.0/24:53\"\ninterfaces = [\"eth0\"]\nheader = \"spp\"\n",
        "ok.toml");
    EXPECT_EQ(c.services.size(), 3u);
}

TEST(Config, ExampleFileIsValid) {
    Config c = load_config(std::string(PPINJECT_SOURCE_DIR) + "/tools/ppinject.example.toml");
    EXPECT_GE(c.services.size(), 4u);
}

TEST(Config, UnreadableFile) {
    try {
        load_config("/nonexistent/ppinject.toml");
        FAIL();
    } catch (const ConfigError &e) {
        EXPECT_STREQ(e.what(),
                     "/nonexistent/ppinject.toml: cannot read: No such file or directory");
    }
}

}  // namespace
