// SPP codec and format detection: vectors written by hand from Cloudflare's layout, round
// trips for IPv4 (mapped) and IPv6, every truncation, bad magic, too-small buffers, and
// decode_any telling v1, v2 and SPP apart.
#include <gtest/gtest.h>

#include <algorithm>
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

// 192.0.2.10:42300 sent to 203.0.113.5:53, both IPv4 mapped into IPv6.
const V kSpp4 = {0x56, 0xEC,                                                              // magic
                 0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xC0, 0x00, 0x02, 0x0A,  // client
                 0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xCB, 0x00, 0x71, 0x05,  // proxy
                 0xA5, 0x3C,                                                              // 42300
                 0x00, 0x35};                                                             // 53

// [2001:db8::5]:1 sent to [2001:db8:ffff::6]:65535.
const V kSpp6 = {0x56, 0xEC,                                                           //
                 0x20, 0x01, 0x0D, 0xB8, 0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05,  //
                 0x20, 0x01, 0x0D, 0xB8, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x06,  //
                 0x00, 0x01,                                                           //
                 0xFF, 0xFF};

TEST(CodecSpp, HandVectorsDecode) {
    SppHeader h;
    ASSERT_EQ(decode_exact(kSpp4, h, decode_spp), Error::ok);
    EXPECT_EQ(h.client, ep("192.0.2.10", 42300));
    EXPECT_EQ(h.proxy, ep("203.0.113.5", 53));
    EXPECT_TRUE(h.client.addr.is_v4());

    ASSERT_EQ(decode_exact(kSpp6, h, decode_spp), Error::ok);
    EXPECT_EQ(h.client, ep("2001:db8::5", 1));
    EXPECT_EQ(h.proxy, ep("2001:db8:ffff::6", 65535));
    EXPECT_FALSE(h.client.addr.is_v4());
}

TEST(CodecSpp, EncodesByteExactAndRoundTrips) {
    std::uint8_t buf[kSppLen];
    ASSERT_EQ(encode_spp(buf, ep("192.0.2.10", 42300), ep("203.0.113.5", 53)), Error::ok);
    EXPECT_EQ(V(buf, buf + kSppLen), kSpp4);
    ASSERT_EQ(encode_spp(buf, ep("2001:db8::5", 1), ep("2001:db8:ffff::6", 65535)), Error::ok);
    EXPECT_EQ(V(buf, buf + kSppLen), kSpp6);
    // Mixed: an IPv4 client to an IPv6 proxy address, each in its own form.
    ASSERT_EQ(encode_spp(buf, ep("198.51.100.7", 9), ep("2001:db8::1", 10)), Error::ok);
    SppHeader h;
    ASSERT_EQ(decode_exact(V(buf, buf + kSppLen), h, decode_spp), Error::ok);
    EXPECT_EQ(h.client, ep("198.51.100.7", 9));
    EXPECT_EQ(h.proxy, ep("2001:db8::1", 10));
    // Payload after the header is not part of it.
    V with_payload = kSpp4;
    with_payload.push_back('x');
    EXPECT_EQ(decode_exact(with_payload, h, decode_spp), Error::ok);
}

TEST(CodecSpp, EveryTruncationNeedsMore) {
    for (const V &full : {kSpp4, kSpp6}) {
        for (std::size_t len = 0; len < full.size(); len++) {
            SppHeader h;
            Status s =
                decode_exact(V(full.begin(), full.begin() + static_cast<long>(len)), h, decode_spp);
            EXPECT_EQ(s, Error::need_more) << len << ": " << s;
            EXPECT_EQ(s.value, kSppLen);
            EXPECT_EQ(s.limit, len);
        }
    }
}

TEST(CodecSpp, BadMagicIsRejectedAsSoonAsItShows) {
    SppHeader h;
    Status s = decode_exact(V{0x56, 0xED}, h, decode_spp);
    EXPECT_EQ(s, Error::spp_bad_magic);
    EXPECT_EQ(s.offset, 1u);
    EXPECT_EQ(describe(s), "spp: bad magic 0x56ed (expected 0x56EC)");
    V bad = kSpp4;
    bad[0] = 0xEC;
    bad[1] = 0x56;  // byte-swapped magic
    EXPECT_EQ(decode_exact(bad, h, decode_spp), Error::spp_bad_magic);
    s = decode_exact(V{0x57}, h, decode_spp);
    EXPECT_EQ(s, Error::spp_bad_magic);
    EXPECT_EQ(describe(s, false), "bad magic: first byte 0x57 (expected 0x56)");
}

TEST(CodecSpp, EncodingIntoATooSmallBufferFailsCleanly) {
    for (std::size_t size = 0; size < kSppLen; size++) {
        V buf(size, 0xAA);
        EXPECT_EQ(encode_spp(buf, ep("192.0.2.1", 1), ep("192.0.2.2", 2)), Error::buffer_too_small);
        EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](auto v) { return v == 0xAA; }));
    }
}

TEST(CodecAny, RecognisesEachFormatByItsFirstByte) {
    AnyHeader h;
    std::string v1 = "PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\npayload";
    ASSERT_EQ(decode_exact(V(v1.begin(), v1.end()), h, decode_any), Error::ok);
    EXPECT_EQ(h.kind, Kind::v1);
    EXPECT_EQ(h.length, 44u);
    EXPECT_EQ(h.v1.source, ep("192.0.2.0", 42300));

    const V v2 = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55,
                  0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00, 'x'};
    ASSERT_EQ(decode_exact(v2, h, decode_any), Error::ok);
    EXPECT_EQ(h.kind, Kind::v2);
    EXPECT_EQ(h.length, 16u);
    EXPECT_EQ(h.v2.command, Command::local);

    ASSERT_EQ(decode_exact(kSpp6, h, decode_any), Error::ok);
    EXPECT_EQ(h.kind, Kind::spp);
    EXPECT_EQ(h.length, kSppLen);
    EXPECT_EQ(h.spp.proxy.port, 65535);

    EXPECT_EQ(name(Kind::v1), "PROXY v1");
    EXPECT_EQ(name(Kind::v2), "PROXY v2");
    EXPECT_EQ(name(Kind::spp), "SPP");
}

TEST(CodecAny, NamesTheFormatOfIncompleteOrMalformedInput) {
    AnyHeader h;
    EXPECT_EQ(decode_exact(V{'P', 'R', 'O'}, h, decode_any), Error::need_more);
    EXPECT_EQ(h.kind, Kind::v1);
    EXPECT_EQ(decode_exact(V{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D}, h, decode_any), Error::need_more);
    EXPECT_EQ(h.kind, Kind::v2);
    EXPECT_EQ(decode_exact(V{0x0D, 0x0D}, h, decode_any), Error::v2_bad_signature);
    EXPECT_EQ(h.kind, Kind::v2);
    EXPECT_EQ(decode_exact(V{0x56, 0xEC, 0x00}, h, decode_any), Error::need_more);
    EXPECT_EQ(h.kind, Kind::spp);
    EXPECT_EQ(decode_exact(V{'P', 'U'}, h, decode_any), Error::v1_bad_prefix);
    EXPECT_EQ(decode_exact(V{}, h, decode_any), Error::need_more);

    Status s = decode_exact(V{'G', 'E', 'T', ' '}, h, decode_any);
    EXPECT_EQ(s, Error::unknown_format);
    EXPECT_EQ(describe(s), "not a PROXY v1, PROXY v2 or SPP header (first byte 0x47)");
    EXPECT_EQ(decode_exact(V{0x16, 0x03, 0x01}, h, decode_any), Error::unknown_format);  // TLS
}

}  // namespace
