// PROXY v1/v2 and SPP codec: byte-exact vectors written by hand from the specification,
// round trips for every family/transport/command, every truncation, every malformed form.
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "codec/proxy.hpp"

namespace {

using namespace ppinject;
using namespace ppinject::proxy;
using V = std::vector<std::uint8_t>;

V bytes(std::string_view s) {
    return V(s.begin(), s.end());
}

Endpoint ep(const char *addr, std::uint16_t port) {
    return {*IpAddress::parse(addr), port};
}

// Decoders get an exact-size heap copy, so a read past the end is a real overread that
// AddressSanitizer or valgrind would report.
template <typename H, typename F>
Error decode_exact(const V &in, H &out, F decode) {
    std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[in.size() ? in.size() : 1]);
    std::copy(in.begin(), in.end(), copy.get());
    return decode(Bytes(copy.get(), in.size()), out);
}

// ---- v1 ---------------------------------------------------------------------------------

TEST(ProxyV1, SpecExamplesDecode) {
    V1Header h;
    V in = bytes("PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n");
    ASSERT_EQ(decode_v1(in, h), Error::ok);
    EXPECT_EQ(h.protocol, V1Protocol::tcp4);
    EXPECT_EQ(h.source, ep("192.0.2.0", 42300));
    EXPECT_EQ(h.destination, ep("192.0.2.255", 443));
    EXPECT_EQ(h.length, in.size());

    in = bytes("PROXY TCP6 2001:db8:: 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff 42300 443\r\n");
    ASSERT_EQ(decode_v1(in, h), Error::ok);
    EXPECT_EQ(h.protocol, V1Protocol::tcp6);
    EXPECT_EQ(h.source, ep("2001:db8::", 42300));
    EXPECT_EQ(h.destination.addr.to_string(), "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");

    in = bytes("PROXY UNKNOWN\r\n");
    ASSERT_EQ(decode_v1(in, h), Error::ok);
    EXPECT_EQ(h.protocol, V1Protocol::unknown);
    in = bytes("PROXY UNKNOWN anything at all 1 2 3\r\nGET /");
    ASSERT_EQ(decode_v1(in, h), Error::ok);
    EXPECT_EQ(h.length, in.size() - 5);
}

TEST(ProxyV1, EncodesByteExact) {
    std::uint8_t buf[kV1MaxLen];
    std::size_t n = 0;
    ASSERT_EQ(encode_v1(buf, ep("192.0.2.0", 42300), ep("192.0.2.255", 443), n), Error::ok);
    EXPECT_EQ(std::string(buf, buf + n), "PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n");
    ASSERT_EQ(encode_v1(buf, ep("2001:db8::", 0), ep("2001:db8::1", 65535), n), Error::ok);
    EXPECT_EQ(std::string(buf, buf + n), "PROXY TCP6 2001:db8:: 2001:db8::1 0 65535\r\n");
    // Mixed families: an IPv6 client to an IPv4 address is TCP6 with the IPv4 one mapped.
    ASSERT_EQ(encode_v1(buf, ep("2001:db8::7", 1), ep("192.0.2.1", 2), n), Error::ok);
    EXPECT_EQ(std::string(buf, buf + n), "PROXY TCP6 2001:db8::7 ::ffff:192.0.2.1 1 2\r\n");
    // An IPv4-mapped client on both sides is plain TCP4.
    ASSERT_EQ(encode_v1(buf, ep("::ffff:192.0.2.9", 5), ep("192.0.2.1", 6), n), Error::ok);
    EXPECT_EQ(std::string(buf, buf + n), "PROXY TCP4 192.0.2.9 192.0.2.1 5 6\r\n");
    ASSERT_EQ(encode_v1_unknown(buf, n), Error::ok);
    EXPECT_EQ(std::string(buf, buf + n), "PROXY UNKNOWN\r\n");
}

TEST(ProxyV1, LongestLineFitsAndTooSmallBufferFails) {
    // 104 bytes: the longest TCP6 line of the specification.
    Endpoint a = ep("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);
    Endpoint b = ep("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd", 65535);
    std::uint8_t buf[kV1MaxLen];
    std::size_t n = 0;
    ASSERT_EQ(encode_v1(buf, a, b, n), Error::ok);
    EXPECT_EQ(n, 104u);
    V1Header h;
    EXPECT_EQ(decode_v1(V(buf, buf + n), h), Error::ok);
    for (std::size_t size = 0; size < n; size++) {
        std::vector<std::uint8_t> small(size);
        EXPECT_EQ(encode_v1(small, a, b, n), Error::buffer_too_small) << size;
        n = 104;
    }
}

TEST(ProxyV1, EveryTruncationNeedsMore) {
    for (const char *line : {"PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n",
                             "PROXY TCP6 2001:db8:: 2001:db8::1 1 2\r\n", "PROXY UNKNOWN\r\n"}) {
        V full = bytes(line);
        for (std::size_t len = 0; len < full.size(); len++) {
            V1Header h;
            V part(full.begin(), full.begin() + static_cast<long>(len));
            EXPECT_EQ(decode_exact(part, h, decode_v1), Error::need_more) << line << " at " << len;
        }
    }
}

TEST(ProxyV1, MalformedFormsHaveTheirOwnReason) {
    struct Case {
        std::string in;
        Error want;
    };
    std::vector<Case> cases = {
        {"PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n", Error::v1_bad_prefix},
        {"PROXY TCP4 " + std::string(120, '1'), Error::v1_no_crlf},
        {"PROXY UNKNOWN " + std::string(92, 'x') + "\r\n", Error::v1_no_crlf},  // LF is byte 108
        {"PROXY UNKNOWN " + std::string(91, 'x') + "\r\n", Error::ok},  // exactly 107: valid
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", Error::v1_lone_cr},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", Error::v1_lone_lf},
        {"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", Error::v1_bad_protocol},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", Error::v1_field_count},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", Error::v1_field_count},
        {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", Error::v1_field_count},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", Error::v1_field_count},
        {"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", Error::v1_bad_source_address},
        {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", Error::v1_bad_source_address},
        {"PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n", Error::v1_bad_destination_address},
        {"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", Error::v1_address_family_mismatch},
        {"PROXY TCP6 2001:db8::1 5.6.7.8 1 2\r\n", Error::v1_address_family_mismatch},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", Error::v1_bad_source_port},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", Error::v1_bad_source_port},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", Error::v1_bad_source_port},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", Error::v1_bad_destination_port},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", Error::v1_bad_destination_port},
    };
    std::set<std::string_view> reasons;
    for (const auto &c : cases) {
        V1Header h;
        EXPECT_EQ(decode_exact(bytes(c.in), h, decode_v1), c.want) << c.in;
        reasons.insert(describe(c.want));
    }
    // One distinct sentence per distinct error.
    std::set<Error> distinct;
    for (const auto &c : cases) {
        distinct.insert(c.want);
    }
    EXPECT_EQ(reasons.size(), distinct.size());
}

// ---- v2 ---------------------------------------------------------------------------------

// PROXY, INET, STREAM: 192.0.2.10:42300 -> 203.0.113.5:443, written out from the spec.
const V kV2Inet = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,  //
                   0x21, 0x11, 0x00, 0x0C,                                                  //
                   192,  0,    2,    10,   203,  0,    113,  5,                             //
                   0xA5, 0x3C, 0x01, 0xBB};

// PROXY, INET6, DGRAM: [2001:db8::1]:53000 -> [2001:db8::2]:53.
const V kV2Inet6 = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,  //
                    0x21, 0x22, 0x00, 0x24,                                                  //
                    0x20, 0x01, 0x0D, 0xB8, 0,    0,    0,    0,    0,    0,    0,    0,     //
                    0,    0,    0,    1,                                                     //
                    0x20, 0x01, 0x0D, 0xB8, 0,    0,    0,    0,    0,    0,    0,    0,     //
                    0,    0,    0,    2,                                                     //
                    0xCF, 0x08, 0x00, 0x35};

// LOCAL, UNSPEC: a health check.
const V kV2Local = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                    0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00};

TEST(ProxyV2, HandWrittenVectorsDecode) {
    V2Header h;
    ASSERT_EQ(decode_v2(kV2Inet, h), Error::ok);
    EXPECT_EQ(h.command, Command::proxy);
    EXPECT_EQ(h.family, Family::inet);
    EXPECT_EQ(h.transport, Transport::stream);
    EXPECT_EQ(h.source, ep("192.0.2.10", 42300));
    EXPECT_EQ(h.destination, ep("203.0.113.5", 443));
    EXPECT_EQ(h.length, 28u);
    EXPECT_TRUE(h.tlvs.empty());

    ASSERT_EQ(decode_v2(kV2Inet6, h), Error::ok);
    EXPECT_EQ(h.family, Family::inet6);
    EXPECT_EQ(h.transport, Transport::dgram);
    EXPECT_EQ(h.source, ep("2001:db8::1", 53000));
    EXPECT_EQ(h.destination, ep("2001:db8::2", 53));
    EXPECT_EQ(h.length, 52u);

    ASSERT_EQ(decode_v2(kV2Local, h), Error::ok);
    EXPECT_EQ(h.command, Command::local);
    EXPECT_EQ(h.family, Family::unspec);
    EXPECT_EQ(h.length, 16u);
}

TEST(ProxyV2, EncodesByteExact) {
    std::uint8_t buf[536];
    std::size_t n = 0;
    V2Writer w(buf);
    ASSERT_EQ(
        w.begin(Command::proxy, Transport::stream, ep("192.0.2.10", 42300), ep("203.0.113.5", 443)),
        Error::ok);
    ASSERT_EQ(w.finish(false, n), Error::ok);
    EXPECT_EQ(V(buf, buf + n), kV2Inet);

    ASSERT_EQ(
        w.begin(Command::proxy, Transport::dgram, ep("2001:db8::1", 53000), ep("2001:db8::2", 53)),
        Error::ok);
    ASSERT_EQ(w.finish(false, n), Error::ok);
    EXPECT_EQ(V(buf, buf + n), kV2Inet6);

    ASSERT_EQ(w.begin_unspec(Command::local), Error::ok);
    ASSERT_EQ(w.finish(false, n), Error::ok);
    EXPECT_EQ(V(buf, buf + n), kV2Local);
}

TEST(ProxyV2, RoundTripsEveryCommandFamilyTransport) {
    for (Command c : {Command::local, Command::proxy}) {
        for (Transport t : {Transport::stream, Transport::dgram}) {
            for (auto [src, dst] : {std::pair{ep("192.0.2.1", 1), ep("198.51.100.2", 2)},
                                    std::pair{ep("2001:db8::1", 3), ep("2001:db8::2", 4)},
                                    std::pair{ep("2001:db8::1", 5), ep("203.0.113.9", 6)}}) {
                std::uint8_t buf[128];
                std::size_t n = 0;
                V2Writer w(buf);
                ASSERT_EQ(w.begin(c, t, src, dst), Error::ok);
                ASSERT_EQ(w.finish(false, n), Error::ok);
                V2Header h;
                ASSERT_EQ(decode_v2(Bytes(buf, n), h), Error::ok);
                EXPECT_EQ(h.command, c);
                EXPECT_EQ(h.transport, t);
                bool v4 = src.addr.is_v4() && dst.addr.is_v4();
                EXPECT_EQ(h.family, v4 ? Family::inet : Family::inet6);
                EXPECT_EQ(h.source, src);
                EXPECT_EQ(h.destination, dst);
            }
            std::uint8_t buf[300];
            std::size_t n = 0;
            V2Writer w(buf);
            ASSERT_EQ(w.begin_unix(c, t, "/run/client.sock", "/run/server.sock"), Error::ok);
            ASSERT_EQ(w.finish(false, n), Error::ok);
            EXPECT_EQ(n, kV2UnixLen);
            V2Header h;
            ASSERT_EQ(decode_v2(Bytes(buf, n), h), Error::ok);
            EXPECT_EQ(h.family, Family::unix_socket);
            EXPECT_EQ(h.source_path, "/run/client.sock");
            EXPECT_EQ(h.destination_path, "/run/server.sock");
        }
    }
}

TEST(ProxyV2, TlvsRoundTripWithCrc32c) {
    std::uint8_t buf[536];
    std::size_t n = 0;
    V2Writer w(buf);
    ASSERT_EQ(
        w.begin(Command::proxy, Transport::stream, ep("192.0.2.1", 1000), ep("192.0.2.2", 443)),
        Error::ok);
    EXPECT_EQ(w.add_text(tlv::alpn, "h2"), Error::ok);
    EXPECT_EQ(w.add_text(tlv::authority, "example.com"), Error::ok);
    V id(128, 0xAB);
    EXPECT_EQ(w.add_unique_id(id), Error::ok);
    EXPECT_EQ(w.add_noop(3), Error::ok);
    EXPECT_EQ(w.add_text(tlv::netns, "blue"), Error::ok);
    V aws = {0x01, 'v', 'p', 'c', 'e'};
    EXPECT_EQ(w.add_custom(0xEA, aws), Error::ok);
    EXPECT_EQ(w.add_custom(0xF0, aws), Error::bad_tlv_type);
    ASSERT_EQ(w.begin_ssl(0x01, 0), Error::ok);
    EXPECT_EQ(w.add_text(tlv::ssl_version, "TLSv1.3"), Error::ok);
    EXPECT_EQ(w.add_text(tlv::ssl_cn, "client"), Error::ok);
    ASSERT_EQ(w.end_ssl(), Error::ok);
    ASSERT_EQ(w.finish(true, n), Error::ok);

    V2Header h;
    ASSERT_EQ(decode_v2(Bytes(buf, n), h), Error::ok);
    EXPECT_TRUE(h.has_crc32c);
    TlvReader r(h.tlvs);
    Tlv t;
    std::vector<std::uint8_t> types;
    while (r.next(t)) {
        types.push_back(t.type);
        if (t.type == tlv::authority) {
            EXPECT_EQ(t.text(), "example.com");
        }
        if (t.type == tlv::unique_id) {
            EXPECT_EQ(V(t.value.begin(), t.value.end()), id);
        }
        if (t.type == tlv::ssl) {
            SslTlv ssl;
            ASSERT_EQ(parse_ssl(t, ssl), Error::ok);
            EXPECT_EQ(ssl.client, 0x01);
            TlvReader sub(ssl.sub_tlvs);
            Tlv s;
            ASSERT_TRUE(sub.next(s));
            EXPECT_EQ(s.type, tlv::ssl_version);
            EXPECT_EQ(s.text(), "TLSv1.3");
            ASSERT_TRUE(sub.next(s));
            EXPECT_EQ(s.text(), "client");
            EXPECT_FALSE(sub.next(s));
        }
    }
    EXPECT_FALSE(r.overrun());
    EXPECT_EQ(types,
              (std::vector<std::uint8_t>{tlv::alpn, tlv::authority, tlv::unique_id, tlv::noop,
                                         tlv::netns, 0xEA, tlv::ssl, tlv::crc32c}));

    // Any flipped bit now fails the checksum.
    buf[20] ^= 0x01;
    EXPECT_EQ(decode_v2(Bytes(buf, n), h), Error::v2_crc32c_mismatch);
}

TEST(ProxyV2, Crc32cCheckValue) {
    V check = bytes("123456789");
    EXPECT_EQ(crc32c(check), 0xE3069283u);
}

TEST(ProxyV2, EveryTruncationNeedsMore) {
    std::uint8_t buf[536];
    std::size_t n = 0;
    V2Writer w(buf);
    ASSERT_EQ(
        w.begin(Command::proxy, Transport::stream, ep("2001:db8::1", 1), ep("2001:db8::2", 2)),
        Error::ok);
    w.add_text(tlv::authority, "example.com");
    ASSERT_EQ(w.finish(true, n), Error::ok);
    V full(buf, buf + n);
    for (const V &h : {kV2Inet, kV2Inet6, kV2Local, full}) {
        for (std::size_t len = 0; len < h.size(); len++) {
            V2Header out;
            V part(h.begin(), h.begin() + static_cast<long>(len));
            EXPECT_EQ(decode_exact(part, out, decode_v2), Error::need_more) << len;
        }
    }
}

TEST(ProxyV2, MalformedFormsHaveTheirOwnReason) {
    auto with = [](V v, std::size_t at, std::uint8_t b) {
        v[at] = b;
        return v;
    };
    // INET header whose TLV area is `tlvs`.
    auto with_tlvs = [](const V &tlvs) {
        V v = kV2Inet;
        v.insert(v.end(), tlvs.begin(), tlvs.end());
        v[15] = static_cast<std::uint8_t>(12 + tlvs.size());
        return v;
    };
    V long_id = {tlv::unique_id, 0x00, 129};
    long_id.resize(3 + 129, 0x11);
    struct Case {
        V in;
        Error want;
    };
    std::vector<Case> cases = {
        {with(kV2Inet, 3, 0x0B), Error::v2_bad_signature},
        {with(kV2Inet, 12, 0x11), Error::v2_bad_version},
        {with(kV2Inet, 12, 0x22), Error::v2_bad_command},
        {with(kV2Inet, 13, 0x13), Error::v2_bad_family_transport},
        {with(kV2Inet, 13, 0x41), Error::v2_bad_family_transport},
        {with(kV2Inet, 15, 11), Error::v2_length_too_short},
        {with(kV2Inet6, 15, 35), Error::v2_length_too_short},
        {with_tlvs({tlv::noop, 0x00, 0x05, 0, 0}), Error::v2_tlv_overrun},
        {with_tlvs({tlv::noop, 0x00}), Error::v2_tlv_overrun},
        {with_tlvs({tlv::ssl, 0x00, 0x03, 1, 0, 0}), Error::v2_ssl_too_short},
        {with_tlvs({tlv::ssl, 0x00, 0x08, 1, 0, 0, 0, 0, 0x21, 0x00, 0x09}),
         Error::v2_ssl_subtlv_overrun},
        {with_tlvs(long_id), Error::v2_unique_id_too_long},
        {with_tlvs({tlv::crc32c, 0x00, 0x02, 0, 0}), Error::v2_crc32c_bad_length},
        {with_tlvs({tlv::crc32c, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF}), Error::v2_crc32c_mismatch},
    };
    std::set<Error> distinct;
    std::set<std::string_view> reasons;
    for (const auto &c : cases) {
        V2Header h;
        EXPECT_EQ(decode_exact(c.in, h, decode_v2), c.want) << describe(c.want);
        distinct.insert(c.want);
        reasons.insert(describe(c.want));
    }
    EXPECT_EQ(reasons.size(), distinct.size());
}

TEST(ProxyV2, WriterRefusesWhatDoesNotFit) {
    std::uint8_t small[27];
    V2Writer w(small);
    EXPECT_EQ(w.begin(Command::proxy, Transport::stream, ep("192.0.2.1", 1), ep("192.0.2.2", 2)),
              Error::buffer_too_small);
    std::size_t n = 0;
    EXPECT_NE(w.finish(false, n), Error::ok);

    std::uint8_t buf[64];
    V2Writer w2(buf);
    ASSERT_EQ(w2.begin(Command::proxy, Transport::stream, ep("192.0.2.1", 1), ep("192.0.2.2", 2)),
              Error::ok);
    EXPECT_EQ(w2.add_unique_id(V(129, 1)), Error::value_too_long);

    V2Writer w3(buf);
    EXPECT_EQ(w3.add_text(tlv::alpn, "h2"), Error::not_started);
}

// ---- SPP --------------------------------------------------------------------------------

// 192.0.2.10:42300 sent to 203.0.113.5:53, IPv4 mapped into IPv6.
const V kSpp4 = {0x56, 0xEC,                                                            //
                 0,    0,    0,    0,   0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 192, 0, 2,   10,  //
                 0,    0,    0,    0,   0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 203, 0, 113, 5,   //
                 0xA5, 0x3C, 0x00, 0x35};

TEST(Spp, HandWrittenVectorRoundTrips) {
    SppHeader h;
    ASSERT_EQ(decode_spp(kSpp4, h), Error::ok);
    EXPECT_EQ(h.client, ep("192.0.2.10", 42300));
    EXPECT_EQ(h.proxy, ep("203.0.113.5", 53));
    EXPECT_TRUE(h.client.addr.is_v4());

    std::uint8_t buf[kSppLen];
    ASSERT_EQ(encode_spp(buf, ep("192.0.2.10", 42300), ep("203.0.113.5", 53)), Error::ok);
    EXPECT_EQ(V(buf, buf + kSppLen), kSpp4);

    ASSERT_EQ(encode_spp(buf, ep("2001:db8::5", 1), ep("2001:db8::6", 2)), Error::ok);
    ASSERT_EQ(decode_spp(Bytes(buf, kSppLen), h), Error::ok);
    EXPECT_EQ(h.client, ep("2001:db8::5", 1));
    EXPECT_EQ(h.proxy, ep("2001:db8::6", 2));

    std::uint8_t small[kSppLen - 1];
    EXPECT_EQ(encode_spp(small, h.client, h.proxy), Error::buffer_too_small);
}

TEST(Spp, TruncationAndBadMagic) {
    for (std::size_t len = 0; len < kSpp4.size(); len++) {
        SppHeader h;
        V part(kSpp4.begin(), kSpp4.begin() + static_cast<long>(len));
        EXPECT_EQ(decode_exact(part, h, decode_spp), Error::need_more) << len;
    }
    SppHeader h;
    V bad = kSpp4;
    bad[1] = 0xED;
    EXPECT_EQ(decode_spp(bad, h), Error::spp_bad_magic);
}

// ---- detection ---------------------------------------------------------------------------

TEST(AnyHeader, RecognisesEachKindAndRejectsOthers) {
    AnyHeader h;
    V v1 = bytes("PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\npayload");
    ASSERT_EQ(decode_any(v1, h), Error::ok);
    EXPECT_EQ(h.kind, Kind::v1);
    EXPECT_EQ(h.length, v1.size() - 7);
    ASSERT_EQ(decode_any(kV2Inet6, h), Error::ok);
    EXPECT_EQ(h.kind, Kind::v2);
    ASSERT_EQ(decode_any(kSpp4, h), Error::ok);
    EXPECT_EQ(h.kind, Kind::spp);
    EXPECT_EQ(decode_any(bytes("GET / HTTP/1.1\r\n"), h), Error::unknown_format);
    EXPECT_EQ(decode_any(V{}, h), Error::need_more);
}

}  // namespace
