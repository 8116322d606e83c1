#include <cstdarg>
#include <cstdio>
#include <ostream>

#include "codec/common.hpp"

namespace ppinject::proxy {
namespace {

std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

std::string_view prefix(Error e) {
    if (e >= Error::v1_bad_prefix && e <= Error::v1_bad_destination_port) {
        return "v1: ";
    }
    if (e >= Error::v2_bad_signature && e <= Error::v2_crc32c_mismatch) {
        return "v2: ";
    }
    return e == Error::spp_bad_magic ? "spp: " : "";
}

const char *side(std::uint32_t destination) {
    return destination ? "destination" : "source";
}

const char *family_of_block(std::uint32_t block) {
    return block == kV2InetAddrLen ? "INET" : block == kV2Inet6AddrLen ? "INET6" : "UNIX";
}

// The sentence with the numbers of `s`, without the "vN: " prefix.
std::string details(const Status &s) {
    const unsigned at = s.offset, value = s.value, limit = s.limit, type = s.type;
    switch (s.error) {
        case Error::need_more:
            return value
                       ? format("incomplete header: need more bytes (have %u of %u)", limit, value)
                       : format("incomplete header: need more bytes (have %u)", limit);
        case Error::unknown_format:
            return format("not a PROXY v1, PROXY v2 or SPP header (first byte 0x%02x)", value);
        case Error::v1_bad_prefix:
            return format("line does not start with \"PROXY \" (byte %u differs)", at);
        case Error::v1_lone_cr:
            return format("CR at offset %u not followed by LF", at);
        case Error::v1_lone_lf:
            return format("LF at offset %u without a CR before it", at);
        case Error::v1_empty_field:
            return format("empty field at offset %u (fields are separated by exactly one space)",
                          at);
        case Error::v1_field_count:
            return format(
                "%u fields after \"PROXY\"; TCP4/TCP6 lines have 5 (protocol, source and "
                "destination addresses, source and destination ports)",
                value);
        case Error::v1_bad_source_address:
        case Error::v1_bad_destination_address:
            return format("%s address at offset %u is not a valid IPv%u address",
                          side(s.error == Error::v1_bad_destination_address), at, value);
        case Error::v1_noncanonical_source_address:
        case Error::v1_noncanonical_destination_address:
            return format(
                "%s address at offset %u is not in canonical form (IPv4 numbers have no "
                "leading zeros)",
                side(s.error == Error::v1_noncanonical_destination_address), at);
        case Error::v1_address_family_mismatch:
            return format("%s address at offset %u is IPv%u under TCP%u", side(value), at,
                          10 - limit, limit);
        case Error::v1_bad_source_port:
        case Error::v1_bad_destination_port:
            return format("%s port at offset %u is not 0..65535 without sign or leading zeros",
                          side(s.error == Error::v1_bad_destination_port), at);
        case Error::v2_bad_signature:
            return format("bad signature: byte %u is 0x%02x, expected 0x%02x", at, value, limit);
        case Error::v2_bad_version:
            return format("version %u is not 2", value);
        case Error::v2_bad_command:
            return format("command %u is neither LOCAL (0) nor PROXY (1)", value);
        case Error::v2_bad_family_transport:
            return format(
                "family/transport byte 0x%02x is not one of 00 11 12 21 22 31 32 (UNSPEC, "
                "TCP4, UDP4, TCP6, UDP6, UNIX stream, UNIX dgram)",
                value);
        case Error::v2_length_too_short:
            return format("length is shorter than the %s address block: %u < %u",
                          family_of_block(limit), value, limit);
        case Error::v2_tlv_overrun:
            return format(
                "TLV 0x%02x at offset %u runs past the end of the header (needs %u bytes, %u "
                "left)",
                type, at, value, limit);
        case Error::v2_ssl_too_short:
            return format(
                "SSL TLV value at offset %u is %u bytes, shorter than its 5-byte client/verify "
                "part",
                at, value);
        case Error::v2_ssl_subtlv_overrun:
            return format(
                "SSL sub-TLV 0x%02x at offset %u runs past the end of the SSL TLV (needs %u "
                "bytes, %u left)",
                type, at, value, limit);
        case Error::v2_unique_id_too_long:
            return format("UNIQUE_ID at offset %u is %u bytes, longer than %u", at, value, limit);
        case Error::v2_crc32c_bad_length:
            return format("CRC32C TLV at offset %u has %u value bytes, not 4", at, value);
        case Error::v2_crc32c_mismatch:
            return format("CRC32C mismatch: the header says 0x%08x, its bytes give 0x%08x", value,
                          limit);
        case Error::spp_bad_magic:
            return limit == 2 ? format("bad magic 0x%04x (expected 0x56EC)", value)
                              : format("bad magic: first byte 0x%02x (expected 0x56)", value >> 8);
        default:
            break;
    }
    return std::string(describe(s.error).substr(prefix(s.error).size()));
}

}  // namespace

std::string_view describe(Error e) {
    switch (e) {
        case Error::ok:
            return "ok";
        case Error::need_more:
            return "incomplete header: need more bytes";
        case Error::unknown_format:
            return "not a PROXY v1, PROXY v2 or SPP header";
        case Error::v1_bad_prefix:
            return "v1: line does not start with \"PROXY \"";
        case Error::v1_no_crlf:
            return "v1: no CRLF within the first 107 bytes";
        case Error::v1_lone_cr:
            return "v1: CR not followed by LF";
        case Error::v1_lone_lf:
            return "v1: LF without a CR before it";
        case Error::v1_bad_protocol:
            return "v1: protocol is not TCP4, TCP6 or UNKNOWN";
        case Error::v1_empty_field:
            return "v1: empty field (fields are separated by exactly one space)";
        case Error::v1_field_count:
            return "v1: TCP4/TCP6 lines have exactly 5 fields after \"PROXY\"";
        case Error::v1_bad_source_address:
            return "v1: source address is not a valid address";
        case Error::v1_bad_destination_address:
            return "v1: destination address is not a valid address";
        case Error::v1_noncanonical_source_address:
            return "v1: source address is not in canonical form";
        case Error::v1_noncanonical_destination_address:
            return "v1: destination address is not in canonical form";
        case Error::v1_address_family_mismatch:
            return "v1: address family does not match TCP4/TCP6";
        case Error::v1_bad_source_port:
            return "v1: source port is not 0..65535 without sign or leading zeros";
        case Error::v1_bad_destination_port:
            return "v1: destination port is not 0..65535 without sign or leading zeros";
        case Error::v2_bad_signature:
            return "v2: bad signature";
        case Error::v2_bad_version:
            return "v2: version is not 2";
        case Error::v2_bad_command:
            return "v2: command is neither LOCAL nor PROXY";
        case Error::v2_bad_family_transport:
            return "v2: invalid family/transport byte";
        case Error::v2_length_too_short:
            return "v2: length is shorter than the address block of its family";
        case Error::v2_tlv_overrun:
            return "v2: a TLV runs past the end of the header";
        case Error::v2_ssl_too_short:
            return "v2: SSL TLV shorter than its 5-byte client/verify part";
        case Error::v2_ssl_subtlv_overrun:
            return "v2: an SSL sub-TLV runs past the end of the SSL TLV";
        case Error::v2_unique_id_too_long:
            return "v2: UNIQUE_ID longer than 128 bytes";
        case Error::v2_crc32c_bad_length:
            return "v2: CRC32C TLV is not 4 bytes";
        case Error::v2_crc32c_mismatch:
            return "v2: CRC32C checksum does not match";
        case Error::spp_bad_magic:
            return "spp: bad magic (expected 0x56EC)";
        case Error::buffer_too_small:
            return "output buffer too small";
        case Error::value_too_long:
            return "value too long for its field";
        case Error::bad_tlv_type:
            return "TLV type not allowed here";
        case Error::not_started:
            return "header writer used out of order";
    }
    return "unknown error";
}

std::string describe(const Status &s, bool with_version) {
    std::string text = details(s);
    return with_version ? std::string(prefix(s.error)) + text : text;
}

std::ostream &operator<<(std::ostream &os, Error e) {
    return os << describe(e);
}

std::ostream &operator<<(std::ostream &os, const Status &s) {
    return os << describe(s);
}

}  // namespace ppinject::proxy
