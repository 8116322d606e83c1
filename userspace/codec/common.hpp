// What every part of the PROXY/SPP codec shares: byte views, header sizes, and the
// outcome of a decode or encode (an Error reason, plus the numbers that make it precise).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>

#include "codec/address.hpp"
#include "ppinject.h"

namespace ppinject::proxy {

// Input of a decoder (never read past its end).
using Bytes = std::span<const std::uint8_t>;
// Output of an encoder (never written past its end).
using Buffer = std::span<std::uint8_t>;

// ---- sizes --------------------------------------------------------------------------------

// Longest v1 line including CRLF ("PROXY UNKNOWN" with two full IPv6 addresses).
inline constexpr std::size_t kV1MaxLen = 107;
// v2 signature, version/command, family/transport and length: the part before addresses.
inline constexpr std::size_t kV2FixedLen = 16;
// v2 address blocks (the minimum of the length field for each family).
inline constexpr std::size_t kV2InetAddrLen = 2 * 4 + 2 * 2;
inline constexpr std::size_t kV2Inet6AddrLen = 2 * 16 + 2 * 2;
inline constexpr std::size_t kV2UnixAddrLen = 2 * 108;
inline constexpr std::size_t kV2UnixPathLen = 108;
// Whole v2 headers without TLVs; the kernel side inserts the first two (bpf/ppinject.h).
inline constexpr std::size_t kV2InetLen = PP_V2_HDR_LEN_INET;
inline constexpr std::size_t kV2Inet6Len = PP_V2_HDR_LEN_INET6;
inline constexpr std::size_t kV2UnixLen = kV2FixedLen + kV2UnixAddrLen;
inline constexpr std::size_t kV2LocalLen = kV2FixedLen;
// Largest v2 header the length field can describe.
inline constexpr std::size_t kV2MaxLen = kV2FixedLen + 0xFFFF;
// UNIQUE_ID values are at most this long.
inline constexpr std::size_t kUniqueIdMax = 128;
// SPP: magic, two 16-byte addresses, two ports.
inline constexpr std::size_t kSppLen = PP_SPP_HDR_LEN;
inline constexpr std::uint16_t kSppMagic = PP_SPP_MAGIC;

static_assert(kV2InetLen == kV2FixedLen + kV2InetAddrLen && kV2InetLen == 28);
static_assert(kV2Inet6Len == kV2FixedLen + kV2Inet6AddrLen && kV2Inet6Len == 52);
static_assert(kV2UnixLen == 232 && kV2LocalLen == 16);
static_assert(kSppLen == 2 + 16 + 16 + 2 + 2 && kSppMagic == 0x56EC);

// ---- outcome ------------------------------------------------------------------------------

// Why a decode or encode did not succeed: need_more (a valid prefix: read more bytes and
// call again), one reason per malformed form, or an encoding problem.
enum class Error : std::uint8_t {
    ok,
    need_more,
    unknown_format,
    // v1 (text).
    v1_bad_prefix,
    v1_no_crlf,
    v1_lone_cr,
    v1_lone_lf,
    v1_bad_protocol,
    v1_empty_field,
    v1_field_count,
    v1_bad_source_address,
    v1_bad_destination_address,
    v1_noncanonical_source_address,
    v1_noncanonical_destination_address,
    v1_address_family_mismatch,
    v1_bad_source_port,
    v1_bad_destination_port,
    // v2 (binary).
    v2_bad_signature,
    v2_bad_version,
    v2_bad_command,
    v2_bad_family_transport,
    v2_length_too_short,
    v2_tlv_overrun,
    v2_ssl_too_short,
    v2_ssl_subtlv_overrun,
    v2_unique_id_too_long,
    v2_crc32c_bad_length,
    v2_crc32c_mismatch,
    // SPP.
    spp_bad_magic,
    // Encoding only.
    buffer_too_small,
    value_too_long,
    bad_tlv_type,
    not_started,
};

// A decode's outcome: the reason and, for malformed input, where and which values (the
// meaning of each number depends on the reason; describe() puts them into words). For
// need_more, `value` is the whole header's length once known (else 0) and `limit` the bytes
// present.
struct Status {
    Error error = Error::ok;
    std::uint32_t offset = 0;  // byte offset in the input of the offending field
    std::uint32_t value = 0;   // the offending value (a length, a byte, a count)
    std::uint32_t limit = 0;   // what it was checked against
    std::uint8_t type = 0;     // the TLV type, for TLV reasons

    bool ok() const { return error == Error::ok; }
    // Its reason, so that `decode_v2(in, h) == Error::ok` and `switch (status)` read naturally.
    operator Error() const { return error; }
    friend bool operator==(const Status &s, Error e) { return s.error == e; }
};

// True for every reason except ok and need_more.
inline bool malformed(Error e) {
    return e != Error::ok && e != Error::need_more;
}

// One distinct sentence per reason, prefixed "v1: ", "v2: " or "spp: " where it applies.
std::string_view describe(Error e);
// The reason with its numbers, e.g.
//   "v2: length is shorter than the INET address block: 8 < 12",
// without the "vN: " prefix when `with_version` is false.
std::string describe(const Status &s, bool with_version = true);

// For test and log output: describe(e) / describe(s).
std::ostream &operator<<(std::ostream &os, Error e);
std::ostream &operator<<(std::ostream &os, const Status &s);

// ---- address family -----------------------------------------------------------------------

// Whether a header for source -> destination must use IPv6 (TCP6 / INET6): yes unless both
// are IPv4 (an IPv4-mapped IPv6 address counts as IPv4); an IPv4 end then goes in mapped
// form. The encoders apply it themselves; callers use it to size or label a header.
inline bool needs_ipv6(const Endpoint &source, const Endpoint &destination) {
    return !source.addr.is_v4() || !destination.addr.is_v4();
}

}  // namespace ppinject::proxy
