// PROXY v2 codec: vectors written out by hand from the specification (the CRC32C values
// were computed with an independent bit-by-bit CRC32c), byte-exact encoding, round trips for
// every command/family/transport, TLVs and their typed helpers, every truncation, every
// malformed form with its own reason, and the writer's refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "codec/proxy.hpp"
#include "support/decode_exact.hpp"
#include "support/endpoint.hpp"

namespace {

using namespace ppinject;
using namespace ppinject::proxy;
using pptest::decode_exact;
using pptest::ep;
using V = std::vector<std::uint8_t>;

V cat(std::initializer_list<V> parts) {
    V out;
    for (const V &p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

V text(std::string_view s) {
    return V(s.begin(), s.end());
}

V with_byte(V v, std::size_t at, std::uint8_t b) {
    v[at] = b;
    return v;
}

const V kSig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// PROXY, TCP over IPv4: 192.0.2.10:42300 -> 203.0.113.5:443.
const V kInet = cat({kSig,
                     {0x21, 0x11, 0x00, 0x0C},    // v2 PROXY, INET STREAM, length 12
                     {0xC0, 0x00, 0x02, 0x0A},    // 192.0.2.10
                     {0xCB, 0x00, 0x71, 0x05},    // 203.0.113.5
                     {0xA5, 0x3C, 0x01, 0xBB}});  // 42300, 443

// PROXY, UDP over IPv6: [2001:db8::1]:53000 -> [2001:db8::2]:53.
const V kInet6Dgram = cat({kSig,
                           {0x21, 0x22, 0x00, 0x24},
                           {0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01},
                           {0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02},
                           {0xCF, 0x08, 0x00, 0x35}});

// LOCAL, UNSPEC, no addresses: a health check.
const V kLocal = cat({kSig, {0x20, 0x00, 0x00, 0x00}});

// LOCAL, UNSPEC with only a CRC32C TLV.
const V kLocalCrc =
    cat({kSig, {0x20, 0x00, 0x00, 0x07}, {0x03, 0x00, 0x04, 0xA9, 0xB8, 0x7E, 0x8F}});

// The INET header above with one TLV of each kind and a CRC32C last.
const V kTlvs = cat({kSig,
                     {0x21, 0x11, 0x00, 0x6F},  // length 12 + 99
                     {0xC0, 0x00, 0x02, 0x0A, 0xCB, 0x00, 0x71, 0x05, 0xA5, 0x3C, 0x01, 0xBB},
                     {0x01, 0x00, 0x02, 'h', '2'},  // ALPN
                     {0x02, 0x00, 0x0B},
                     text("example.com"),                         // AUTHORITY
                     {0x05, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF},  // UNIQUE_ID
                     {0x04, 0x00, 0x02, 0x00, 0x00},              // NOOP
                     {0x30, 0x00, 0x04},
                     text("blue"),  // NETNS
                     {0xEA, 0x00, 0x07, 0x01},
                     text("vpce-1"),                  // custom (AWS-style)
                     {0x20, 0x00, 0x29,               // SSL, 41 bytes
                      0x07, 0x00, 0x00, 0x00, 0x00},  // client SSL|CERT_CONN|CERT_SESS, verify 0
                     {0x21, 0x00, 0x07},
                     text("TLSv1.3"),
                     {0x22, 0x00, 0x0E},
                     text("client.example"),
                     {0x26, 0x00, 0x06},
                     text("x25519"),
                     {0x03, 0x00, 0x04, 0x62, 0xC3, 0xBB, 0xAE}});  // CRC32C

// The CRC32C TLV need not be last: INET, CRC32C, then an empty NOOP.
const V kCrcFirst = cat({kSig,
                         {0x21, 0x11, 0x00, 0x16},
                         {0xC0, 0x00, 0x02, 0x0A, 0xCB, 0x00, 0x71, 0x05, 0xA5, 0x3C, 0x01, 0xBB},
                         {0x03, 0x00, 0x04, 0x6A, 0x4D, 0x35, 0xC9},
                         {0x04, 0x00, 0x00}});

// PROXY, UNIX stream: "/run/a.sock" -> "/run/b.sock", each NUL-padded to 108 bytes.
V unix_vector() {
    V path_a = text("/run/a.sock"), path_b = text("/run/b.sock");
    path_a.resize(108);
    path_b.resize(108);
    return cat({kSig, {0x21, 0x31, 0x00, 0xD8}, path_a, path_b});
}

std::vector<V> valid_vectors() {
    return {kInet, kInet6Dgram, kLocal, kLocalCrc, kTlvs, kCrcFirst, unix_vector()};
}

TEST(CodecV2, HandVectorsDecode) {
    V2Header h;
    ASSERT_EQ(decode_exact(kInet, h), Error::ok);
    EXPECT_EQ(h.command, Command::proxy);
    EXPECT_EQ(h.family, Family::inet);
    EXPECT_EQ(h.transport, Transport::stream);
    EXPECT_EQ(h.source, ep("192.0.2.10", 42300));
    EXPECT_EQ(h.destination, ep("203.0.113.5", 443));
    EXPECT_EQ(h.length, kV2InetLen);
    EXPECT_TRUE(h.tlvs.empty());
    EXPECT_FALSE(h.has_crc32c);

    ASSERT_EQ(decode_exact(kInet6Dgram, h), Error::ok);
    EXPECT_EQ(h.family, Family::inet6);
    EXPECT_EQ(h.transport, Transport::dgram);
    EXPECT_EQ(h.source, ep("2001:db8::1", 53000));
    EXPECT_EQ(h.destination, ep("2001:db8::2", 53));
    EXPECT_EQ(h.length, kV2Inet6Len);

    ASSERT_EQ(decode_exact(kLocal, h), Error::ok);
    EXPECT_EQ(h.command, Command::local);
    EXPECT_EQ(h.family, Family::unspec);
    EXPECT_EQ(h.transport, Transport::unspec);
    EXPECT_EQ(h.length, kV2LocalLen);

    ASSERT_EQ(decode_exact(unix_vector(), h), Error::ok);
    EXPECT_EQ(h.family, Family::unix_socket);
    EXPECT_EQ(h.transport, Transport::stream);
    EXPECT_EQ(h.source_path, "/run/a.sock");
    EXPECT_EQ(h.destination_path, "/run/b.sock");
    EXPECT_EQ(h.length, kV2UnixLen);
}

TEST(CodecV2, WriterReproducesHandVectors) {
    std::uint8_t buf[536];
    std::size_t n = 0;
    V2Writer w(buf);
    ASSERT_EQ(
        w.begin(Command::proxy, Transport::stream, ep("192.0.2.10", 42300), ep("203.0.113.5", 443)),
        Error::ok);
    ASSERT_EQ(w.finish(false, n), Error::ok);
    EXPECT_EQ(V(buf, buf + n), kInet);

    ASSERT_EQ(
        w.begin(Command::proxy, Transport::dgram, ep("2001:db8::1", 53000), ep("2001:db8::2", 53)),
        Error::ok);
    ASSERT_EQ(w.finish(false, n), Error::ok);
    EXPECT_EQ(V(buf, buf + n), kInet6Dgram);

    ASSERT_EQ(w.begin_unspec(Command::local), Error::ok);
    ASSERT_EQ(w.finish(false, n), Error::ok);
    EXPECT_EQ(V(buf, buf + n), kLocal);

    ASSERT_EQ(w.begin_unspec(Command::local), Error::ok);
    ASSERT_EQ(w.finish(true, n), Error::ok);
    EXPECT_EQ(V(buf, buf + n), kLocalCrc);

    ASSERT_EQ(w.begin_unix(Command::proxy, Transport::stream, "/run/a.sock", "/run/b.sock"),
              Error::ok);
    ASSERT_EQ(w.finish(false, n), Error::ok);
    EXPECT_EQ(V(buf, buf + n), unix_vector());

    ASSERT_EQ(
        w.begin(Command::proxy, Transport::stream, ep("192.0.2.10", 42300), ep("203.0.113.5", 443)),
        Error::ok);
    EXPECT_EQ(w.add_alpn("h2"), Error::ok);
    EXPECT_EQ(w.add_authority("example.com"), Error::ok);
    const V id = {0xDE, 0xAD, 0xBE, 0xEF};
    EXPECT_EQ(w.add_unique_id(id), Error::ok);
    EXPECT_EQ(w.add_noop(2), Error::ok);
    EXPECT_EQ(w.add_netns("blue"), Error::ok);
    EXPECT_EQ(w.add_custom(0xEA, cat({{0x01}, text("vpce-1")})), Error::ok);
    ASSERT_EQ(w.begin_ssl(tlv::client_ssl | tlv::client_cert_conn | tlv::client_cert_sess, 0),
              Error::ok);
    EXPECT_EQ(w.add_text(tlv::ssl_version, "TLSv1.3"), Error::ok);
    EXPECT_EQ(w.add_text(tlv::ssl_cn, "client.example"), Error::ok);
    EXPECT_EQ(w.add_text(tlv::ssl_group, "x25519"), Error::ok);
    ASSERT_EQ(w.end_ssl(), Error::ok);
    ASSERT_EQ(w.finish(true, n), Error::ok);
    EXPECT_EQ(V(buf, buf + n), kTlvs);

    ASSERT_EQ(encode_v2(buf, Command::proxy, Transport::stream, ep("192.0.2.10", 42300),
                        ep("203.0.113.5", 443), n),
              Error::ok);
    EXPECT_EQ(V(buf, buf + n), kInet);
}

TEST(CodecV2, RoundTripsEveryCommandFamilyTransport) {
    std::set<std::uint8_t> family_bytes;
    for (Command c : {Command::local, Command::proxy}) {
        for (Transport t : {Transport::stream, Transport::dgram}) {
            for (auto [src, dst] : {std::pair{ep("192.0.2.1", 1), ep("198.51.100.2", 2)},
                                    std::pair{ep("2001:db8::1", 3), ep("2001:db8::2", 4)}}) {
                std::uint8_t buf[64];
                std::size_t n = 0;
                ASSERT_EQ(encode_v2(buf, c, t, src, dst, n), Error::ok);
                V2Header h;
                ASSERT_EQ(decode_exact(V(buf, buf + n), h), Error::ok);
                EXPECT_EQ(buf[12], 0x20 | static_cast<int>(c));
                family_bytes.insert(buf[13]);
                EXPECT_EQ(h.command, c);
                EXPECT_EQ(h.transport, t);
                EXPECT_EQ(h.family, family_for(src, dst));
                EXPECT_EQ(h.source, src);
                EXPECT_EQ(h.destination, dst);
                EXPECT_EQ(h.length, src.addr.is_v4() ? 28u : 52u);
            }
            std::uint8_t buf[kV2UnixLen];
            std::size_t n = 0;
            V2Writer w(buf);
            std::string longest(108, 'p');  // no NUL at all: the full 108 bytes
            ASSERT_EQ(w.begin_unix(c, t, "/tmp/x", longest), Error::ok);
            ASSERT_EQ(w.finish(false, n), Error::ok);
            family_bytes.insert(buf[13]);
            V2Header h;
            ASSERT_EQ(decode_exact(V(buf, buf + n), h), Error::ok);
            EXPECT_EQ(h.command, c);
            EXPECT_EQ(h.family, Family::unix_socket);
            EXPECT_EQ(h.transport, t);
            EXPECT_EQ(h.source_path, "/tmp/x");
            EXPECT_EQ(h.destination_path, longest);
        }
        std::uint8_t buf[16];
        std::size_t n = 0;
        V2Writer w(buf);
        ASSERT_EQ(w.begin_unspec(c), Error::ok);
        ASSERT_EQ(w.finish(false, n), Error::ok);
        family_bytes.insert(buf[13]);
        V2Header h;
        ASSERT_EQ(decode_exact(V(buf, buf + n), h), Error::ok);
        EXPECT_EQ(h.command, c);
        EXPECT_EQ(h.family, Family::unspec);
    }
    EXPECT_EQ(family_bytes, (std::set<std::uint8_t>{0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32}));
}

TEST(CodecV2, MixedFamiliesUseInet6WithMappedIpv4) {
    std::uint8_t buf[64];
    std::size_t n = 0;
    // An IPv6 client to an IPv4 backend address: INET6, the IPv4 side mapped.
    ASSERT_EQ(encode_v2(buf, Command::proxy, Transport::stream, ep("2001:db8::1", 1),
                        ep("192.0.2.1", 2), n),
              Error::ok);
    ASSERT_EQ(n, 52u);
    EXPECT_EQ(buf[13], 0x21);
    EXPECT_EQ(V(buf + 32, buf + 48),
              (V{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xC0, 0x00, 0x02, 0x01}));
    // An IPv4-mapped client on a dual-stack socket to an IPv4 address: plain INET.
    ASSERT_EQ(encode_v2(buf, Command::proxy, Transport::stream, ep("::ffff:192.0.2.9", 3),
                        ep("192.0.2.1", 4), n),
              Error::ok);
    ASSERT_EQ(n, 28u);
    EXPECT_EQ(buf[13], 0x11);
    EXPECT_EQ(V(buf + 16, buf + 20), (V{0xC0, 0x00, 0x02, 0x09}));
    EXPECT_EQ(family_for(ep("::ffff:192.0.2.9", 3), ep("192.0.2.1", 4)), Family::inet);
    EXPECT_EQ(family_for(ep("192.0.2.9", 3), ep("::1", 4)), Family::inet6);
}

TEST(CodecV2, TlvsIterateAndHaveTypedViews) {
    V2Header h;
    ASSERT_EQ(decode_exact(kTlvs, h), Error::ok);
    EXPECT_EQ(h.length, kTlvs.size());
    EXPECT_TRUE(h.has_crc32c);
    EXPECT_EQ(h.tlvs.size(), 99u);

    std::vector<std::uint8_t> types;
    for (const Tlv &t : TlvReader(h.tlvs)) {
        types.push_back(t.type);
    }
    EXPECT_EQ(types, (V{tlv::alpn, tlv::authority, tlv::unique_id, tlv::noop, tlv::netns, 0xEA,
                        tlv::ssl, tlv::crc32c}));

    EXPECT_EQ(h.alpn(), "h2");
    EXPECT_EQ(h.authority(), "example.com");
    EXPECT_EQ(h.netns(), "blue");
    ASSERT_TRUE(h.unique_id());
    EXPECT_EQ(V(h.unique_id()->begin(), h.unique_id()->end()), (V{0xDE, 0xAD, 0xBE, 0xEF}));
    auto custom = h.find(0xEA);
    ASSERT_TRUE(custom);
    EXPECT_EQ(V(custom->value.begin(), custom->value.end()), cat({{0x01}, text("vpce-1")}));
    EXPECT_FALSE(h.find(0xEB));

    auto ssl = h.ssl();
    ASSERT_TRUE(ssl);
    EXPECT_EQ(ssl->client, 0x07);
    EXPECT_EQ(ssl->verify, 0u);
    TlvReader sub(ssl->sub_tlvs);
    Tlv s;
    ASSERT_TRUE(sub.next(s));
    EXPECT_EQ(s.type, tlv::ssl_version);
    EXPECT_EQ(s.text(), "TLSv1.3");
    ASSERT_TRUE(sub.next(s));
    EXPECT_EQ(s.type, tlv::ssl_cn);
    EXPECT_EQ(s.text(), "client.example");
    ASSERT_TRUE(sub.next(s));
    EXPECT_EQ(s.type, tlv::ssl_group);  // a later revision's sub-type is iterated like the rest
    EXPECT_EQ(s.text(), "x25519");
    EXPECT_FALSE(sub.next(s));
    EXPECT_FALSE(sub.overrun());

    EXPECT_EQ(tlv_name(0x01), "ALPN");
    EXPECT_EQ(tlv_name(0x20), "SSL");
    EXPECT_EQ(tlv_name(0x26, true), "SSL_GROUP");
    EXPECT_EQ(tlv_name(0x28, true), "SSL_CLIENT_CERT");
    EXPECT_EQ(tlv_name(0xEA), "CUSTOM");
    EXPECT_EQ(tlv_name(0xF3), "EXPERIMENT");
    EXPECT_EQ(tlv_name(0xFF), "FUTURE");
    EXPECT_EQ(tlv_name(0x06), "UNKNOWN");
}

TEST(CodecV2, TlvReaderStopsAtAnOverrun) {
    const V area = {0x01, 0x00, 0x01, 'x', 0x02, 0x00, 0x05, 'a', 'b'};
    TlvReader r(area);
    Tlv t;
    ASSERT_TRUE(r.next(t));
    EXPECT_EQ(t.text(), "x");
    EXPECT_FALSE(r.next(t));
    EXPECT_TRUE(r.overrun());
    EXPECT_EQ(r.offset(), 4u);
    EXPECT_FALSE(r.next(t));

    const V two_bytes = {0x01, 0x00};
    TlvReader r2(two_bytes);
    EXPECT_FALSE(r2.next(t));
    EXPECT_TRUE(r2.overrun());
    TlvReader empty{Bytes{}};
    EXPECT_FALSE(empty.next(t));
    EXPECT_FALSE(empty.overrun());
}

TEST(CodecV2, Crc32cMatchesTheStandardVectors) {
    const V check = text("123456789");
    EXPECT_EQ(crc32c(check), 0xE3069283u);
    // RFC 3720 appendix B.4.
    EXPECT_EQ(crc32c(V(32, 0x00)), 0x8A9136AAu);
    EXPECT_EQ(crc32c(V(32, 0xFF)), 0x62A8AB43u);
    EXPECT_EQ(crc32c(Bytes{}), 0u);
    // Chained over pieces = over the whole.
    EXPECT_EQ(crc32c(Bytes(check).subspan(4), crc32c(Bytes(check).first(4))), 0xE3069283u);
}

TEST(CodecV2, Crc32cIsVerifiedWhereverItIs) {
    V2Header h;
    ASSERT_EQ(decode_exact(kCrcFirst, h), Error::ok);
    EXPECT_TRUE(h.has_crc32c);
    ASSERT_EQ(decode_exact(kLocalCrc, h), Error::ok);
    EXPECT_TRUE(h.has_crc32c);
    EXPECT_EQ(h.tlvs.size(), 7u);

    // A changed address or TLV value byte is caught by the checksum.
    for (std::size_t i : {16u, 20u, 27u, 31u, 40u, 127u - 4u}) {
        V bad = kTlvs;
        bad[i] ^= 0x01;
        Status s = decode_exact(bad, h);
        EXPECT_EQ(s, Error::v2_crc32c_mismatch) << i << ": " << s;
    }
    // No single changed byte passes, except the CRC32C TLV's own type byte (without it there
    // is no checksum to check).
    for (auto [good, crc_type_at] : {std::pair{kTlvs, 120u}, {kCrcFirst, 28u}}) {
        ASSERT_EQ(good[crc_type_at], tlv::crc32c);
        for (std::size_t i = 0; i < good.size(); i++) {
            if (i != crc_type_at) {
                V bad = good;
                bad[i] ^= 0x40;
                EXPECT_NE(decode_exact(bad, h), Error::ok) << i;
            }
        }
    }
    // UNSPEC: a changed CRC value is caught; a changed TLV length turns the area into address
    // data of an unknown family, which the receiver skips.
    EXPECT_EQ(decode_exact(with_byte(kLocalCrc, 22, 0x8E), h), Error::v2_crc32c_mismatch);
    ASSERT_EQ(decode_exact(with_byte(kLocalCrc, 18, 0x44), h), Error::ok);
    EXPECT_TRUE(h.tlvs.empty());
    EXPECT_EQ(h.unspec_data.size(), 7u);
}

TEST(CodecV2, WriterComputesTheCrcLastOverTheFinalHeader) {
    std::uint8_t buf[536];
    std::size_t n = 0;
    V2Writer w(buf);
    ASSERT_EQ(w.begin(Command::proxy, Transport::stream, ep("2001:db8::1", 1), ep("::1", 2)),
              Error::ok);
    V id(kUniqueIdMax, 0x5A);
    ASSERT_EQ(w.add_unique_id(id), Error::ok);
    ASSERT_EQ(w.add_authority("example.org"), Error::ok);
    ASSERT_EQ(w.finish(true, n), Error::ok);
    // Independently: the last TLV is CRC32C, and the CRC of the header with it zeroed matches.
    ASSERT_EQ(n, 52u + 3 + 128 + 3 + 11 + 7);
    EXPECT_EQ(buf[n - 7], tlv::crc32c);
    std::uint32_t stored = static_cast<std::uint32_t>(buf[n - 4]) << 24 | buf[n - 3] << 16 |
                           buf[n - 2] << 8 | buf[n - 1];
    V zeroed(buf, buf + n);
    std::fill(zeroed.end() - 4, zeroed.end(), 0);
    EXPECT_EQ(crc32c(zeroed), stored);
    EXPECT_EQ(buf[14] << 8 | buf[15], static_cast<int>(n - 16));
    V2Header h;
    ASSERT_EQ(decode_exact(V(buf, buf + n), h), Error::ok);
    EXPECT_EQ(h.unique_id()->size(), 128u);
}

TEST(CodecV2, ReceiverSkipsTheWholeLengthForLocalAndUnspec) {
    V2Header h;
    // LOCAL with an INET block: addresses are there, the receiver ignores them.
    V local_inet = kInet;
    local_inet[12] = 0x20;
    ASSERT_EQ(decode_exact(local_inet, h), Error::ok);
    EXPECT_EQ(h.command, Command::local);
    EXPECT_EQ(h.length, 28u);
    // UNSPEC with address data of some other family: skipped, not read as TLVs.
    V unspec = cat({kSig, {0x21, 0x00, 0x00, 0x05}, {0xAA, 0xBB, 0xCC, 0xDD, 0xEE}, text("data")});
    ASSERT_EQ(decode_exact(unspec, h), Error::ok);
    EXPECT_EQ(h.length, 21u);
    EXPECT_TRUE(h.tlvs.empty());
    EXPECT_EQ(h.unspec_data.size(), 5u);
    // An INET header whose length covers more than the addresses: TLVs follow.
    V noop = cat(
        {kSig, {0x21, 0x11, 0x00, 0x0F}, V(kInet.begin() + 16, kInet.end()), {0x04, 0x00, 0x00}});
    ASSERT_EQ(decode_exact(noop, h), Error::ok);
    EXPECT_EQ(h.length, 31u);
    EXPECT_EQ(h.tlvs.size(), 3u);
}

TEST(CodecV2, EveryTruncationNeedsMore) {
    for (const V &full : valid_vectors()) {
        for (std::size_t len = 0; len < full.size(); len++) {
            V2Header h;
            Status s = decode_exact(V(full.begin(), full.begin() + static_cast<long>(len)), h);
            ASSERT_EQ(s, Error::need_more)
                << "cut at " << len << " of " << full.size() << ": " << s;
            EXPECT_EQ(s.limit, len);
            // Once the length field is there the total is known.
            EXPECT_EQ(s.value, len >= 16 ? full.size() : 0u) << len;
        }
        V2Header h;
        EXPECT_EQ(decode_exact(full, h), Error::ok);
        // Bytes after the header are not part of it.
        V more = cat({full, text("payload")});
        ASSERT_EQ(decode_exact(more, h), Error::ok);
        EXPECT_EQ(h.length, full.size());
    }
}

// kInet followed by `tlvs`, with the length field covering them.
V inet_with_tlvs(const V &tlvs) {
    V v = cat({kInet, tlvs});
    v[14] = static_cast<std::uint8_t>((12 + tlvs.size()) >> 8);
    v[15] = static_cast<std::uint8_t>(12 + tlvs.size());
    return v;
}

struct Malformed {
    const char *form;
    V in;
    Error want;
    std::uint32_t offset;
};

std::vector<Malformed> malformed_headers() {
    V long_id = {tlv::unique_id, 0x00, 129};
    long_id.resize(3 + 129, 0x11);
    return {
        {"signature byte 3", with_byte(kInet, 3, 0x0B), Error::v2_bad_signature, 3},
        {"signature byte 11", with_byte(kInet, 11, 0x0B), Error::v2_bad_signature, 11},
        {"signature, 5 bytes only", {0x0D, 0x0A, 0x0D, 0x0A, 0x01}, Error::v2_bad_signature, 4},
        {"version 1", with_byte(kInet, 12, 0x11), Error::v2_bad_version, 12},
        {"version 3", with_byte(kInet, 12, 0x31), Error::v2_bad_version, 12},
        {"version 3, 13 bytes only", cat({kSig, {0x31}}), Error::v2_bad_version, 12},
        {"command 2", with_byte(kInet, 12, 0x22), Error::v2_bad_command, 12},
        {"command 15", with_byte(kInet, 12, 0x2F), Error::v2_bad_command, 12},
        {"family 4", with_byte(kInet, 13, 0x41), Error::v2_bad_family_transport, 13},
        {"transport 3", with_byte(kInet, 13, 0x13), Error::v2_bad_family_transport, 13},
        {"INET without transport", with_byte(kInet, 13, 0x10), Error::v2_bad_family_transport, 13},
        {"UNSPEC family, STREAM", with_byte(kInet, 13, 0x01), Error::v2_bad_family_transport, 13},
        {"byte 0xFF", with_byte(kInet, 13, 0xFF), Error::v2_bad_family_transport, 13},
        {"INET length 11", with_byte(kInet, 15, 11), Error::v2_length_too_short, 14},
        {"INET length 0", cat({kSig, {0x21, 0x11, 0x00, 0x00}}), Error::v2_length_too_short, 14},
        {"INET6 length 35", with_byte(kInet6Dgram, 15, 35), Error::v2_length_too_short, 14},
        {"UNIX length 215", with_byte(unix_vector(), 15, 0xD7), Error::v2_length_too_short, 14},
        {"TLV value past the end", inet_with_tlvs({tlv::noop, 0x00, 0x05, 0, 0}),
         Error::v2_tlv_overrun, 28},
        {"TLV head past the end",
         inet_with_tlvs({tlv::alpn, 0x00, 0x02, 'h', '2', tlv::noop, 0x00}), Error::v2_tlv_overrun,
         33},
        {"lone TLV type byte", inet_with_tlvs({0xEA}), Error::v2_tlv_overrun, 28},
        {"SSL without verify", inet_with_tlvs({tlv::ssl, 0x00, 0x03, 1, 0, 0}),
         Error::v2_ssl_too_short, 31},
        {"SSL sub-TLV past the SSL TLV",
         inet_with_tlvs({tlv::ssl, 0x00, 0x08, 1, 0, 0, 0, 0, 0x21, 0x00, 0x09}),
         Error::v2_ssl_subtlv_overrun, 36},
        {"UNIQUE_ID of 129 bytes", inet_with_tlvs(long_id), Error::v2_unique_id_too_long, 28},
        {"CRC32C of 2 bytes", inet_with_tlvs({tlv::crc32c, 0x00, 0x02, 0, 0}),
         Error::v2_crc32c_bad_length, 28},
        {"CRC32C of 5 bytes", inet_with_tlvs({tlv::crc32c, 0x00, 0x05, 0, 0, 0, 0, 0}),
         Error::v2_crc32c_bad_length, 28},
        {"CRC32C wrong", inet_with_tlvs({tlv::crc32c, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF}),
         Error::v2_crc32c_mismatch, 28},
    };
}

TEST(CodecV2, EveryMalformedFormIsRejectedWithItsReason) {
    for (const auto &c : malformed_headers()) {
        V2Header h;
        Status s = decode_exact(c.in, h);
        EXPECT_EQ(s.error, c.want) << c.form << ": " << s;
        EXPECT_EQ(s.offset, c.offset) << c.form << ": " << s;
    }
    // Any other signature byte, anywhere in the 12.
    for (std::size_t i = 0; i < 12; i++) {
        V2Header h;
        Status s = decode_exact(with_byte(kInet, i, static_cast<std::uint8_t>(kInet[i] ^ 0x80)), h);
        EXPECT_EQ(s, Error::v2_bad_signature) << i;
        EXPECT_EQ(s.offset, i);
    }
}

TEST(CodecV2, EachReasonHasItsOwnSentence) {
    std::set<Error> errors;
    std::set<std::string_view> sentences;
    for (const auto &c : malformed_headers()) {
        errors.insert(c.want);
        sentences.insert(describe(c.want));
    }
    EXPECT_EQ(errors.size(), 11u);  // every v2 reason is exercised above
    EXPECT_EQ(sentences.size(), errors.size());
    // And across the whole enumeration, no two reasons share a sentence.
    std::set<std::string_view> all;
    int count = 0;
    for (int e = 0; e <= static_cast<int>(Error::not_started); e++, count++) {
        all.insert(describe(static_cast<Error>(e)));
    }
    EXPECT_EQ(all.size(), static_cast<std::size_t>(count));
    EXPECT_EQ(all.count("unknown error"), 0u);
}

TEST(CodecV2, ReasonsCarryTheirDetails) {
    V2Header h;
    EXPECT_EQ(describe(decode_exact(with_byte(kInet, 15, 8), h)),
              "v2: length is shorter than the INET address block: 8 < 12");
    EXPECT_EQ(describe(decode_exact(with_byte(kInet6Dgram, 15, 12), h)),
              "v2: length is shorter than the INET6 address block: 12 < 36");
    EXPECT_EQ(describe(decode_exact(inet_with_tlvs({tlv::noop, 0x00, 0x05, 0, 0}), h)),
              "v2: TLV 0x04 at offset 28 runs past the end of the header (needs 8 bytes, 5 left)");
    EXPECT_EQ(describe(decode_exact(with_byte(kInet, 12, 0x31), h), false), "version 3 is not 2");
    EXPECT_EQ(describe(decode_exact(with_byte(kInet, 13, 0x13), h)),
              "v2: family/transport byte 0x13 is not one of 00 11 12 21 22 31 32 (UNSPEC, TCP4, "
              "UDP4, TCP6, UDP6, UNIX stream, UNIX dgram)");
    V bad_crc = inet_with_tlvs({tlv::crc32c, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF});
    std::string why = describe(decode_exact(bad_crc, h));
    EXPECT_EQ(why.rfind("v2: CRC32C mismatch: the header says 0xdeadbeef, its bytes give 0x", 0),
              0u)
        << why;
}

TEST(CodecV2, UniqueIdIsAtMost128BytesBothWays) {
    std::uint8_t buf[536];
    std::size_t n = 0;
    V2Writer w(buf);
    ASSERT_EQ(w.begin(Command::proxy, Transport::stream, ep("192.0.2.1", 1), ep("192.0.2.2", 2)),
              Error::ok);
    EXPECT_EQ(w.add_unique_id(V(129, 1)), Error::v2_unique_id_too_long);
    EXPECT_EQ(w.add(tlv::unique_id, V(129, 1)), Error::v2_unique_id_too_long);
    // Refused before writing anything: the writer goes on.
    EXPECT_EQ(w.add_unique_id(V(128, 1)), Error::ok);
    ASSERT_EQ(w.finish(false, n), Error::ok);
    EXPECT_EQ(n, 28u + 3 + 128);
    V2Header h;
    ASSERT_EQ(decode_exact(V(buf, buf + n), h), Error::ok);
    EXPECT_EQ(h.unique_id()->size(), 128u);
}

TEST(CodecV2, WriterRefusesMisuse) {
    std::uint8_t buf[536];
    std::size_t n = 0;
    V2Writer w(buf);
    EXPECT_EQ(w.add_alpn("h2"), Error::not_started);
    EXPECT_EQ(w.add_noop(1), Error::not_started);
    EXPECT_EQ(w.begin_ssl(1, 0), Error::not_started);
    EXPECT_EQ(w.end_ssl(), Error::not_started);
    EXPECT_EQ(w.finish(false, n), Error::not_started);
    EXPECT_EQ(w.begin(Command::proxy, Transport::unspec, ep("192.0.2.1", 1), ep("192.0.2.2", 2)),
              Error::v2_bad_family_transport);
    EXPECT_EQ(w.begin_unix(Command::proxy, Transport::stream, std::string(109, 'a'), "/b"),
              Error::value_too_long);

    ASSERT_EQ(w.begin(Command::proxy, Transport::stream, ep("192.0.2.1", 1), ep("192.0.2.2", 2)),
              Error::ok);
    EXPECT_EQ(w.add_custom(0xF0, V{1}), Error::bad_tlv_type);
    EXPECT_EQ(w.add_custom(0xDF, V{1}), Error::bad_tlv_type);
    EXPECT_EQ(w.add(tlv::crc32c, V(4)), Error::bad_tlv_type);  // finish() adds it
    ASSERT_EQ(w.begin_ssl(tlv::client_ssl, 1), Error::ok);
    EXPECT_EQ(w.begin_ssl(tlv::client_ssl, 1), Error::not_started);  // no nesting
    EXPECT_EQ(w.add_alpn("h2"), Error::bad_tlv_type);                // not an SSL sub-TLV
    EXPECT_EQ(w.finish(false, n), Error::not_started);               // SSL still open
    ASSERT_EQ(w.add_text(tlv::ssl_cipher, "TLS_AES_128_GCM_SHA256"), Error::ok);
    ASSERT_EQ(w.end_ssl(), Error::ok);
    ASSERT_EQ(w.finish(false, n), Error::ok);
    EXPECT_EQ(w.add_alpn("h2"), Error::not_started);  // finished
    V2Header h;
    ASSERT_EQ(decode_exact(V(buf, buf + n), h), Error::ok);
    auto ssl = h.ssl();
    ASSERT_TRUE(ssl);
    EXPECT_EQ(ssl->verify, 1u);
    Tlv cipher;
    ASSERT_TRUE(TlvReader(ssl->sub_tlvs).next(cipher));
    EXPECT_EQ(cipher.text(), "TLS_AES_128_GCM_SHA256");
}

// What the writer writes, the decoder reads: an SSL TLV given whole is held to the decoder's
// rules, and empty values (whose spans may hold a null pointer) are written as empty.
TEST(CodecV2, WriterWritesOnlyWhatTheDecoderReads) {
    std::uint8_t buf[536];
    std::size_t n = 0;
    V2Writer w(buf);
    ASSERT_EQ(w.begin_unix(Command::proxy, Transport::stream, std::string_view{}, "/b"), Error::ok);
    EXPECT_EQ(w.add(tlv::ssl, V(4)), Error::v2_ssl_too_short);
    EXPECT_EQ(w.add(tlv::ssl, V{tlv::client_ssl, 0, 0, 0, 0, tlv::ssl_cn, 0, 5, 'a'}),
              Error::v2_ssl_subtlv_overrun);
    EXPECT_EQ(w.add(tlv::ssl, V{tlv::client_ssl, 0, 0, 0, 0, tlv::ssl_cn, 0, 1, 'a'}), Error::ok);
    EXPECT_EQ(w.add(0xE0, Bytes{}), Error::ok);
    EXPECT_EQ(w.add_text(tlv::authority, std::string_view{}), Error::ok);
    ASSERT_EQ(w.finish(true, n), Error::ok);
    V2Header h;
    ASSERT_EQ(decode_exact(V(buf, buf + n), h), Error::ok);
    EXPECT_EQ(h.source_path, "");
    EXPECT_EQ(h.destination_path, "/b");
    ASSERT_TRUE(h.ssl());
    auto custom = h.find(0xE0);
    ASSERT_TRUE(custom);
    EXPECT_TRUE(custom->value.empty());
}

TEST(CodecV2, WriterRefusesValuesThatCannotBeEncoded) {
    std::vector<std::uint8_t> big(3 * 65536);
    std::size_t n = 0;
    V2Writer w(big);
    ASSERT_EQ(w.begin_unspec(Command::proxy), Error::ok);
    EXPECT_EQ(w.add(0xE0, V(65536)), Error::value_too_long);
    EXPECT_EQ(w.add_noop(65536), Error::value_too_long);
    EXPECT_EQ(w.add_noop(65535), Error::ok);
    EXPECT_EQ(w.add_noop(0), Error::ok);
    // 3 + 65535 + 3 = 65541 bytes after the fixed part: more than the length field can say.
    EXPECT_EQ(w.finish(false, n), Error::value_too_long);
}

TEST(CodecV2, EncodingIntoTooSmallBuffersFailsCleanly) {
    // Build the same header into every buffer size below its length: each attempt fails with
    // buffer_too_small somewhere along the way, finish() never succeeds, nothing is written
    // past the buffer (an exact-size heap buffer, so an overflow would be a real one).
    auto build = [](Buffer out, std::size_t &n) {
        V2Writer w(out);
        w.begin(Command::proxy, Transport::stream, ep("2001:db8::1", 1), ep("2001:db8::2", 2));
        w.add_authority("example.com");
        w.add_noop(4);
        w.begin_ssl(tlv::client_ssl, 0);
        w.add_text(tlv::ssl_version, "TLSv1.3");
        w.end_ssl();
        return w.finish(true, n);
    };
    std::size_t full = 0;
    V big(536);
    ASSERT_EQ(build(big, full), Error::ok);
    for (std::size_t size = 0; size < full; size++) {
        auto buf = std::make_unique<std::uint8_t[]>(size);
        std::size_t n = 7777;
        EXPECT_EQ(build(Buffer(buf.get(), size), n), Error::buffer_too_small) << size;
        EXPECT_EQ(n, 7777u);
    }
    std::uint8_t small[27];
    std::size_t n = 0;
    EXPECT_EQ(encode_v2(small, Command::proxy, Transport::dgram, ep("192.0.2.1", 1),
                        ep("192.0.2.2", 2), n),
              Error::buffer_too_small);
    std::uint8_t tiny[231];
    V2Writer w(tiny);
    EXPECT_EQ(w.begin_unix(Command::proxy, Transport::dgram, "/a", "/b"), Error::buffer_too_small);
}

TEST(CodecV2, MutatedInputsStayWithinTheirBytes) {
    // Bounded, deterministic mutation of valid headers (bytes changed, cut short): whatever
    // the verdict, an accepted header lies within the input and re-decodes the same.
    std::mt19937 rng(12345);
    std::vector<V> seeds = valid_vectors();
    for (int round = 0; round < 20000; round++) {
        V in = seeds[rng() % seeds.size()];
        for (int k = rng() % 4; k >= 0; k--) {
            in[rng() % in.size()] = static_cast<std::uint8_t>(rng());
        }
        in.resize(rng() % (in.size() + 1));
        V2Header h;
        Status s = decode_exact(in, h);
        if (s.ok()) {
            ASSERT_LE(h.length, in.size());
            EXPECT_EQ(decode_exact(V(in.begin(), in.begin() + static_cast<long>(h.length)), h),
                      Error::ok);
        } else {
            EXPECT_NE(describe(s), "unknown error");
        }
    }
}

}  // namespace
