// PROXY protocol v1 (text) and v2 (binary), and Cloudflare's Simple Proxy Protocol (SPP):
// decoders that never read past their input and tell "need more bytes" apart from
// "malformed" (with a distinct reason for every malformed form), and encoders that write
// into the caller's buffer without allocating.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "codec/address.hpp"
#include "ppinject.h"

namespace ppinject::proxy {

using Bytes = std::span<const std::uint8_t>;
using Buffer = std::span<std::uint8_t>;

// Header sizes. The kernel side uses the same numbers (bpf/ppinject.h).
inline constexpr std::size_t kV1MaxLen = 107;
inline constexpr std::size_t kV2FixedLen = 16;
inline constexpr std::size_t kV2InetLen = 28;
inline constexpr std::size_t kV2Inet6Len = 52;
inline constexpr std::size_t kV2UnixLen = 232;
inline constexpr std::size_t kSppLen = 38;
inline constexpr std::size_t kUniqueIdMax = 128;
static_assert(kV2InetLen == PP_V2_HDR_LEN_INET && kV2Inet6Len == PP_V2_HDR_LEN_INET6 &&
              kSppLen == PP_SPP_HDR_LEN);
inline constexpr std::array<std::uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                              0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
inline constexpr std::uint16_t kSppMagic = PP_SPP_MAGIC;

// Outcome of a decode: ok, need_more (a valid prefix, give me more bytes), or one of the
// malformed reasons.
enum class Error : std::uint8_t {
    ok,
    need_more,
    unknown_format,
    v1_bad_prefix,
    v1_no_crlf,
    v1_lone_cr,
    v1_lone_lf,
    v1_bad_protocol,
    v1_field_count,
    v1_bad_source_address,
    v1_bad_destination_address,
    v1_address_family_mismatch,
    v1_bad_source_port,
    v1_bad_destination_port,
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
    spp_bad_magic,
    // Encoding only.
    buffer_too_small,
    value_too_long,
    bad_tlv_type,
    not_started,
};

// A human-readable sentence for each Error.
std::string_view describe(Error e);
inline bool malformed(Error e) {
    return e != Error::ok && e != Error::need_more;
}

// ---- v1 ---------------------------------------------------------------------------------

enum class V1Protocol : std::uint8_t { tcp4, tcp6, unknown };

struct V1Header {
    V1Protocol protocol = V1Protocol::unknown;
    Endpoint source;         // not set for UNKNOWN
    Endpoint destination;    // not set for UNKNOWN
    std::size_t length = 0;  // bytes of the line including CRLF
};

Error decode_v1(Bytes in, V1Header &out);
// Writes "PROXY TCP4|TCP6 ... \r\n" (TCP4 when both endpoints are IPv4, else TCP6 with
// IPv4 ones written mapped); `written` gets the length.
Error encode_v1(Buffer out, const Endpoint &source, const Endpoint &destination,
                std::size_t &written);
// Writes "PROXY UNKNOWN\r\n".
Error encode_v1_unknown(Buffer out, std::size_t &written);

// ---- v2 ---------------------------------------------------------------------------------

enum class Command : std::uint8_t { local = 0, proxy = 1 };
enum class Family : std::uint8_t { unspec = 0, inet = 1, inet6 = 2, unix_socket = 3 };
enum class Transport : std::uint8_t { unspec = 0, stream = 1, dgram = 2 };

// TLV types of the specification.
namespace tlv {
inline constexpr std::uint8_t alpn = 0x01, authority = 0x02, crc32c = 0x03, noop = 0x04,
                              unique_id = 0x05, ssl = 0x20, ssl_version = 0x21, ssl_cn = 0x22,
                              ssl_cipher = 0x23, ssl_sig_alg = 0x24, ssl_key_alg = 0x25,
                              netns = 0x30, custom_min = 0xE0, custom_max = 0xEF;
}

struct Tlv {
    std::uint8_t type = 0;
    Bytes value;
    std::string_view text() const {
        return {reinterpret_cast<const char *>(value.data()), value.size()};
    }
};

// Walks a TLV area that decode_v2 already validated (or any area: it stops at the first
// TLV that does not fit and reports it through overrun()).
class TlvReader {
  public:
    explicit TlvReader(Bytes area) : rest_(area) {}
    bool next(Tlv &out);
    bool overrun() const { return overrun_; }

  private:
    Bytes rest_;
    bool overrun_ = false;
};

// The SSL TLV's fixed part and its sub-TLVs.
struct SslTlv {
    std::uint8_t client = 0;   // 0x01 SSL, 0x02 CERT_CONN, 0x04 CERT_SESS
    std::uint32_t verify = 0;  // 0 = client certificate verified
    Bytes sub_tlvs;            // read with TlvReader
};
Error parse_ssl(const Tlv &t, SslTlv &out);

struct V2Header {
    Command command = Command::local;
    Family family = Family::unspec;
    Transport transport = Transport::unspec;
    Endpoint source;  // INET / INET6
    Endpoint destination;
    std::string_view source_path;  // UNIX: up to the first NUL
    std::string_view destination_path;
    Bytes tlvs;               // the TLV area (views into the input)
    bool has_crc32c = false;  // a CRC32C TLV was present and matched
    std::size_t length = 0;   // whole header: 16 + the length field
};

// Decodes and validates a whole v2 header: TLVs must fit, SSL sub-TLVs must fit,
// UNIQUE_ID is at most 128 bytes, a CRC32C TLV must match.
Error decode_v2(Bytes in, V2Header &out);

// Builds a v2 header in the caller's buffer: begin(), then TLVs, then finish(). A TLV
// refused before anything is written (bad type, too long) leaves the writer usable; a
// buffer overflow is sticky and makes finish() fail.
class V2Writer {
  public:
    explicit V2Writer(Buffer out) : out_(out) {}
    // PROXY (or LOCAL) with INET when both endpoints are IPv4, else INET6 (IPv4 mapped).
    Error begin(Command command, Transport transport, const Endpoint &source,
                const Endpoint &destination);
    // LOCAL/UNSPEC (health checks), or any family/transport without addresses.
    Error begin_unspec(Command command);
    Error begin_unix(Command command, Transport transport, std::string_view source,
                     std::string_view destination);
    Error add(std::uint8_t type, Bytes value);
    Error add_text(std::uint8_t type, std::string_view value);
    Error add_unique_id(Bytes id);                     // at most 128 bytes
    Error add_custom(std::uint8_t type, Bytes value);  // 0xE0..0xEF only
    Error add_noop(std::size_t value_len);
    // SSL with sub-TLVs: begin_ssl(), add() sub-TLVs, end_ssl().
    Error begin_ssl(std::uint8_t client, std::uint32_t verify);
    Error end_ssl();
    // Fills the length (and the CRC32C TLV, added here, computed last); `written` gets the
    // header length.
    Error finish(bool crc32c, std::size_t &written);

  private:
    Error put(Bytes b);
    Buffer out_;
    std::size_t pos_ = 0;
    std::size_t ssl_at_ = 0;  // offset of an open SSL TLV, 0 when none
    bool started_ = false;
    Error error_ = Error::ok;
};

// ---- SPP --------------------------------------------------------------------------------

struct SppHeader {
    Endpoint client;
    Endpoint proxy;  // the address and port the client sent to
};
Error decode_spp(Bytes in, SppHeader &out);
Error encode_spp(Buffer out, const Endpoint &client, const Endpoint &proxy);

// ---- any --------------------------------------------------------------------------------

enum class Kind : std::uint8_t { v1, v2, spp };
struct AnyHeader {
    Kind kind = Kind::v1;
    V1Header v1;
    V2Header v2;
    SppHeader spp;
    std::size_t length = 0;
};
// Recognises the header by its first byte ('P', 0x0D, 0x56) and decodes it.
Error decode_any(Bytes in, AnyHeader &out);

// CRC32c (Castagnoli), as the CRC32C TLV uses it.
std::uint32_t crc32c(Bytes data, std::uint32_t crc = 0);

}  // namespace ppinject::proxy
