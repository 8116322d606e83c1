// `ppinject decode` as a user runs it: headers on stdin (raw or --hex), the readable form
// and --json, one-line errors with exit status 1.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace {

using nlohmann::json;

pptest::ProcessResult decode(std::vector<std::string> flags, const std::string &in) {
    flags.insert(flags.begin(), {pptest::ppinject_binary(), "decode"});
    return pptest::run_process(flags, in);
}

bool has(const std::string &out, const std::string &what) {
    return out.find(what) != std::string::npos;
}

std::string unhex(const std::string &hex) {
    std::string out;
    std::string digits;
    for (char c : hex) {
        if (std::isxdigit(static_cast<unsigned char>(c))) {
            digits += c;
        }
    }
    for (std::size_t i = 0; i + 1 < digits.size(); i += 2) {
        out.push_back(static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16)));
    }
    return out;
}

// PROXY v2, INET STREAM 192.0.2.10:42300 -> 203.0.113.5:443, one TLV of each kind and a
// CRC32C, written out by hand (the CRC computed with an independent bitwise CRC32c).
const std::string kV2Tlvs =
    "0d0a0d0a000d0a515549540a 2111 006f\n"
    "c000020a cb007105 a53c 01bb\n"
    "01 0002 6832\n"                            // ALPN h2
    "02 000b 6578616d706c652e636f6d\n"          // AUTHORITY example.com
    "05 0004 deadbeef\n"                        // UNIQUE_ID
    "04 0002 0000\n"                            // NOOP
    "30 0004 626c7565\n"                        // NETNS blue
    "ea 0007 01 7670 6365 2d31\n"               // custom 0xEA: 01 "vpce-1"
    "20 0029 07 00000000\n"                     // SSL: SSL|CERT_CONN|CERT_SESS, verify 0
    "  21 0007 544c5376312e33\n"                //   VERSION TLSv1.3
    "  22 000e 636c69656e742e6578616d706c65\n"  //   CN client.example
    "  26 0006 783235353139\n"                  //   GROUP x25519
    "03 0004 62c3bbae\n";                       // CRC32C

// SPP: [2001:db8::5]:1 sent to 203.0.113.5:53 (IPv4 mapped).
const std::string kSpp =
    "56ec 20010db8000000000000000000000005 00000000000000000000ffffcb007105 0001 0035";

TEST(DecodeCli, SpecV1ExamplesPrintAddressesAndPorts) {
    auto r = decode({}, "PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out,
              "PROXY v1 TCP4\n"
              "  source       192.0.2.0:42300\n"
              "  destination  192.0.2.255:443\n"
              "  header       44 bytes\n");

    r = decode({}, "PROXY TCP6 2001:db8:: 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff 42300 443\r\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(has(r.out, "PROXY v1 TCP6")) << r.out;
    EXPECT_TRUE(has(r.out, "source       [2001:db8::]:42300")) << r.out;
    EXPECT_TRUE(has(r.out, "destination  [2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:443")) << r.out;

    r = decode({"--json"}, "PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\nGET / HTTP/1.0\r\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["format"], "PROXY v1");
    EXPECT_EQ(j["version"], 1);
    EXPECT_EQ(j["protocol"], "TCP4");
    EXPECT_EQ(j["family"], "INET");
    EXPECT_EQ(j["source"]["address"], "192.0.2.0");
    EXPECT_EQ(j["source"]["port"], 42300);
    EXPECT_EQ(j["destination"]["address"], "192.0.2.255");
    EXPECT_EQ(j["destination"]["port"], 443);
    EXPECT_EQ(j["header_length"], 44);
    EXPECT_EQ(j["trailing_bytes"], 16);
}

TEST(DecodeCli, V1UnknownHasNoAddresses) {
    auto r = decode({"--json"}, "PROXY UNKNOWN\r\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["protocol"], "UNKNOWN");
    EXPECT_FALSE(j.contains("source"));
    EXPECT_EQ(j["header_length"], 15);
}

TEST(DecodeCli, V2WithEveryTlvAsText) {
    auto r = decode({"--hex"}, kV2Tlvs);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char *line :
         {"PROXY v2 PROXY INET STREAM\n", "  source       192.0.2.10:42300\n",
          "  destination  203.0.113.5:443\n", "  TLV 0x01 ALPN            h2\n",
          "  TLV 0x02 AUTHORITY       example.com\n", "  TLV 0x05 UNIQUE_ID       0xdeadbeef\n",
          "  TLV 0x04 NOOP            2 bytes\n", "  TLV 0x30 NETNS           blue\n",
          "  TLV 0xEA CUSTOM          0x01767063652d31\n",
          "  TLV 0x20 SSL             client 0x07 (SSL, CERT_CONN, CERT_SESS), "
          "verify 0 (ok)\n",
          "    sub 0x21 SSL_VERSION     TLSv1.3\n", "    sub 0x22 SSL_CN          client.example\n",
          "    sub 0x26 SSL_GROUP       x25519\n", "  TLV 0x03 CRC32C          0x62c3bbae ok\n",
          "  header       127 bytes\n"}) {
        EXPECT_TRUE(has(r.out, line)) << "missing: " << line << "in:\n" << r.out;
    }
    EXPECT_FALSE(has(r.out, "payload")) << r.out;
}

TEST(DecodeCli, V2WithEveryTlvAsJson) {
    auto r = decode({"--hex", "--json"}, kV2Tlvs + "7061796c6f6164");  // + "payload"
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["format"], "PROXY v2");
    EXPECT_EQ(j["version"], 2);
    EXPECT_EQ(j["command"], "PROXY");
    EXPECT_EQ(j["family"], "INET");
    EXPECT_EQ(j["transport"], "STREAM");
    EXPECT_EQ(j["source"], (json{{"address", "192.0.2.10"}, {"port", 42300}}));
    EXPECT_EQ(j["destination"], (json{{"address", "203.0.113.5"}, {"port", 443}}));
    EXPECT_EQ(j["header_length"], 127);
    EXPECT_EQ(j["trailing_bytes"], 7);
    const auto &t = j["tlvs"];
    ASSERT_EQ(t.size(), 8u);
    EXPECT_EQ(t[0]["name"], "ALPN");
    EXPECT_EQ(t[0]["value"], "h2");
    EXPECT_EQ(t[1]["value"], "example.com");
    EXPECT_EQ(t[2]["name"], "UNIQUE_ID");
    EXPECT_EQ(t[2]["value_hex"], "deadbeef");
    EXPECT_EQ(t[3]["name"], "NOOP");
    EXPECT_EQ(t[3]["length"], 2);
    EXPECT_EQ(t[4]["value"], "blue");
    EXPECT_EQ(t[5]["type"], 0xEA);
    EXPECT_EQ(t[5]["name"], "CUSTOM");
    EXPECT_EQ(t[5]["value_hex"], "01767063652d31");
    EXPECT_EQ(t[6]["name"], "SSL");
    EXPECT_EQ(t[6]["client"], 7);
    EXPECT_EQ(t[6]["client_flags"], (json{"SSL", "CERT_CONN", "CERT_SESS"}));
    EXPECT_EQ(t[6]["verify"], 0);
    ASSERT_EQ(t[6]["sub_tlvs"].size(), 3u);
    EXPECT_EQ(t[6]["sub_tlvs"][0]["name"], "SSL_VERSION");
    EXPECT_EQ(t[6]["sub_tlvs"][0]["value"], "TLSv1.3");
    EXPECT_EQ(t[6]["sub_tlvs"][1]["name"], "SSL_CN");
    EXPECT_EQ(t[6]["sub_tlvs"][1]["value"], "client.example");
    EXPECT_EQ(t[6]["sub_tlvs"][2]["type"], 0x26);
    EXPECT_EQ(t[6]["sub_tlvs"][2]["value"], "x25519");
    EXPECT_EQ(t[7]["name"], "CRC32C");
    EXPECT_EQ(t[7]["value_hex"], "62c3bbae");
    EXPECT_EQ(t[7]["crc32c"], "ok");
}

TEST(DecodeCli, V2LocalAndIpv6) {
    auto r = decode({"--hex"}, "0d0a0d0a000d0a515549540a 2000 0000");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(has(r.out, "PROXY v2 LOCAL UNSPEC UNSPEC\n")) << r.out;
    EXPECT_TRUE(has(r.out, "LOCAL: the receiver uses the connection's own addresses")) << r.out;
    EXPECT_TRUE(has(r.out, "header       16 bytes")) << r.out;

    // UDP over IPv6, the destination an IPv4-mapped address: shown as it travels.
    r = decode({"--hex", "--json"},
               "0d0a0d0a000d0a515549540a 2122 0024"
               "20010db8000000000000000000000001 00000000000000000000ffffc0000201 cf08 0035");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["family"], "INET6");
    EXPECT_EQ(j["transport"], "DGRAM");
    EXPECT_EQ(j["source"]["address"], "2001:db8::1");
    EXPECT_EQ(j["source"]["port"], 53000);
    EXPECT_EQ(j["destination"]["address"], "::ffff:192.0.2.1");
    EXPECT_EQ(j["destination"]["port"], 53);
    EXPECT_EQ(j["tlvs"], json::array());
}

TEST(DecodeCli, SppRawAndHex) {
    auto r = decode({}, unhex(kSpp) + "payload");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(has(r.out, "SPP (Simple Proxy Protocol)\n")) << r.out;
    EXPECT_TRUE(has(r.out, "  source       [2001:db8::5]:1 (client)\n")) << r.out;
    EXPECT_TRUE(has(r.out, "  destination  203.0.113.5:53 (proxy")) << r.out;
    EXPECT_TRUE(has(r.out, "  header       38 bytes\n")) << r.out;
    EXPECT_TRUE(has(r.out, "  payload after header: 7 bytes\n")) << r.out;

    r = decode({"--hex", "--json"}, kSpp);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["format"], "SPP");
    EXPECT_EQ(j["transport"], "DGRAM");
    EXPECT_EQ(j["source"], (json{{"address", "2001:db8::5"}, {"port", 1}}));
    EXPECT_EQ(j["destination"], (json{{"address", "203.0.113.5"}, {"port", 53}}));
    EXPECT_EQ(j["header_length"], 38);
    EXPECT_EQ(j["trailing_bytes"], 0);
}

TEST(DecodeCli, HexIgnoresWhitespaceColonsAndPrefixes) {
    auto raw = decode({"--json"}, unhex(kV2Tlvs));
    ASSERT_EQ(raw.exit_code, 0) << raw.err;
    // The same bytes as "0xNN" words separated by ':' and newlines, in upper case.
    std::string digits, spelled;
    for (char c : kV2Tlvs) {
        if (std::isxdigit(static_cast<unsigned char>(c))) {
            digits += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
    }
    for (std::size_t i = 0; i < digits.size(); i += 2) {
        spelled += (i % 32 == 0 ? "\n0x" : ":0X") + digits.substr(i, 2);
    }
    auto hex = decode({"--hex", "--json"}, spelled + "\n");
    ASSERT_EQ(hex.exit_code, 0) << hex.err << spelled;
    EXPECT_EQ(hex.out, raw.out);
}

TEST(DecodeCli, FailuresExitOneWithOneLineReason) {
    struct Case {
        std::vector<std::string> flags;
        std::string in;
        std::string err;  // the whole of stderr
    };
    std::vector<Case> cases = {
        {{"--hex"},
         "0d0a0d0a000d0a515549540a 2111 0008 c000020a cb007105",
         "ppinject decode: malformed PROXY v2 header: length is shorter than the INET address "
         "block: 8 < 12\n"},
        {{"--hex"},
         "0d0a0d0a000d0a515549540a 3111 000c",
         "ppinject decode: malformed PROXY v2 header: version 3 is not 2\n"},
        {{"--hex"},
         "0d0a0d0a000d0a515549540a 2113 000c",
         "ppinject decode: malformed PROXY v2 header: family/transport byte 0x13 is not one of "
         "00 11 12 21 22 31 32 (UNSPEC, TCP4, UDP4, TCP6, UDP6, UNIX stream, UNIX dgram)\n"},
        {{"--hex"},
         "0d0a0d0a000d0a515549540a 2111 0013 c000020a cb007105 a53c 01bb 03 0004 deadbeef",
         "ppinject decode: malformed PROXY v2 header: CRC32C mismatch: the header says "
         "0xdeadbeef, its bytes give 0x"},
        {{},
         "PROXY TCP4 192.0.2.0 192.0.2.255 42300 4430000\r\n",
         "ppinject decode: malformed PROXY v1 header: destination port at offset 39 is not "
         "0..65535 without sign or leading zeros\n"},
        {{},
         "PROXY TCP4 192.0.2.0  192.0.2.255 42300 443\r\n",
         "ppinject decode: malformed PROXY v1 header: empty field at offset 21 (fields are "
         "separated by exactly one space)\n"},
        {{},
         "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
         "ppinject decode: malformed PROXY v1 header: LF "
         "at offset 30 without a CR before it\n"},
        {{"--hex"},
         "56ed",
         "ppinject decode: malformed SPP header: bad magic 0x56ed (expected "
         "0x56EC)\n"},
        {{},
         "PROXY TCP4 192.0.2.0 192.0.2.255",
         "ppinject decode: incomplete header: need more bytes (incomplete PROXY v1 header: 32 "
         "bytes, no CRLF yet)\n"},
        {{"--hex"},
         "0d0a0d0a000d0a515549540a 2111 000c c000020a",
         "ppinject decode: incomplete header: need more bytes (incomplete PROXY v2 header: 20 of "
         "28 bytes)\n"},
        {{"--hex"},
         "56ec 0000",
         "ppinject decode: incomplete header: need more bytes (incomplete "
         "SPP header: 4 of 38 bytes)\n"},
        {{},
         "GET / HTTP/1.1\r\n",
         "ppinject decode: not a PROXY v1, PROXY v2 or SPP header "
         "(first byte 0x47)\n"},
        {{"--hex"}, "0d0a0g", "ppinject decode: invalid hex character 'g' at offset 5\n"},
        {{"--hex"}, "0d0", "ppinject decode: odd number of hex digits\n"},
        {{},
         "",
         "ppinject decode: no input: stdin is empty (pipe a header in, or hex text with "
         "--hex)\n"},
        {{"--hex"}, " \n\t", "ppinject decode: no input: stdin has no hex digits\n"},
    };
    for (const auto &c : cases) {
        auto r = decode(c.flags, c.in);
        EXPECT_EQ(r.exit_code, 1) << c.in;
        EXPECT_EQ(r.out, "") << c.in;
        EXPECT_EQ(r.err.substr(0, c.err.size()), c.err) << c.in;
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    }
}

}  // namespace
