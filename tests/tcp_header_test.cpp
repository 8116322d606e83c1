// The header a TCP service writes to its backend: services from TOML through parse_config
// (so the limits are the config's own), headers built by build_header() and read back with
// the codec's decoder. Command, family (IPv4, IPv6, IPv4-mapped IPv6 as accept() on a [::]
// socket reports it), addresses, ports, and every TLV: UNIQUE_ID, CRC32C (checked here with
// an independent bit-by-bit CRC32c too), AUTHORITY fixed or from SNI, NETNS, custom
// 0xE0..0xEF. max_header_len() bounds every header, exactly for the largest configuration
// the config accepts, and every too-small buffer fails with buffer_too_small without a
// byte written past it.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "codec/proxy.hpp"
#include "config/config.hpp"
#include "support/decode_exact.hpp"
#include "support/endpoint.hpp"
#include "config/header.hpp"

namespace {

using namespace ppinject;
using ppinject::build_header;
using ppinject::ConnectionFacts;
using ppinject::max_header_len;
using pptest::Decoded;
using pptest::ep;
using V = std::vector<std::uint8_t>;

// ---- services and connections --------------------------------------------------------------

// One TCP service of header `header`, with `extra` TOML lines (a tlv table) appended.
Service service(const std::string &header, const std::string &extra = "") {
    Config c = parse_config(
        "[[service]]\nname = \"t\"\nprotocol = \"tcp\"\n"
        "listen = \"192.0.2.1:443\"\nbackends = [\"198.51.100.1:443\"]\n"
        "header = \"" +
            header + "\"\n" + extra,
        "test.toml");
    EXPECT_EQ(c.services.size(), 1u);
    return c.services.at(0);
}

// What accept() on a dual-stack [::] socket gives for an IPv4 peer: an AF_INET6 sockaddr
// holding ::ffff:a.b.c.d.
Endpoint mapped(std::array<std::uint8_t, 4> v4, std::uint16_t port) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(port);
    sa.sin6_addr.s6_addr[10] = 0xFF;
    sa.sin6_addr.s6_addr[11] = 0xFF;
    std::memcpy(&sa.sin6_addr.s6_addr[12], v4.data(), 4);
    auto e = Endpoint::from_sockaddr(reinterpret_cast<const sockaddr *>(&sa));
    EXPECT_TRUE(e);
    return e.value_or(Endpoint{});
}

ConnectionFacts facts(Endpoint client, Endpoint dialled, std::string_view sni = {}) {
    ConnectionFacts f;
    f.client = client;
    f.dialled = dialled;
    f.sni = sni;
    for (std::size_t i = 0; i < f.unique_id.size(); i++) {
        f.unique_id[i] = static_cast<std::uint8_t>(0xA0 + i);
    }
    return f;
}

const ConnectionFacts kV4 = facts(ep("192.0.2.7", 40000), ep("192.0.2.1", 443));
const ConnectionFacts kV6 = facts(ep("2001:db8::7", 40001), ep("2001:db8::1", 8443));

// ---- building and reading back -------------------------------------------------------------

constexpr std::size_t kGuard = 64;
constexpr std::uint8_t kGuardByte = 0xA5;

// build_header into a heap buffer of exactly `size` bytes followed by guard bytes (all
// one heap block, so valgrind sees writes inside it; the guards catch those past `size`).
struct Built {
    proxy::Error error = proxy::Error::ok;
    V bytes;  // the header, `written` long
    bool guards_intact = true;
};

Built build(const Service &svc, const ConnectionFacts &f, std::size_t size) {
    auto buf = std::make_unique<std::uint8_t[]>(size + kGuard);
    std::fill_n(buf.get(), size + kGuard, kGuardByte);
    std::size_t written = 0;
    Built b;
    b.error = build_header(svc, f, std::span<std::uint8_t>(buf.get(), size), written);
    b.guards_intact = std::all_of(buf.get() + size, buf.get() + size + kGuard,
                                  [](std::uint8_t c) { return c == kGuardByte; });
    if (b.error == proxy::Error::ok) {
        EXPECT_LE(written, size);
        b.bytes.assign(buf.get(), buf.get() + std::min(written, size));
    }
    return b;
}

// Builds into a buffer of max_header_len(svc) and decodes the result, which must be one
// whole header, nothing more and nothing less.
Decoded build_and_decode(const Service &svc, const ConnectionFacts &f) {
    Built b = build(svc, f, max_header_len(svc));
    EXPECT_EQ(b.error, proxy::Error::ok);
    EXPECT_TRUE(b.guards_intact);
    Decoded d;
    d.bytes = std::make_shared<const V>(std::move(b.bytes));
    proxy::Status s = proxy::decode_any(*d.bytes, d.header());
    EXPECT_EQ(s, proxy::Error::ok) << s;
    EXPECT_EQ(d.length, d.bytes->size());
    return d;
}

// TLV types of a decoded v2 header, with how often each occurs.
std::map<std::uint8_t, int> tlv_types(const proxy::V2Header &h) {
    std::map<std::uint8_t, int> types;
    proxy::TlvReader r(h.tlvs);
    for (const proxy::Tlv &t : r) {
        types[t.type]++;
    }
    EXPECT_FALSE(r.overrun());
    return types;
}

// CRC32c written out bit by bit (reflected polynomial 0x82F63B78), independent of the
// codec's table-driven one.
std::uint32_t crc32c_bitwise(const V &data) {
    std::uint32_t crc = 0xFFFFFFFF;
    for (std::uint8_t byte : data) {
        crc ^= byte;
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0x82F63B78 & (0u - (crc & 1)));
        }
    }
    return ~crc;
}

// ---- v1 -------------------------------------------------------------------------------------

TEST(TcpHeaderV1, Ipv4) {
    Service svc = service("v1");
    EXPECT_EQ(max_header_len(svc), proxy::kV1MaxLen);
    Built b = build(svc, kV4, max_header_len(svc));
    ASSERT_EQ(b.error, proxy::Error::ok);
    EXPECT_EQ(std::string(b.bytes.begin(), b.bytes.end()),
              "PROXY TCP4 192.0.2.7 192.0.2.1 40000 443\r\n");
    Decoded h = build_and_decode(svc, kV4);
    EXPECT_EQ(h.kind, proxy::Kind::v1);
    EXPECT_EQ(h.v1.protocol, proxy::V1Protocol::tcp4);
    EXPECT_EQ(h.v1.source, kV4.client);
    EXPECT_EQ(h.v1.destination, kV4.dialled);
}

TEST(TcpHeaderV1, Ipv6) {
    Decoded h = build_and_decode(service("v1"), kV6);
    EXPECT_EQ(h.kind, proxy::Kind::v1);
    EXPECT_EQ(h.v1.protocol, proxy::V1Protocol::tcp6);
    EXPECT_EQ(h.v1.source, kV6.client);
    EXPECT_EQ(h.v1.destination, kV6.dialled);
}

// A dual-stack listener reports an IPv4 client as ::ffff:192.0.2.7: the backend must see
// TCP4 and 192.0.2.7, not an IPv6 address.
TEST(TcpHeaderV1, MappedClientIsTcp4) {
    ConnectionFacts f = facts(mapped({192, 0, 2, 7}, 40000), mapped({192, 0, 2, 1}, 443));
    Decoded h = build_and_decode(service("v1"), f);
    EXPECT_EQ(h.v1.protocol, proxy::V1Protocol::tcp4);
    EXPECT_EQ(h.v1.source, ep("192.0.2.7", 40000));
    EXPECT_EQ(h.v1.destination, ep("192.0.2.1", 443));
}

// The longest line (two full IPv6 addresses, five-digit ports) fits max_header_len.
TEST(TcpHeaderV1, LongestLineFits) {
    Service svc = service("v1");
    ConnectionFacts f = facts(ep("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535),
                              ep("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65534));
    Built b = build(svc, f, max_header_len(svc));
    ASSERT_EQ(b.error, proxy::Error::ok);
    EXPECT_TRUE(b.guards_intact);
    EXPECT_EQ(b.bytes.size(), 104u);
    // v1 has no TLVs: SNI and unique id change nothing.
    ConnectionFacts g = f;
    g.sni = "www.example.com";
    g.unique_id.fill(0x11);
    EXPECT_EQ(build(svc, g, max_header_len(svc)).bytes, b.bytes);
}

// Every buffer shorter than the line fails cleanly: buffer_too_small, nothing past it.
TEST(TcpHeaderV1, EveryShortBufferFails) {
    Service svc = service("v1");
    std::size_t need = build(svc, kV6, max_header_len(svc)).bytes.size();
    for (std::size_t size = 0; size < need; size++) {
        Built b = build(svc, kV6, size);
        ASSERT_EQ(b.error, proxy::Error::buffer_too_small) << size;
        ASSERT_TRUE(b.guards_intact) << size;
    }
    EXPECT_EQ(build(svc, kV6, need).error, proxy::Error::ok);
}

// ---- v2 addresses ---------------------------------------------------------------------------

TEST(TcpHeaderV2, Ipv4WithoutTlvs) {
    Service svc = service("v2");
    EXPECT_EQ(max_header_len(svc), proxy::kV2Inet6Len);
    Decoded h = build_and_decode(svc, kV4);
    ASSERT_EQ(h.kind, proxy::Kind::v2);
    EXPECT_EQ(h.v2.command, proxy::Command::proxy);
    EXPECT_EQ(h.v2.family, proxy::Family::inet);
    EXPECT_EQ(h.v2.transport, proxy::Transport::stream);
    EXPECT_EQ(h.v2.source, kV4.client);
    EXPECT_EQ(h.v2.destination, kV4.dialled);
    EXPECT_EQ(h.length, proxy::kV2InetLen);
    EXPECT_TRUE(h.v2.tlvs.empty());
}

TEST(TcpHeaderV2, Ipv6) {
    Decoded h = build_and_decode(service("v2"), kV6);
    ASSERT_EQ(h.kind, proxy::Kind::v2);
    EXPECT_EQ(h.v2.command, proxy::Command::proxy);
    EXPECT_EQ(h.v2.family, proxy::Family::inet6);
    EXPECT_EQ(h.v2.transport, proxy::Transport::stream);
    EXPECT_EQ(h.v2.source, kV6.client);
    EXPECT_EQ(h.v2.destination, kV6.dialled);
    EXPECT_EQ(h.length, proxy::kV2Inet6Len);
}

TEST(TcpHeaderV2, MappedClientIsInet) {
    ConnectionFacts f = facts(mapped({192, 0, 2, 7}, 40000), mapped({192, 0, 2, 1}, 443));
    ASSERT_TRUE(f.client.addr.is_v4());  // the premise: Endpoint unmaps it
    Decoded h = build_and_decode(service("v2"), f);
    EXPECT_EQ(h.v2.family, proxy::Family::inet);
    EXPECT_EQ(h.v2.source, ep("192.0.2.7", 40000));
    EXPECT_EQ(h.v2.destination, ep("192.0.2.1", 443));
    EXPECT_EQ(h.length, proxy::kV2InetLen);
}

// An IPv6 client of an IPv4 address (or the reverse) cannot be INET: both ends go as IPv6,
// the IPv4 one mapped.
TEST(TcpHeaderV2, MixedFamiliesAreInet6) {
    ConnectionFacts f = facts(ep("2001:db8::7", 40000), ep("192.0.2.1", 443));
    Decoded h = build_and_decode(service("v2"), f);
    EXPECT_EQ(h.v2.family, proxy::Family::inet6);
    EXPECT_EQ(h.v2.source, f.client);
    EXPECT_EQ(h.v2.destination.addr.mapped(), f.dialled.addr.mapped());
    EXPECT_EQ(h.v2.destination.port, 443);
}

// ---- v2 TLVs --------------------------------------------------------------------------------

const std::string kAllFixed =
    "tlv = { unique_id = true, crc32c = true, authority = \"www.example.com\", "
    "netns = \"blue\", custom = { \"0xE0\" = \"first\", \"0xEF\" = \"last\" } }\n";

TEST(TcpHeaderTlv, EveryTlvOnceWithItsValue) {
    Service svc = service("v2", kAllFixed);
    for (const ConnectionFacts &f : {kV4, kV6}) {
        Decoded h = build_and_decode(svc, f);
        ASSERT_EQ(h.kind, proxy::Kind::v2);
        EXPECT_EQ(h.v2.source, f.client);
        std::map<std::uint8_t, int> want = {{proxy::tlv::unique_id, 1},
                                            {proxy::tlv::crc32c, 1},
                                            {proxy::tlv::authority, 1},
                                            {proxy::tlv::netns, 1},
                                            {0xE0, 1},
                                            {0xEF, 1}};
        EXPECT_EQ(tlv_types(h.v2), want);

        auto id = h.v2.unique_id();
        ASSERT_TRUE(id);
        EXPECT_EQ(V(id->begin(), id->end()), V(f.unique_id.begin(), f.unique_id.end()));
        EXPECT_EQ(h.v2.authority(), "www.example.com");
        EXPECT_EQ(h.v2.netns(), "blue");
        ASSERT_TRUE(h.v2.find(0xE0) && h.v2.find(0xEF));
        EXPECT_EQ(h.v2.find(0xE0)->text(), "first");
        EXPECT_EQ(h.v2.find(0xEF)->text(), "last");
        EXPECT_TRUE(h.v2.has_crc32c);
    }
}

// The CRC32C TLV holds the CRC32c of the whole header with its own value zeroed (spec
// 2.2.5), recomputed here without the codec. A flipped bit in the addresses, in a TLV value
// or in the checksum itself is caught by the decoder as a mismatch. (Flips in TLV type or
// length bytes change the TLV structure and are other errors, or turn the CRC32C TLV into
// another type: the checksum cannot protect its own framing.)
TEST(TcpHeaderTlv, Crc32cCoversTheWholeHeader) {
    Service svc = service("v2", "tlv = { crc32c = true, authority = \"sni\" }\n");
    Built b = build(svc, facts(kV6.client, kV6.dialled, "crc.example"), max_header_len(svc));
    ASSERT_EQ(b.error, proxy::Error::ok);
    proxy::V2Header h;
    ASSERT_EQ(proxy::decode_v2(b.bytes, h), proxy::Error::ok);
    ASSERT_TRUE(h.has_crc32c);
    auto crc = h.find(proxy::tlv::crc32c);
    auto authority = h.find(proxy::tlv::authority);
    ASSERT_TRUE(crc && authority);
    ASSERT_EQ(crc->value.size(), 4u);
    const std::size_t crc_at = crc->value.data() - h.tlvs.data() + proxy::kV2Inet6Len;
    const std::size_t name_at = authority->value.data() - h.tlvs.data() + proxy::kV2Inet6Len;
    std::uint32_t stored = std::uint32_t{crc->value[0]} << 24 | crc->value[1] << 16 |
                           crc->value[2] << 8 | crc->value[3];
    V zeroed = b.bytes;
    std::fill_n(zeroed.begin() + crc_at, 4, 0);
    EXPECT_EQ(stored, crc32c_bitwise(zeroed));

    std::vector<std::size_t> positions;
    for (std::size_t i = proxy::kV2FixedLen; i < proxy::kV2Inet6Len; i++) {
        positions.push_back(i);  // addresses and ports
    }
    for (std::size_t i = 0; i < authority->value.size(); i++) {
        positions.push_back(name_at + i);
    }
    for (std::size_t i = 0; i < 4; i++) {
        positions.push_back(crc_at + i);
    }
    for (std::size_t i : positions) {
        V flipped = b.bytes;
        flipped[i] ^= 0x01;
        proxy::V2Header g;
        EXPECT_EQ(proxy::decode_v2(flipped, g), proxy::Error::v2_crc32c_mismatch) << "byte " << i;
    }
}

TEST(TcpHeaderTlv, NoCrc32cUnlessAsked) {
    Decoded h = build_and_decode(service("v2", "tlv = { unique_id = true }\n"), kV4);
    EXPECT_FALSE(h.v2.has_crc32c);
    EXPECT_EQ(tlv_types(h.v2), (std::map<std::uint8_t, int>{{proxy::tlv::unique_id, 1}}));
}

TEST(TcpHeaderTlv, AuthorityFromSni) {
    Service svc = service("v2", "tlv = { authority = \"sni\" }\n");
    Decoded h = build_and_decode(svc, facts(kV4.client, kV4.dialled, "a.example"));
    EXPECT_EQ(h.v2.authority(), "a.example");
    EXPECT_EQ(tlv_types(h.v2).size(), 1u);

    std::string longest(255, 'n');  // the longest DNS name fits
    h = build_and_decode(svc, facts(kV4.client, kV4.dialled, longest));
    EXPECT_EQ(h.v2.authority(), longest);
}

// No name (not TLS, or no server_name): no AUTHORITY at all rather than an empty one.
TEST(TcpHeaderTlv, EmptySniNoAuthority) {
    Service svc = service("v2", "tlv = { authority = \"sni\", unique_id = true }\n");
    Decoded h = build_and_decode(svc, kV4);
    EXPECT_FALSE(h.v2.authority());
    EXPECT_EQ(tlv_types(h.v2), (std::map<std::uint8_t, int>{{proxy::tlv::unique_id, 1}}));
}

// A name that is not a DNS host name (a client can send any bytes) is left out rather than
// passed to the backend as an authority.
TEST(TcpHeaderTlv, SniThatIsNoHostNameLeftOut) {
    Service svc = service("v2", "tlv = { authority = \"sni\" }\n");
    for (std::string name : {std::string("a b.example"), std::string("evil\r\nx"),
                             std::string("a\0b", 3), std::string("caf\xc3\xa9.example")}) {
        Decoded h = build_and_decode(svc, facts(kV4.client, kV4.dialled, name));
        EXPECT_FALSE(h.v2.authority()) << name;
    }
    Decoded h = build_and_decode(svc, facts(kV4.client, kV4.dialled, "xn--caf-dma.Example-1"));
    EXPECT_EQ(h.v2.authority(), "xn--caf-dma.Example-1");
}

// A name longer than DNS allows (find_sni returns whatever the client sent) is left out,
// which is what keeps the header within max_header_len.
TEST(TcpHeaderTlv, OverlongSniLeftOut) {
    Service svc = service("v2", "tlv = { authority = \"sni\" }\n");
    std::string name(256, 'n');
    Decoded h = build_and_decode(svc, facts(kV6.client, kV6.dialled, name));
    EXPECT_FALSE(h.v2.authority());
}

// A fixed authority is the service's, whatever name the client asked for.
TEST(TcpHeaderTlv, FixedAuthorityIgnoresSni) {
    Service svc = service("v2", "tlv = { authority = \"fixed.example\" }\n");
    Decoded h = build_and_decode(svc, facts(kV4.client, kV4.dialled, "client.example"));
    EXPECT_EQ(h.v2.authority(), "fixed.example");
    EXPECT_EQ(tlv_types(h.v2).size(), 1u);
}

TEST(TcpHeaderTlv, Netns) {
    Decoded h = build_and_decode(service("v2", "tlv = { netns = \"tenant-7\" }\n"), kV6);
    EXPECT_EQ(h.v2.netns(), "tenant-7");
}

// Every custom type 0xE0..0xEF, each with its own value.
TEST(TcpHeaderTlv, AllSixteenCustomTypes) {
    std::string custom = "tlv = { custom = { ";
    for (unsigned t = 0xE0; t <= 0xEF; t++) {
        custom += (t > 0xE0 ? ", " : "") + std::string("\"0x") + "0123456789ABCDEF"[t >> 4] +
                  "0123456789ABCDEF"[t & 15] + "\" = \"value-" + std::to_string(t) + "\"";
    }
    custom += " } }\n";
    Service svc = service("v2", custom);
    ASSERT_EQ(svc.tlv.custom.size(), 16u);
    Decoded h = build_and_decode(svc, kV4);
    EXPECT_EQ(tlv_types(h.v2).size(), 16u);
    for (unsigned t = 0xE0; t <= 0xEF; t++) {
        auto v = h.v2.find(static_cast<std::uint8_t>(t));
        ASSERT_TRUE(v) << t;
        EXPECT_EQ(v->text(), "value-" + std::to_string(t));
    }
}

// ---- bounds ---------------------------------------------------------------------------------

// The largest configuration the config accepts: every TLV, AUTHORITY and NETNS of 255
// bytes, all 16 custom types at the longest value (1024 bytes: checked here against the
// config's own refusal of 1025).
std::string largest_tlv(std::size_t custom_len, const std::string &authority) {
    std::string t = "tlv = { unique_id = true, crc32c = true, authority = \"" + authority +
                    "\", netns = \"" + std::string(255, 'n') + "\", custom = { ";
    for (unsigned type = 0xE0; type <= 0xEF; type++) {
        t += (type > 0xE0 ? ", " : "") + std::string("\"0x") + "0123456789ABCDEF"[type >> 4] +
             "0123456789ABCDEF"[type & 15] + "\" = \"" +
             std::string(custom_len, static_cast<char>('a' + (type & 15))) + "\"";
    }
    return t + " } }\n";
}

TEST(TcpHeaderBounds, LargestConfigIsTheConfigsLimit) {
    EXPECT_NO_THROW(service("v2", largest_tlv(1024, "sni")));
    EXPECT_THROW(service("v2", largest_tlv(1025, "sni")), ConfigError);
    EXPECT_THROW(service("v2", largest_tlv(1024, std::string(256, 'a'))), ConfigError);
}

// With an IPv6 connection and a 255-byte SNI the header is exactly max_header_len: the
// bound is tight, and build_header writes nothing past it.
TEST(TcpHeaderBounds, LargestHeaderIsExactlyMax) {
    Service sni = service("v2", largest_tlv(1024, "sni"));
    Service fixed = service("v2", largest_tlv(1024, std::string(255, 'f')));
    EXPECT_EQ(max_header_len(sni), max_header_len(fixed));
    EXPECT_EQ(max_header_len(sni),
              proxy::kV2Inet6Len + (3 + 16) + (3 + 4) + (3 + 255) + (3 + 255) + 16 * (3 + 1024));
    EXPECT_LT(max_header_len(sni), proxy::kV2MaxLen);

    const std::string name(255, 's');  // facts.sni is a view: the name must outlive it
    ConnectionFacts f = facts(kV6.client, kV6.dialled, name);
    for (const Service *svc : {&sni, &fixed}) {
        Built b = build(*svc, f, max_header_len(*svc));
        ASSERT_EQ(b.error, proxy::Error::ok);
        EXPECT_TRUE(b.guards_intact);
        EXPECT_EQ(b.bytes.size(), max_header_len(*svc));

        Decoded h = build_and_decode(*svc, f);
        ASSERT_EQ(h.kind, proxy::Kind::v2);
        EXPECT_TRUE(h.v2.has_crc32c);
        EXPECT_EQ(tlv_types(h.v2).size(), 4u + 16u);
        EXPECT_EQ(h.v2.authority().value_or("").size(), 255u);
        for (unsigned type = 0xE0; type <= 0xEF; type++) {
            auto v = h.v2.find(static_cast<std::uint8_t>(type));
            ASSERT_TRUE(v) << type;
            EXPECT_EQ(v->value.size(), 1024u);
        }

        // One byte short of the largest header: a clean failure, guards untouched.
        Built short_by_one = build(*svc, f, max_header_len(*svc) - 1);
        EXPECT_EQ(short_by_one.error, proxy::Error::buffer_too_small);
        EXPECT_TRUE(short_by_one.guards_intact);
    }
}

// Every configuration here, IPv4 and IPv6, with and without a name: the header fits
// max_header_len, and every buffer shorter than the header it needs fails with
// buffer_too_small and nothing written past it (CRC32C and TLV writes included).
TEST(TcpHeaderBounds, EveryShortBufferFails) {
    const std::vector<Service> services = {
        service("v2"),
        service("v2", kAllFixed),
        service("v2", "tlv = { crc32c = true, authority = \"sni\" }\n"),
        service("v2", "tlv = { unique_id = true, crc32c = true }\n"),
        service("v2", largest_tlv(1024, "sni")),
    };
    for (const Service &svc : services) {
        for (ConnectionFacts f : {kV4, kV6}) {
            f.sni = "www.example.com";
            Built full = build(svc, f, max_header_len(svc));
            ASSERT_EQ(full.error, proxy::Error::ok);
            ASSERT_TRUE(full.guards_intact);
            const std::size_t need = full.bytes.size();
            ASSERT_LE(need, max_header_len(svc));
            EXPECT_EQ(build(svc, f, need).bytes, full.bytes);  // exactly enough is enough
            for (std::size_t size = 0; size < need; size++) {
                Built b = build(svc, f, size);
                ASSERT_EQ(b.error, proxy::Error::buffer_too_small)
                    << "buffer of " << size << " for " << need;
                ASSERT_TRUE(b.guards_intact) << "buffer of " << size << " for " << need;
            }
        }
    }
}

}  // namespace
