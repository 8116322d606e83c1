// SNI from a TLS ClientHello: hellos built field by field here (record header, handshake
// header, version, random, session id, cipher suites, compression, extensions), plus one
// captured from `openssl s_client -servername example.test`. Found names (1 and 255
// bytes), no_sni and not_tls forms, every truncation of every valid hello, lengths that
// contradict each other, and mutated hellos; each call gets an exact-size heap copy so a
// read past the input is a real overread that valgrind or AddressSanitizer reports.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tcp/sni.hpp"

namespace {

using ppinject::tcp::find_sni;
using ppinject::tcp::SniResult;
using V = std::vector<std::uint8_t>;

// ---- results --------------------------------------------------------------------------------

// find_sni's answer with the name copied out, so it outlives the input and prints in
// failure messages.
struct Got {
    SniResult::Kind kind = SniResult::need_more;
    std::string name;
    friend bool operator==(const Got &, const Got &) = default;
};

const char *kind_name(SniResult::Kind k) {
    switch (k) {
        case SniResult::need_more:
            return "need_more";
        case SniResult::not_tls:
            return "not_tls";
        case SniResult::no_sni:
            return "no_sni";
        case SniResult::found:
            return "found";
    }
    return "?";
}

void PrintTo(const Got &g, std::ostream *os) {
    *os << kind_name(g.kind);
    if (g.kind == SniResult::found) {
        *os << " \"" << g.name << "\"";
    }
}

Got need_more() {
    return {SniResult::need_more, {}};
}
Got not_tls() {
    return {SniResult::not_tls, {}};
}
Got no_sni() {
    return {SniResult::no_sni, {}};
}
Got found(std::string name) {
    return {SniResult::found, std::move(name)};
}

// Runs find_sni on an exact-size heap copy of `in`: one byte past it is outside the heap
// block, which valgrind (and ASan) report. A found name must be a view inside the input,
// and only `found` may carry one.
Got sni(const V &in) {
    auto copy = std::make_unique<std::uint8_t[]>(in.size());
    std::copy(in.begin(), in.end(), copy.get());
    const std::uint8_t *begin = copy.get();
    SniResult r = find_sni(std::span<const std::uint8_t>(begin, in.size()));
    if (r.kind == SniResult::found) {
        auto *p = reinterpret_cast<const std::uint8_t *>(r.name.data());
        EXPECT_FALSE(r.name.empty());
        EXPECT_TRUE(p >= begin && p + r.name.size() <= begin + in.size())
            << "the name is not a view into the input";
    } else {
        EXPECT_TRUE(r.name.empty()) << kind_name(r.kind) << " with a name";
    }
    return {r.kind, std::string(r.name)};
}

// ---- building ClientHellos ------------------------------------------------------------------

void u8(V &v, unsigned x) {
    v.push_back(static_cast<std::uint8_t>(x));
}
void u16(V &v, unsigned x) {
    u8(v, x >> 8);
    u8(v, x);
}
void u24(V &v, unsigned x) {
    u8(v, x >> 16);
    u16(v, x & 0xFFFF);
}
void put16(V &v, std::size_t at, unsigned x) {
    v.at(at) = static_cast<std::uint8_t>(x >> 8);
    v.at(at + 1) = static_cast<std::uint8_t>(x);
}
unsigned get16(const V &v, std::size_t at) {
    return unsigned{v.at(at)} << 8 | v.at(at + 1);
}
void append(V &v, std::string_view s) {
    v.insert(v.end(), s.begin(), s.end());
}
V bytes_of(std::string_view s) {
    return V(s.begin(), s.end());
}

struct Extension {
    unsigned type;
    V body;
};

// server_name (RFC 6066 section 3): a list of (name_type, name); host_name is type 0.
Extension server_name(const std::vector<std::pair<unsigned, std::string>> &names) {
    V list;
    for (const auto &[type, name] : names) {
        u8(list, type);
        u16(list, name.size());
        append(list, name);
    }
    V body;
    u16(body, list.size());
    body.insert(body.end(), list.begin(), list.end());
    return {0x0000, body};
}
Extension host_name(const std::string &name) {
    return server_name({{0, name}});
}
// supported_versions (RFC 8446 4.2.1): TLS 1.3 and 1.2.
Extension supported_versions() {
    return {0x002B, {0x04, 0x03, 0x04, 0x03, 0x03}};
}
// ALPN (RFC 7301): "h2", "http/1.1".
Extension alpn() {
    V list;
    for (std::string_view p : {"h2", "http/1.1"}) {
        u8(list, p.size());
        append(list, p);
    }
    V body;
    u16(body, list.size());
    body.insert(body.end(), list.begin(), list.end());
    return {0x0010, body};
}
// supported_groups (RFC 8446 4.2.7): x25519, secp256r1.
Extension supported_groups() {
    return {0x000A, {0x00, 0x04, 0x00, 0x1D, 0x00, 0x17}};
}

// A ClientHello in one TLS record; every length is computed unless a test overrides the
// bytes afterwards (the offsets of the length fields are kept for that).
struct Hello {
    std::uint8_t record_type = 0x16;  // handshake
    std::uint8_t handshake_type = 0x01;
    V session_id = V(32, 0x5A);
    std::vector<unsigned> ciphers = {0x1301, 0x1302, 0xC02F};
    V compression = {0x00};
    bool with_extensions = true;
    std::vector<Extension> extensions = {supported_versions(), alpn(),
                                         host_name("www.example.com")};

    // Offsets in the built bytes.
    static constexpr std::size_t kRecordLenAt = 3;
    static constexpr std::size_t kHelloLenAt = 6;  // 24-bit
    static constexpr std::size_t kSessionIdLenAt = 5 + 4 + 2 + 32;
    std::size_t ciphers_len_at() const { return kSessionIdLenAt + 1 + session_id.size(); }
    std::size_t extensions_len_at() const {
        return ciphers_len_at() + 2 + 2 * ciphers.size() + 1 + compression.size();
    }
    // Offset of extension `i`'s type field.
    std::size_t extension_at(std::size_t i) const {
        std::size_t at = extensions_len_at() + 2;
        for (std::size_t k = 0; k < i; k++) {
            at += 4 + extensions[k].body.size();
        }
        return at;
    }

    V build() const {
        V hello;
        u16(hello, 0x0303);  // legacy_version TLS 1.2
        for (unsigned i = 0; i < 32; i++) {
            u8(hello, i * 7 + 1);  // random
        }
        u8(hello, session_id.size());
        hello.insert(hello.end(), session_id.begin(), session_id.end());
        u16(hello, 2 * ciphers.size());
        for (unsigned c : ciphers) {
            u16(hello, c);
        }
        u8(hello, compression.size());
        hello.insert(hello.end(), compression.begin(), compression.end());
        if (with_extensions) {
            V exts;
            for (const Extension &e : extensions) {
                u16(exts, e.type);
                u16(exts, e.body.size());
                exts.insert(exts.end(), e.body.begin(), e.body.end());
            }
            u16(hello, exts.size());
            hello.insert(hello.end(), exts.begin(), exts.end());
        }
        V out;
        u8(out, record_type);
        u16(out, 0x0301);  // record legacy_version, as clients send it
        u16(out, 4 + hello.size());
        u8(out, handshake_type);
        u24(out, hello.size());
        out.insert(out.end(), hello.begin(), hello.end());
        return out;
    }
};

// The builder itself: the record and handshake lengths add up, the offsets point at them.
TEST(TcpSniBuilder, LengthsAndOffsetsAddUp) {
    Hello h;
    V b = h.build();
    EXPECT_EQ(get16(b, Hello::kRecordLenAt), b.size() - 5);
    EXPECT_EQ(b[Hello::kHelloLenAt], 0);
    EXPECT_EQ(get16(b, Hello::kHelloLenAt + 1), b.size() - 9);
    EXPECT_EQ(b[Hello::kSessionIdLenAt], 32);
    EXPECT_EQ(get16(b, h.ciphers_len_at()), 6u);
    EXPECT_EQ(get16(b, h.extensions_len_at()), b.size() - h.extensions_len_at() - 2);
    EXPECT_EQ(get16(b, h.extension_at(2)), 0x0000u);  // server_name, third
    EXPECT_EQ(h.extension_at(3), b.size());
}

// ---- found ----------------------------------------------------------------------------------

TEST(TcpSni, FoundAfterOtherExtensions) {
    EXPECT_EQ(sni(Hello{}.build()), found("www.example.com"));
}

TEST(TcpSni, FoundAsFirstAndOnlyExtension) {
    Hello h;
    h.extensions = {host_name("a.test")};
    EXPECT_EQ(sni(h.build()), found("a.test"));
}

TEST(TcpSni, FoundOneByteName) {
    Hello h;
    h.extensions = {supported_groups(), host_name("x")};
    EXPECT_EQ(sni(h.build()), found("x"));
}

// 255 bytes is the longest DNS name (RFC 1035), and the longest name header.cpp puts into
// AUTHORITY: it must come back whole.
TEST(TcpSni, Found255ByteName) {
    std::string name;
    while (name.size() < 255) {
        name += std::string(std::min<std::size_t>(62, 254 - name.size()), 'a') + ".";
    }
    name.back() = 'z';  // no trailing dot
    ASSERT_EQ(name.size(), 255u);
    Hello h;
    h.extensions = {supported_versions(), alpn(), host_name(name)};
    EXPECT_EQ(sni(h.build()), found(name));
}

// A session id of 0 bytes (TLS 1.2 clients without resumption), many cipher suites, an
// old record version 3.0: still read.
TEST(TcpSni, FoundWithEmptySessionIdAndLongCipherList) {
    Hello h;
    h.session_id.clear();
    h.ciphers.clear();
    for (unsigned c = 0xC000; c < 0xC040; c++) {
        h.ciphers.push_back(c);
    }
    V b = h.build();
    b[2] = 0x00;  // record version 3.0
    EXPECT_EQ(sni(b), found("www.example.com"));
}

// RFC 6066 defines only host_name (0); an entry of another type is skipped, not taken.
TEST(TcpSni, FirstServerNameEntryNotHostName) {
    Hello h;
    h.extensions = {supported_versions(), server_name({{1, "not-a-host"}, {0, "real.test"}})};
    EXPECT_EQ(sni(h.build()), found("real.test"));
}

// Bytes after the record (the client's next record) are not part of the hello.
TEST(TcpSni, BytesAfterTheRecordIgnored) {
    V b = Hello{}.build();
    V more = {0x17, 0x03, 0x03, 0x00, 0x02, 0xAA, 0xBB};
    b.insert(b.end(), more.begin(), more.end());
    EXPECT_EQ(sni(b), found("www.example.com"));
}

// ---- no_sni ---------------------------------------------------------------------------------

TEST(TcpSni, NoServerNameExtension) {
    Hello h;
    h.extensions = {supported_versions(), alpn(), supported_groups()};
    EXPECT_EQ(sni(h.build()), no_sni());
}

TEST(TcpSni, EmptyExtensionBlock) {
    Hello h;
    h.extensions.clear();
    EXPECT_EQ(sni(h.build()), no_sni());
}

// A hello that ends after compression methods (TLS 1.0-era clients): no extensions at all.
TEST(TcpSni, HelloWithoutExtensions) {
    Hello h;
    h.with_extensions = false;
    EXPECT_EQ(sni(h.build()), no_sni());
}

TEST(TcpSni, ServerNameWithoutHostName) {
    Hello h;
    h.extensions = {supported_versions(), server_name({{1, "other-type"}})};
    EXPECT_EQ(sni(h.build()), no_sni());
    h.extensions = {server_name({})};  // an empty list
    EXPECT_EQ(sni(h.build()), no_sni());
    h.extensions = {host_name("")};  // an empty host_name is no name
    EXPECT_EQ(sni(h.build()), no_sni());
}

// ---- not_tls --------------------------------------------------------------------------------

TEST(TcpSni, OtherProtocols) {
    EXPECT_EQ(sni(bytes_of("GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")), not_tls());
    EXPECT_EQ(sni(bytes_of("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")), not_tls());
    EXPECT_EQ(sni(bytes_of("PROXY TCP4 192.0.2.1 192.0.2.2 1000 443\r\n")), not_tls());
    // A PROXY v2 signature (the client forging a header in front of its hello).
    EXPECT_EQ(sni({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}),
              not_tls());
    // An SSLv2-compatible hello (high bit set in the first byte) carries no extensions.
    EXPECT_EQ(sni({0x80, 0x2E, 0x01, 0x03, 0x01}), not_tls());
    // One byte is enough to tell: a client that sends "G" and waits must not be waited for.
    EXPECT_EQ(sni(bytes_of("G")), not_tls());
}

TEST(TcpSni, NotAHandshakeRecord) {
    Hello h;
    h.record_type = 0x17;  // application_data
    EXPECT_EQ(sni(h.build()), not_tls());
    h.record_type = 0x15;  // alert
    EXPECT_EQ(sni(h.build()), not_tls());
}

TEST(TcpSni, RecordVersionMajorNot3) {
    V b = Hello{}.build();
    b[1] = 0x02;
    EXPECT_EQ(sni(b), not_tls());
}

TEST(TcpSni, HandshakeNotClientHello) {
    Hello h;
    h.handshake_type = 0x02;  // ServerHello
    EXPECT_EQ(sni(h.build()), not_tls());
    h.handshake_type = 0x00;
    EXPECT_EQ(sni(h.build()), not_tls());
}

// ---- lengths that contradict each other -----------------------------------------------------

TEST(TcpSniLengths, RecordTooShortForAHandshakeHeader) {
    V b = Hello{}.build();
    put16(b, Hello::kRecordLenAt, 3);
    EXPECT_EQ(sni(b), not_tls());
}

// A hello longer than its record (one split over records) is not read.
TEST(TcpSniLengths, HelloLongerThanRecord) {
    V b = Hello{}.build();
    put16(b, Hello::kHelloLenAt + 1, b.size() - 9 + 1);
    EXPECT_EQ(sni(b), not_tls());
}

// The hello says it ends before its extensions do: what follows the hello is not the
// hello's, so the server_name found there must not be taken.
TEST(TcpSniLengths, ExtensionsRunPastTheHello) {
    Hello h;
    V b = h.build();
    // Cut the hello (and the record with it) in the middle of the extension block.
    std::size_t cut = h.extension_at(2) + 2;
    put16(b, Hello::kHelloLenAt + 1, cut - 9);
    EXPECT_EQ(sni(b), not_tls());
    put16(b, Hello::kRecordLenAt, cut - 5);
    EXPECT_EQ(sni(b), not_tls());
}

TEST(TcpSniLengths, SessionIdRunsPastTheRecord) {
    V b = Hello{}.build();
    b[Hello::kSessionIdLenAt] = 0xFF;
    b.resize(Hello::kSessionIdLenAt + 1 + 0x40);  // shorter than 255, but the whole record
    put16(b, Hello::kRecordLenAt, b.size() - 5);
    put16(b, Hello::kHelloLenAt + 1, b.size() - 9);
    EXPECT_EQ(sni(b), not_tls());
}

TEST(TcpSniLengths, CipherSuitesRunPastTheHello) {
    Hello h;
    V b = h.build();
    put16(b, h.ciphers_len_at(), 0xFFFE);
    EXPECT_EQ(sni(b), not_tls());
}

TEST(TcpSniLengths, ExtensionBlockRunsPastTheHello) {
    Hello h;
    V b = h.build();
    put16(b, h.extensions_len_at(), get16(b, h.extensions_len_at()) + 1);
    EXPECT_EQ(sni(b), not_tls());
}

TEST(TcpSniLengths, ExtensionRunsPastTheBlock) {
    Hello h;
    V b = h.build();
    std::size_t alpn_len_at = h.extension_at(1) + 2;
    put16(b, alpn_len_at, 0x0400);
    EXPECT_EQ(sni(b), not_tls());
}

TEST(TcpSniLengths, ServerNameListRunsPastTheExtension) {
    Hello h;
    V b = h.build();
    std::size_t list_len_at = h.extension_at(2) + 4;
    put16(b, list_len_at, get16(b, list_len_at) + 1);
    EXPECT_EQ(sni(b), not_tls());
}

TEST(TcpSniLengths, HostNameRunsPastTheList) {
    Hello h;
    V b = h.build();
    std::size_t name_len_at = h.extension_at(2) + 4 + 2 + 1;
    put16(b, name_len_at, get16(b, name_len_at) + 1);
    EXPECT_EQ(sni(b), not_tls());
}

// The extension block says it is longer than the hello while the name comes first: the name
// is inside the hello, but the lengths contradict each other, and that is seen from the
// block's length alone, before any extension arrives. Found "a" for a 59-byte prefix and
// not_tls for the whole hello was the answer depending on segmentation (issue 20).
TEST(TcpSniLengths, ExtensionBlockOverrunSeenBeforeTheName) {
    Hello h;
    h.extensions = {host_name("a"), alpn()};
    V b = h.build();
    put16(b, h.extensions_len_at(), get16(b, h.extensions_len_at()) + 1);
    EXPECT_EQ(sni(b), not_tls());
    for (std::size_t n = 0; n < b.size(); n++) {
        Got got = sni(V(b.begin(), b.begin() + n));
        ASSERT_TRUE(got == need_more() || got == not_tls()) << "prefix of " << n << " bytes";
    }
}

// ---- truncations ----------------------------------------------------------------------------

// Every proper prefix of a hello whose answer only its last byte settles must be need_more:
// the acceptor then peeks again instead of giving up on the name. For these hellos the
// server_name extension (when there is one) is the last extension.
TEST(TcpSniTruncated, EveryPrefixNeedsMore) {
    Hello sni_last;
    Hello sni_long;
    sni_long.extensions.back() = host_name(std::string(200, 'q') + ".test");
    Hello no_name;
    no_name.extensions = {supported_versions(), alpn()};
    Hello empty_block;
    empty_block.extensions.clear();
    Hello no_block;
    no_block.with_extensions = false;
    Hello other_type;
    other_type.extensions = {alpn(), server_name({{1, "x"}, {0, "late.test"}})};

    for (const Hello *h : {&sni_last, &sni_long, &no_name, &empty_block, &no_block, &other_type}) {
        V b = h->build();
        Got whole = sni(b);
        ASSERT_NE(whole.kind, SniResult::need_more);
        ASSERT_NE(whole.kind, SniResult::not_tls);
        for (std::size_t n = 0; n < b.size(); n++) {
            ASSERT_EQ(sni(V(b.begin(), b.begin() + n)), need_more())
                << "prefix of " << n << " of " << b.size() << " bytes";
        }
    }
}

// ---- a ClientHello captured from OpenSSL -----------------------------------------------------

// `openssl s_client -connect 127.0.0.1:PORT -servername example.test` (OpenSSL 3.0.19)
// against `socat -u TCP-LISTEN:PORT,bind=127.0.0.1 OPEN:hello.bin`: its first record, 318
// bytes. server_name is its first extension (at offset 0x90); supported_versions,
// key_share and others follow.
V openssl_hello() {
    std::string_view hex =
        "1603010139010001350303c4c17b7b5db2fe46cabb8e390363d714cd07338607"
        "218b8afc6695f222ff9fb520c888765f6a166b364be9e642108f040d5c227699"
        "99ed0395762a85523aaabd91003e130213031301c02cc030009fcca9cca8ccaa"
        "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d"
        "009c003d003c0035002f00ff010000ae00000011000f00000c6578616d706c65"
        "2e74657374000b000403000102000a00160014001d0017001e00190018010001"
        "01010201030104002300000016000000170000000d002a002804030503060308"
        "0708080809080a080b0804080508060401050106010303030103020402050206"
        "02002b0009080304030303020301002d00020101003300260024001d00203342"
        "aa9d5ced11e5264cd86d69e4bc200666d5da09e84941d2c9584311b22234";
    V out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(
            static_cast<std::uint8_t>(std::stoul(std::string(hex.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

TEST(TcpSniOpenSsl, FoundExampleTest) {
    V b = openssl_hello();
    ASSERT_EQ(b.size(), 318u);
    ASSERT_EQ(get16(b, Hello::kRecordLenAt), b.size() - 5);
    EXPECT_EQ(sni(b), found("example.test"));
}

// Here server_name comes first, so the name is complete long before the hello is: prefixes
// answer need_more until the server_name extension's last byte is in, and from there on the
// same `found` the whole hello gives. Answering early is what the acceptor wants (it peeks
// a bounded number of bytes for a bounded time), and never contradicts the whole hello.
TEST(TcpSniOpenSsl, PrefixesNeedMoreUntilTheNameIsComplete) {
    V b = openssl_hello();
    const std::size_t sni_ext_at = 0x90;
    ASSERT_EQ(get16(b, sni_ext_at), 0x0000u);
    const std::size_t sni_end = sni_ext_at + 4 + get16(b, sni_ext_at + 2);
    for (std::size_t n = 0; n < b.size(); n++) {
        Got want = n < sni_end ? need_more() : found("example.test");
        ASSERT_EQ(sni(V(b.begin(), b.begin() + n)), want) << "prefix of " << n << " bytes";
    }
}

// The same shape built here: server_name first, then more extensions.
TEST(TcpSniTruncated, NameFirstIsFoundOnceComplete) {
    Hello h;
    h.extensions = {host_name("first.test"), supported_versions(), alpn()};
    V b = h.build();
    const std::size_t sni_end = h.extension_at(1);
    for (std::size_t n = 0; n <= b.size(); n++) {
        Got want = n < sni_end ? need_more() : found("first.test");
        ASSERT_EQ(sni(V(b.begin(), b.begin() + n)), want) << "prefix of " << n << " bytes";
    }
}

// ---- mutations ------------------------------------------------------------------------------

// Random byte changes, truncations and extensions of valid hellos (fixed seed, bounded
// count): find_sni must stay inside its input (valgrind/ASan would report it), and any name
// must be a view into the input (checked by sni()).
TEST(TcpSniMutations, NeverReadsPastTheInput) {
    std::mt19937 rng(20240601);
    const std::vector<V> seeds = {Hello{}.build(), openssl_hello()};
    for (int i = 0; i < 20000; i++) {
        V b = seeds[i % seeds.size()];
        int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; e++) {
            std::size_t at = rng() % b.size();
            switch (rng() % 4) {
                case 0:
                    b[at] = static_cast<std::uint8_t>(rng());
                    break;
                case 1:
                    b[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
                    break;
                case 2:
                    b.resize(std::max<std::size_t>(at, 1));
                    break;
                default:  // a length field's neighbour bytes: big or zero lengths
                    b[at] = (rng() & 1) ? 0xFF : 0x00;
                    break;
            }
        }
        Got g = sni(b);
        if (g.kind == SniResult::found) {
            ASSERT_LE(g.name.size(), b.size());
        }
        // However the same bytes arrive, the answer is the same: every prefix answers
        // need_more or what the whole answers.
        if (i % 10 == 0) {
            for (std::size_t n = 0; n < b.size(); n++) {
                Got p = sni(V(b.begin(), b.begin() + n));
                ASSERT_TRUE(p == need_more() || p == g)
                    << "mutation " << i << ": prefix of " << n << " of " << b.size() << " bytes";
            }
        }
    }
}

}  // namespace
