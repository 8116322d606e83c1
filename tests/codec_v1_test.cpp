// PROXY v1 codec: the specification's examples, byte-exact lines written by hand, round
// trips, every truncation, the 107-byte limit, and every malformed form with its own reason.
#include <gtest/gtest.h>

#include <algorithm>
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

V bytes(std::string_view s) {
    return V(s.begin(), s.end());
}

std::string encode(const Endpoint &src, const Endpoint &dst) {
    std::uint8_t buf[kV1MaxLen];
    std::size_t n = 0;
    EXPECT_EQ(encode_v1(buf, src, dst, n), Error::ok);
    return std::string(buf, buf + n);
}

TEST(CodecV1, SpecExamplesDecode) {
    V1Header h;
    V in = bytes("PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n");
    ASSERT_EQ(decode_exact(in, h), Error::ok);
    EXPECT_EQ(h.protocol, V1Protocol::tcp4);
    EXPECT_EQ(h.source.addr.to_string(), "192.0.2.0");
    EXPECT_EQ(h.source.port, 42300);
    EXPECT_EQ(h.destination.addr.to_string(), "192.0.2.255");
    EXPECT_EQ(h.destination.port, 443);
    EXPECT_TRUE(h.source.addr.is_v4());
    EXPECT_EQ(h.length, 44u);

    in = bytes("PROXY TCP6 2001:db8:: 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff 42300 443\r\n");
    ASSERT_EQ(decode_exact(in, h), Error::ok);
    EXPECT_EQ(h.protocol, V1Protocol::tcp6);
    EXPECT_EQ(h.source, ep("2001:db8::", 42300));
    EXPECT_EQ(h.destination, ep("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 443));
    EXPECT_EQ(h.length, in.size());
}

TEST(CodecV1, SpecExamplesEncodeByteExact) {
    // "PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n", spelled out byte by byte.
    const V tcp4 = {'P', 'R', 'O', 'X', 'Y', ' ', 'T', 'C', 'P', '4', ' ', '1', '9',  '2', '.',
                    '0', '.', '2', '.', '0', ' ', '1', '9', '2', '.', '0', '.', '2',  '.', '2',
                    '5', '5', ' ', '4', '2', '3', '0', '0', ' ', '4', '4', '3', 0x0D, 0x0A};
    EXPECT_EQ(bytes(encode(ep("192.0.2.0", 42300), ep("192.0.2.255", 443))), tcp4);
    EXPECT_EQ(encode(ep("2001:db8::", 42300), ep("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 443)),
              "PROXY TCP6 2001:db8:: 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff 42300 443\r\n");
}

TEST(CodecV1, MixedFamiliesUseTcp6WithMappedIpv4) {
    // An IPv6 client to an IPv4 address: TCP6, the IPv4 side in mapped form.
    EXPECT_EQ(encode(ep("2001:db8::7", 1), ep("192.0.2.1", 2)),
              "PROXY TCP6 2001:db8::7 ::ffff:192.0.2.1 1 2\r\n");
    EXPECT_EQ(encode(ep("192.0.2.1", 2), ep("2001:db8::7", 1)),
              "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::7 2 1\r\n");
    // An IPv4-mapped IPv6 client (a dual-stack socket) to an IPv4 address: plain TCP4.
    EXPECT_EQ(encode(ep("::ffff:192.0.2.9", 5), ep("192.0.2.1", 6)),
              "PROXY TCP4 192.0.2.9 192.0.2.1 5 6\r\n");
    EXPECT_FALSE(needs_ipv6(ep("::ffff:192.0.2.9", 5), ep("192.0.2.1", 6)));
    EXPECT_TRUE(needs_ipv6(ep("2001:db8::7", 1), ep("192.0.2.1", 2)));
}

TEST(CodecV1, RoundTripsEveryProtocol) {
    struct Case {
        Endpoint src, dst;
        V1Protocol want;
    };
    for (const auto &c : {Case{ep("0.0.0.0", 0), ep("255.255.255.255", 65535), V1Protocol::tcp4},
                          Case{ep("10.1.2.3", 1), ep("10.3.2.1", 80), V1Protocol::tcp4},
                          Case{ep("::", 0), ep("::1", 65535), V1Protocol::tcp6},
                          Case{ep("fe80::1:2", 4000), ep("2001:db8:0:1::", 53), V1Protocol::tcp6},
                          Case{ep("2001:db8::5", 7), ep("198.51.100.1", 8), V1Protocol::tcp6}}) {
        std::string line = encode(c.src, c.dst);
        V1Header h;
        ASSERT_EQ(decode_exact(bytes(line), h), Error::ok) << line;
        EXPECT_EQ(h.protocol, c.want) << line;
        EXPECT_EQ(h.source, c.src) << line;
        EXPECT_EQ(h.destination, c.dst) << line;
        EXPECT_EQ(h.length, line.size());
    }
    std::uint8_t buf[kV1MaxLen];
    std::size_t n = 0;
    ASSERT_EQ(encode_v1_unknown(buf, n), Error::ok);
    EXPECT_EQ(std::string(buf, buf + n), "PROXY UNKNOWN\r\n");
    V1Header h;
    ASSERT_EQ(decode_exact(V(buf, buf + n), h), Error::ok);
    EXPECT_EQ(h.protocol, V1Protocol::unknown);
    EXPECT_EQ(h.length, 15u);
}

TEST(CodecV1, UnknownTakesAnythingUpToCrlf) {
    V1Header h;
    V in = bytes("PROXY UNKNOWN  what\tever 1 2 3\r\nGET / HTTP/1.1\r\n");
    ASSERT_EQ(decode_exact(in, h), Error::ok);
    EXPECT_EQ(h.protocol, V1Protocol::unknown);
    EXPECT_EQ(h.length, 32u);
    EXPECT_EQ(h.source, Endpoint{});
}

TEST(CodecV1, LongestLinesOfTheSpecification) {
    std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    std::string tcp4 = encode(ep("255.255.255.255", 65535), ep("255.255.255.255", 65535));
    EXPECT_EQ(tcp4.size(), 56u);
    std::string tcp6 = encode(ep(ffff.c_str(), 65535), ep(ffff.c_str(), 65535));
    EXPECT_EQ(tcp6.size(), 104u);
    V1Header h;
    EXPECT_EQ(decode_exact(bytes(tcp6), h), Error::ok);
    std::string worst = "PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n";
    ASSERT_EQ(worst.size(), kV1MaxLen);
    EXPECT_EQ(decode_exact(bytes(worst), h), Error::ok);
    EXPECT_EQ(h.length, 107u);
}

TEST(CodecV1, TheCrlfMustEndWithinTheFirst107Bytes) {
    V1Header h;
    std::string pad(91, 'x');  // "PROXY UNKNOWN " + 91 + CRLF = 107
    EXPECT_EQ(decode_exact(bytes("PROXY UNKNOWN " + pad + "\r\n"), h), Error::ok);
    // One more byte: the LF is byte 108.
    Status s = decode_exact(bytes("PROXY UNKNOWN " + pad + "x\r\n"), h);
    EXPECT_EQ(s, Error::v1_no_crlf);
    // 107 bytes and still no CR: nothing more can make it valid.
    EXPECT_EQ(decode_exact(bytes("PROXY UNKNOWN " + pad + "xx"), h), Error::v1_no_crlf);
    // The 107th byte is a CR: its LF cannot be within the limit, even before it arrives.
    EXPECT_EQ(decode_exact(bytes("PROXY UNKNOWN " + pad + "x\r"), h), Error::v1_no_crlf);
    // 106 bytes without CRLF: could still end in time.
    EXPECT_EQ(decode_exact(bytes("PROXY UNKNOWN " + pad + "x"), h), Error::need_more);
    EXPECT_EQ(decode_exact(bytes("PROXY UNKNOWN " + std::string(200, 'y')), h), Error::v1_no_crlf);
}

TEST(CodecV1, EveryTruncationNeedsMore) {
    std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    for (std::string line : {std::string("PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n"),
                             std::string("PROXY TCP6 2001:db8:: 2001:db8::1 1 2\r\n"),
                             std::string("PROXY UNKNOWN\r\n"),
                             "PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n"}) {
        V full = bytes(line);
        for (std::size_t len = 0; len < full.size(); len++) {
            V1Header h;
            Status s = decode_exact(V(full.begin(), full.begin() + static_cast<long>(len)), h);
            EXPECT_EQ(s, Error::need_more) << line << " cut at " << len << ": " << s;
        }
        V1Header h;
        EXPECT_EQ(decode_exact(full, h), Error::ok) << line;
    }
}

// Every RFC 4291 text form of an IPv6 address is the address: RFC 5952 senders (Go, Python,
// HAProxy) write ::1:2 where glibc writes ::0.1.0.2, others do not compress at all.
TEST(CodecV1, EveryIpv6TextFormIsAccepted) {
    struct Form {
        const char *text;
        const char *address;
    };
    for (auto [text, address] : std::initializer_list<Form>{
             {"::1:2", "::0.1.0.2"},
             {"::0.1.0.2", "::1:2"},
             {"2001:0db8::1", "2001:db8::1"},
             {"2001:db8:0:0:0:0:0:1", "2001:db8::1"},
             {"2001:DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
             {"2001:db8:0:0:1::1", "2001:db8::1:0:0:1"},
             {"::ffff:c000:201", "::ffff:192.0.2.1"},
             {"::", "0::0"},
         }) {
        V1Header h;
        std::string line = std::string("PROXY TCP6 ") + text + " " + text + " 1 2\r\n";
        ASSERT_EQ(decode_exact(bytes(line), h), Error::ok) << line;
        EXPECT_EQ(h.source, ep(address, 1)) << line;
        EXPECT_EQ(h.destination, ep(address, 2)) << line;
    }
}

TEST(CodecV1, CanonicalAddressForms) {
    V1Header h;
    // Upper-case hex digits are allowed (the specification says "upper or lower case").
    ASSERT_EQ(decode_exact(bytes("PROXY TCP6 2001:DB8::A 2001:db8::b 1 2\r\n"), h), Error::ok);
    EXPECT_EQ(h.source, ep("2001:db8::a", 1));
    // IPv4-mapped IPv6 is a valid IPv6 text under TCP6.
    ASSERT_EQ(decode_exact(bytes("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n"), h), Error::ok);
    EXPECT_EQ(h.source.addr, IpAddress::v4({192, 0, 2, 1}));
    ASSERT_EQ(decode_exact(bytes("PROXY TCP4 0.0.0.0 10.0.0.10 0 65535\r\n"), h), Error::ok);
    EXPECT_EQ(h.destination, ep("10.0.0.10", 65535));
    EXPECT_EQ(h.source.port, 0);
}

struct Malformed {
    const char *form;
    std::string line;
    Error want;
    std::uint32_t offset;  // where the decoder points
};

std::vector<Malformed> malformed_lines() {
    const std::string ok_tail = " 1.2.3.4 5.6.7.8 1 2\r\n";
    return {
        {"not PROXY", "PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n", Error::v1_bad_prefix, 4},
        {"lower-case proxy", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", Error::v1_bad_prefix, 0},
        {"no space after PROXY", "PROXY\r\n", Error::v1_bad_prefix, 5},
        {"over 107 bytes", "PROXY TCP4 " + std::string(120, '1'), Error::v1_no_crlf, 107},
        {"lone CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", Error::v1_lone_cr, 30},
        {"CR CR LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", Error::v1_lone_cr, 30},
        {"lone LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", Error::v1_lone_lf, 30},
        {"LF before CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r", Error::v1_lone_lf, 30},
        {"UDP4", "PROXY UDP4" + ok_tail, Error::v1_bad_protocol, 6},
        {"tcp4 lower case", "PROXY tcp4" + ok_tail, Error::v1_bad_protocol, 6},
        {"UNKNOWNX", "PROXY UNKNOWNX\r\n", Error::v1_bad_protocol, 6},
        {"double space", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", Error::v1_empty_field, 19},
        {"two spaces after PROXY", "PROXY  TCP4" + ok_tail, Error::v1_empty_field, 6},
        {"trailing space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", Error::v1_empty_field, 31},
        {"nothing after PROXY", "PROXY \r\n", Error::v1_empty_field, 6},
        {"too few fields", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", Error::v1_field_count, 6},
        {"protocol alone", "PROXY TCP6\r\n", Error::v1_field_count, 6},
        {"too many fields", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", Error::v1_field_count, 6},
        {"octet over 255", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", Error::v1_bad_source_address,
         11},
        {"three octets", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", Error::v1_bad_source_address, 11},
        {"five octets", "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", Error::v1_bad_source_address, 11},
        {"NUL in address", std::string("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 33),
         Error::v1_bad_source_address, 11},
        {"host name", "PROXY TCP4 1.2.3.4 localhost 1 2\r\n", Error::v1_bad_destination_address,
         19},
        {"triple colon", "PROXY TCP6 ::1 2001:db8:::2 1 2\r\n", Error::v1_bad_destination_address,
         15},
        {"IPv6 zone", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", Error::v1_bad_source_address, 11},
        {"IPv4 leading zero", "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
         Error::v1_noncanonical_source_address, 11},
        {"IPv4 leading zeros (dst)", "PROXY TCP4 1.2.3.4 5.6.7.008 1 2\r\n",
         Error::v1_noncanonical_destination_address, 19},
        {"IPv6 under TCP4", "PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
         Error::v1_address_family_mismatch, 11},
        {"mapped IPv6 under TCP4", "PROXY TCP4 1.2.3.4 ::ffff:5.6.7.8 1 2\r\n",
         Error::v1_address_family_mismatch, 19},
        {"IPv4 under TCP6", "PROXY TCP6 2001:db8::1 5.6.7.8 1 2\r\n",
         Error::v1_address_family_mismatch, 23},
        {"port 65536", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", Error::v1_bad_source_port, 27},
        {"port leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", Error::v1_bad_source_port, 27},
        {"port 00", "PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n", Error::v1_bad_source_port, 27},
        {"port plus sign", "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", Error::v1_bad_source_port, 27},
        {"port hex", "PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n", Error::v1_bad_source_port, 27},
        {"port minus sign", "PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", Error::v1_bad_destination_port,
         29},
        {"port 99999", "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", Error::v1_bad_destination_port,
         29},
        {"port 4430000", "PROXY TCP4 1.2.3.4 5.6.7.8 1 4430000\r\n", Error::v1_bad_destination_port,
         29},
    };
}

TEST(CodecV1, EveryMalformedFormIsRejectedWithItsReason) {
    for (const auto &c : malformed_lines()) {
        V1Header h;
        Status s = decode_exact(bytes(c.line), h);
        EXPECT_EQ(s.error, c.want) << c.form << ": " << s;
        EXPECT_EQ(s.offset, c.offset) << c.form << ": " << s;
        EXPECT_TRUE(malformed(s)) << c.form;
    }
}

TEST(CodecV1, EachReasonHasItsOwnSentence) {
    std::set<Error> errors;
    std::set<std::string_view> sentences;
    for (const auto &c : malformed_lines()) {
        errors.insert(c.want);
        sentences.insert(describe(c.want));
    }
    EXPECT_EQ(errors.size(), 14u);  // every v1 reason is exercised above
    EXPECT_EQ(sentences.size(), errors.size());
    for (std::string_view s : sentences) {
        EXPECT_EQ(s.substr(0, 4), "v1: ") << s;
    }
}

TEST(CodecV1, ReasonsCarryTheirDetails) {
    V1Header h;
    auto why = [&](const std::string &line) { return describe(decode_exact(bytes(line), h)); };
    EXPECT_EQ(why("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), "v1: CR at offset 30 not followed by LF");
    EXPECT_EQ(why("PROXY TCP6 2001:db8::1 5.6.7.8 1 2\r\n"),
              "v1: destination address at offset 23 is IPv4 under TCP6");
    EXPECT_EQ(why("PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n"),
              "v1: source address at offset 11 is IPv6 under TCP4");
    EXPECT_EQ(why("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
              "v1: 4 fields after \"PROXY\"; TCP4/TCP6 lines have 5 (protocol, source and "
              "destination addresses, source and destination ports)");
    Status s = decode_exact(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"), h);
    EXPECT_EQ(describe(s, false),
              "destination port at offset 29 is not 0..65535 without sign or leading zeros");
}

TEST(CodecV1, EncodingIntoTooSmallBuffersFailsCleanly) {
    std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    Endpoint a = ep(ffff.c_str(), 65535), b = ep("2001:db8::1", 1);
    std::size_t full = encode(a, b).size();
    for (std::size_t size = 0; size < full; size++) {
        V buf(size, 0xAA);
        std::size_t n = 12345;
        EXPECT_EQ(encode_v1(buf, a, b, n), Error::buffer_too_small) << size;
        EXPECT_EQ(n, 12345u) << "written untouched";
        EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](auto v) { return v == 0xAA; }))
            << "nothing written at size " << size;
    }
    V exact(full);
    std::size_t n = 0;
    EXPECT_EQ(encode_v1(exact, a, b, n), Error::ok);
    EXPECT_EQ(n, full);
    V small(14);
    EXPECT_EQ(encode_v1_unknown(small, n), Error::buffer_too_small);
}

TEST(CodecV1, MutatedLinesStayWithinTheirBytes) {
    // Bounded, deterministic mutation of valid lines with the characters that matter: an
    // accepted line lies within the input and ends with its CRLF.
    const std::string alphabet = "0123456789abcdefABCDEF.: \r\nPTCUNK46x";
    std::mt19937 rng(54321);
    std::vector<std::string> seeds = {"PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n",
                                      "PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 1 65535\r\n",
                                      "PROXY UNKNOWN\r\n"};
    for (int round = 0; round < 20000; round++) {
        V in = bytes(seeds[rng() % seeds.size()]);
        for (int k = rng() % 3; k >= 0; k--) {
            in[rng() % in.size()] = static_cast<std::uint8_t>(alphabet[rng() % alphabet.size()]);
        }
        in.resize(rng() % (in.size() + 1));
        V1Header h;
        Status s = decode_exact(in, h);
        if (s.ok()) {
            ASSERT_LE(h.length, in.size());
            EXPECT_EQ(in[h.length - 2], '\r');
            EXPECT_EQ(in[h.length - 1], '\n');
        }
    }
}

}  // namespace
