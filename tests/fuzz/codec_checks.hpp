// The properties the codec's fuzz targets check (decode_v1, decode_v2, decode_spp,
// decode_any share them):
//   - over the prefixes of the input, a decoder's answers are "need more bytes" and then
//     one answer that appending bytes never changes: the same malformed reason at the same
//     offset, or success with the same header; so a success never claims more bytes than
//     given and every strict prefix of a valid header is need_more;
//   - need_more reports the bytes present and, once known, a total beyond them that is the
//     header's length;
//   - every status describes itself in one line;
//   - a decoded header re-encodes to one that decodes to the same, and to the same bytes
//     where the format has one encoding for it.
#pragma once

#include <algorithm>
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "codec/proxy.hpp"
#include "fuzz.hpp"

namespace ppfuzz {

using namespace ppinject::proxy;

inline bool same_bytes(Bytes a, Bytes b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

inline std::size_t header_length(const V1Header &h) {
    return h.length;
}
inline std::size_t header_length(const V2Header &h) {
    return h.length;
}
inline std::size_t header_length(const SppHeader &) {
    return kSppLen;
}
inline std::size_t header_length(const AnyHeader &h) {
    return h.length;
}

// The same header decoded from two copies of the same bytes (views compared by content).
inline bool same(const V1Header &a, const V1Header &b) {
    return a.protocol == b.protocol && a.source == b.source && a.destination == b.destination &&
           a.length == b.length;
}
inline bool same(const V2Header &a, const V2Header &b) {
    return a.command == b.command && a.family == b.family && a.transport == b.transport &&
           a.source == b.source && a.destination == b.destination &&
           a.source_path == b.source_path && a.destination_path == b.destination_path &&
           same_bytes(a.tlvs, b.tlvs) && same_bytes(a.unspec_data, b.unspec_data) &&
           a.has_crc32c == b.has_crc32c && a.length == b.length;
}
inline bool same(const SppHeader &a, const SppHeader &b) {
    return a.client == b.client && a.proxy == b.proxy;
}
inline bool same(const AnyHeader &a, const AnyHeader &b) {
    if (a.kind != b.kind || a.length != b.length) {
        return false;
    }
    switch (a.kind) {
        case Kind::v1:
            return same(a.v1, b.v1);
        case Kind::v2:
            return same(a.v2, b.v2);
        case Kind::spp:
            break;
    }
    return same(a.spp, b.spp);
}

// Same reason, same place: what "the same error" means when bytes are appended (the numbers
// beside it may grow with the input, e.g. how much of a bad magic was seen).
inline bool same_error(const Status &a, const Status &b) {
    return a.error == b.error && a.offset == b.offset;
}

inline void check_describes(const Status &s) {
    std::string text = describe(s);
    FUZZ_CHECK(!text.empty() && text.find_first_of("\r\n") == std::string::npos);
}

// The prefix properties of `decode` (Status(Bytes, Header &)) over `in`; `whole` gets the
// header decoded from all of `in` and the status is returned.
template <typename Header, typename Decode>
Status check_prefixes(Bytes in, Header &whole, Decode decode) {
    Status sw = decode(in, whole);
    check_describes(sw);
    std::size_t len = sw.ok() ? header_length(whole) : 0;
    if (sw.ok()) {
        FUZZ_CHECK(len > 0 && len <= in.size());
    }
    for (std::size_t p : prefix_lengths(in.size(), {len - 1, len, len + 1})) {
        std::vector<std::uint8_t> copy = exact_copy(in.first(p));
        Header h{};
        Status s = decode(Bytes(copy), h);
        check_describes(s);
        if (sw.ok() && p < len) {
            FUZZ_CHECK(s.error == Error::need_more);
        }
        switch (s.error) {
            case Error::need_more:
                FUZZ_CHECK(s.limit == p);
                FUZZ_CHECK(s.value == 0 || s.value > p);
                FUZZ_CHECK(s.value == 0 || !sw.ok() || s.value == len);
                break;
            case Error::ok:
                FUZZ_CHECK(sw.ok() && same(h, whole));
                break;
            default:
                FUZZ_CHECK(same_error(s, sw));
                break;
        }
    }
    return sw;
}

// ---- re-encoding ------------------------------------------------------------------------------

// v1: TCP4 lines (dotted quads without leading zeros) have one spelling, the encoder's;
// TCP6 addresses have several, so a TCP6 line re-encodes to one that decodes the same.
inline void check_v1(Bytes in, const V1Header &h) {
    std::array<std::uint8_t, kV1MaxLen> buf{};
    std::size_t n = 0;
    Bytes line = in.first(h.length);
    if (h.protocol == V1Protocol::unknown) {
        FUZZ_CHECK(encode_v1_unknown(buf, n) == Error::ok);
        constexpr std::string_view kBare = "PROXY UNKNOWN\r\n";
        bool bare =
            std::string_view(reinterpret_cast<const char *>(line.data()), line.size()) == kBare;
        FUZZ_CHECK(!bare || same_bytes(Bytes(buf).first(n), line));
        return;
    }
    FUZZ_CHECK(encode_v1(buf, h.source, h.destination, n) == Error::ok);
    std::vector<std::uint8_t> out = exact_copy(Bytes(buf).first(n));
    V1Header again;
    FUZZ_CHECK(decode_v1(Bytes(out), again).ok());
    FUZZ_CHECK(again.length == n && again.source == h.source && again.destination == h.destination);
    FUZZ_CHECK(again.protocol ==
               (needs_ipv6(h.source, h.destination) ? V1Protocol::tcp6 : V1Protocol::tcp4));
    if (h.protocol == V1Protocol::tcp4) {
        FUZZ_CHECK(same_bytes(Bytes(out), line));
    }
}

// The decoder's views of a decoded v2 header agree with what it validated.
inline void check_v2_views(const V2Header &h) {
    TlvReader r(h.tlvs);
    std::size_t crcs = 0;
    for (const Tlv &t : r) {
        crcs += t.type == tlv::crc32c;
        if (t.type == tlv::unique_id) {
            FUZZ_CHECK(t.value.size() <= kUniqueIdMax);
        }
        if (t.type == tlv::ssl) {
            SslTlv ssl;
            FUZZ_CHECK(parse_ssl(t, ssl).ok());
            TlvReader sub(ssl.sub_tlvs);
            for (Tlv s; sub.next(s);) {
            }
            FUZZ_CHECK(!sub.overrun() && sub.offset() == ssl.sub_tlvs.size());
        }
    }
    FUZZ_CHECK(!r.overrun() && r.offset() == h.tlvs.size());
    FUZZ_CHECK(h.has_crc32c == (crcs > 0));
    FUZZ_CHECK(h.find(tlv::ssl).has_value() == h.ssl().has_value());
    FUZZ_CHECK(h.alpn().has_value() == h.find(tlv::alpn).has_value());
    FUZZ_CHECK(h.authority().has_value() == h.find(tlv::authority).has_value());
    FUZZ_CHECK(h.netns().has_value() == h.find(tlv::netns).has_value());
    FUZZ_CHECK(h.unique_id().has_value() == h.find(tlv::unique_id).has_value());
    FUZZ_CHECK(h.unspec_data.empty() || (h.family == Family::unspec && h.tlvs.empty()));
}

// Whether a UNIX address block holds nothing after each path's terminating NUL (the
// encoder pads with NULs; a sender may leave anything there).
inline bool unix_block_padded(Bytes block) {
    for (std::size_t side = 0; side < 2; side++) {
        Bytes path = block.subspan(side * kV2UnixPathLen, kV2UnixPathLen);
        auto nul = std::find(path.begin(), path.end(), 0);
        if (std::any_of(nul, path.end(), [](std::uint8_t b) { return b != 0; })) {
            return false;
        }
    }
    return true;
}

// v2: V2Writer rebuilds the header from its decoded form (addresses, every TLV in order,
// CRC32C last). The result decodes to the same header; it is the same bytes unless the input
// used a spelling the writer never writes: INET6 for two IPv4 ends, bytes after a UNIX path's
// NUL, skipped UNSPEC address data, or a CRC32C TLV that is not the single last TLV.
inline void check_v2(Bytes in, const V2Header &h) {
    check_v2_views(h);
    std::vector<std::uint8_t> buf(kV2MaxLen);
    V2Writer w(buf);
    switch (h.family) {
        case Family::inet:
        case Family::inet6:
            FUZZ_CHECK(w.begin(h.command, h.transport, h.source, h.destination) == Error::ok);
            break;
        case Family::unix_socket:
            FUZZ_CHECK(w.begin_unix(h.command, h.transport, h.source_path, h.destination_path) ==
                       Error::ok);
            break;
        case Family::unspec:
            FUZZ_CHECK(w.begin_unspec(h.command) == Error::ok);
            break;
    }
    std::vector<std::uint8_t> types;
    std::size_t last_crc = 0, crcs = 0;
    for (const Tlv &t : TlvReader(h.tlvs)) {
        if (t.type == tlv::crc32c) {
            crcs++;
            last_crc = types.size() + crcs;
            continue;
        }
        types.push_back(t.type);
        FUZZ_CHECK(w.add(t.type, t.value) == Error::ok);
    }
    std::size_t n = 0;
    FUZZ_CHECK(w.finish(h.has_crc32c, n) == Error::ok);
    std::vector<std::uint8_t> out = exact_copy(Bytes(buf).first(n));
    V2Header again;
    FUZZ_CHECK(decode_v2(Bytes(out), again).ok());
    FUZZ_CHECK(again.length == n && again.command == h.command && again.transport == h.transport &&
               again.has_crc32c == h.has_crc32c);
    FUZZ_CHECK(again.source == h.source && again.destination == h.destination);
    FUZZ_CHECK(again.source_path == h.source_path && again.destination_path == h.destination_path);
    std::size_t i = 0;
    for (const Tlv &t : TlvReader(again.tlvs)) {
        if (t.type != tlv::crc32c) {
            FUZZ_CHECK(i < types.size() && t.type == types[i++]);
        }
    }
    FUZZ_CHECK(i == types.size());

    bool canonical =
        h.unspec_data.empty() && (crcs == 0 || (crcs == 1 && last_crc == types.size() + 1));
    if (h.family == Family::inet6) {
        canonical = canonical && family_for(h.source, h.destination) == Family::inet6;
    }
    if (h.family == Family::unix_socket) {
        canonical = canonical && unix_block_padded(in.subspan(kV2FixedLen, kV2UnixAddrLen));
    }
    bool by_addresses = h.family == Family::inet || h.family == Family::inet6;
    FUZZ_CHECK(again.family == (by_addresses ? family_for(h.source, h.destination) : h.family));
    if (canonical) {
        FUZZ_CHECK(same_bytes(Bytes(out), in.first(h.length)));
    }
}

// SPP: fixed fields, one encoding.
inline void check_spp(Bytes in, const SppHeader &h) {
    std::array<std::uint8_t, kSppLen> buf{};
    FUZZ_CHECK(encode_spp(buf, h.client, h.proxy) == Error::ok);
    FUZZ_CHECK(same_bytes(Bytes(buf), in.first(kSppLen)));
}

}  // namespace ppfuzz
