// PROXY protocol version 2: the binary header (signature, command, family/transport,
// addresses) and its TLVs, decoded without copying and built without allocating.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>

#include "codec/address.hpp"
#include "codec/common.hpp"
#include "codec/crc32c.hpp"

namespace ppinject::proxy {

// The 12 bytes every v2 header starts with.
inline constexpr std::array<std::uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                              0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// Low nibble of byte 12 (the high nibble is the version, 2).
enum class Command : std::uint8_t { local = 0, proxy = 1 };
// High nibble of byte 13.
enum class Family : std::uint8_t { unspec = 0, inet = 1, inet6 = 2, unix_socket = 3 };
// Low nibble of byte 13.
enum class Transport : std::uint8_t { unspec = 0, stream = 1, dgram = 2 };

// INET when both endpoints are IPv4 (IPv4-mapped IPv6 included), else INET6: what
// V2Writer::begin() and encode_v2() write.
inline Family family_for(const Endpoint &source, const Endpoint &destination) {
    return needs_ipv6(source, destination) ? Family::inet6 : Family::inet;
}

// Address block size of a family (0 for UNSPEC).
std::size_t address_block_len(Family f);
// "LOCAL"/"PROXY", "UNSPEC"/"INET"/"INET6"/"UNIX", "UNSPEC"/"STREAM"/"DGRAM".
std::string_view name(Command c);
std::string_view name(Family f);
std::string_view name(Transport t);

// TLV types and SSL sub-types and client flags of the specification.
namespace tlv {
inline constexpr std::uint8_t alpn = 0x01, authority = 0x02, crc32c = 0x03, noop = 0x04,
                              unique_id = 0x05, ssl = 0x20, netns = 0x30;
inline constexpr std::uint8_t ssl_version = 0x21, ssl_cn = 0x22, ssl_cipher = 0x23,
                              ssl_sig_alg = 0x24, ssl_key_alg = 0x25, ssl_group = 0x26,
                              ssl_sig_scheme = 0x27, ssl_client_cert = 0x28;
inline constexpr std::uint8_t custom_min = 0xE0, custom_max = 0xEF, experiment_min = 0xF0,
                              experiment_max = 0xF7, future_min = 0xF8;
inline constexpr std::uint8_t client_ssl = 0x01, client_cert_conn = 0x02, client_cert_sess = 0x04;
}  // namespace tlv

// "ALPN", "SSL_CN", "CUSTOM", "EXPERIMENT", ... for a TLV type (`ssl_sub`: an SSL sub-TLV).
std::string_view tlv_name(std::uint8_t type, bool ssl_sub = false);

// One TLV: its type and a view of its value inside the header.
struct Tlv {
    std::uint8_t type = 0;
    Bytes value;
    // The value as text (no check that it is printable).
    std::string_view text() const {
        return {reinterpret_cast<const char *>(value.data()), value.size()};
    }
};

// Walks a TLV area (a decoded header's `tlvs`, or an SSL TLV's sub-TLVs) without copying:
// next() until false, or range-for. A TLV that does not fit ends the walk and sets overrun().
class TlvReader {
  public:
    explicit TlvReader(Bytes area) : area_(area) {}
    // The next TLV; false at the end of the area or at a TLV that runs past it.
    bool next(Tlv &out);
    // The walk stopped at a TLV that runs past the end of the area.
    bool overrun() const { return overrun_; }
    // Offset in the area of the TLV next() reads next (the overrunning one after overrun()).
    std::size_t offset() const { return pos_; }

    // Input iterator for range-for; equal to end() once next() returned false.
    class iterator {
      public:
        using value_type = Tlv;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(TlvReader *r) : r_(r) { ++*this; }
        const Tlv &operator*() const { return cur_; }
        const Tlv *operator->() const { return &cur_; }
        iterator &operator++() {
            if (r_ && !r_->next(cur_)) {
                r_ = nullptr;
            }
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator &i, std::default_sentinel_t) { return !i.r_; }

      private:
        TlvReader *r_ = nullptr;
        Tlv cur_;
    };
    iterator begin() { return iterator(this); }
    std::default_sentinel_t end() { return {}; }

  private:
    Bytes area_;
    std::size_t pos_ = 0;
    bool overrun_ = false;
};

// The SSL TLV (0x20): client flags, verify result, and its sub-TLVs (read with TlvReader).
struct SslTlv {
    std::uint8_t client = 0;   // tlv::client_ssl | client_cert_conn | client_cert_sess
    std::uint32_t verify = 0;  // 0: the client certificate was verified
    Bytes sub_tlvs;
};
// Splits an SSL TLV's value; v2_ssl_too_short or v2_ssl_subtlv_overrun (offsets relative to
// the value) when it is malformed.
Status parse_ssl(const Tlv &t, SslTlv &out);

// A decoded v2 header; views point into the decoder's input.
struct V2Header {
    Command command = Command::local;
    Family family = Family::unspec;
    Transport transport = Transport::unspec;
    Endpoint source;                    // INET / INET6
    Endpoint destination;               // INET / INET6
    std::string_view source_path;       // UNIX: up to the first NUL
    std::string_view destination_path;  // UNIX
    Bytes tlvs;                         // the TLV area after the address block
    Bytes unspec_data;                  // UNSPEC: skipped bytes that are not a TLV sequence
    bool has_crc32c = false;            // a CRC32C TLV was present (and matched)
    std::size_t length = 0;             // whole header: 16 + the length field

    // The first TLV of `type`, if any.
    std::optional<Tlv> find(std::uint8_t type) const;
    // Typed views of the first ALPN, AUTHORITY, NETNS, UNIQUE_ID and SSL TLVs.
    std::optional<std::string_view> alpn() const;
    std::optional<std::string_view> authority() const;
    std::optional<std::string_view> netns() const;
    std::optional<Bytes> unique_id() const;
    std::optional<SslTlv> ssl() const;
};

// Decodes and validates a whole v2 header: need_more until `16 + length` bytes are there
// (signature, version, command and family/transport are checked on the bytes present so
// far), then every TLV must fit, SSL sub-TLVs must fit, UNIQUE_ID is at most 128 bytes and
// every CRC32C TLV must match, whatever the command. With family UNSPEC the bytes after the
// fixed part are read as TLVs only if they form a TLV sequence, else skipped (unspec_data).
// `out` is meaningful only when the result is ok.
Status decode_v2(Bytes in, V2Header &out);

// Builds a v2 header in the caller's buffer without allocating: begin*(), TLVs, finish().
// A TLV refused before anything is written (bad type, too long) leaves the writer usable; a
// buffer overflow is sticky and makes finish() fail.
class V2Writer {
  public:
    explicit V2Writer(Buffer out) : out_(out) {}
    // Addresses of family_for(source, destination); transport STREAM or DGRAM.
    Error begin(Command command, Transport transport, const Endpoint &source,
                const Endpoint &destination);
    // UNSPEC/UNSPEC without addresses: LOCAL health checks, or PROXY for an unknown family.
    Error begin_unspec(Command command);
    // UNIX paths (at most 108 bytes each, NUL-padded).
    Error begin_unix(Command command, Transport transport, std::string_view source,
                     std::string_view destination);
    // Any TLV (a sub-TLV while an SSL TLV is open); CRC32C is refused: finish() adds it. An
    // SSL TLV given whole must be one the decoder reads (v2_ssl_too_short,
    // v2_ssl_subtlv_overrun); an empty value may have a null data pointer.
    Error add(std::uint8_t type, Bytes value);
    // add() with a text value.
    Error add_text(std::uint8_t type, std::string_view value);
    // ALPN (negotiated protocol), AUTHORITY (host name, SNI) and NETNS (namespace name).
    Error add_alpn(std::string_view protocol) { return add_text(tlv::alpn, protocol); }
    Error add_authority(std::string_view host) { return add_text(tlv::authority, host); }
    Error add_netns(std::string_view name) { return add_text(tlv::netns, name); }
    // At most 128 bytes, else v2_unique_id_too_long.
    Error add_unique_id(Bytes id);
    // Types 0xE0..0xEF only, else bad_tlv_type.
    Error add_custom(std::uint8_t type, Bytes value);
    // NOOP with `value_len` zero bytes (padding).
    Error add_noop(std::size_t value_len);
    // Opens an SSL TLV (client flags, verify result): then add() its sub-TLVs (0x21..0x2F).
    Error begin_ssl(std::uint8_t client, std::uint32_t verify);
    // Closes the SSL TLV, filling in its length.
    Error end_ssl();
    // Fills the length field and, with `crc32c`, appends a CRC32C TLV computed last over the
    // final header; `written` gets the header length.
    Error finish(bool crc32c, std::size_t &written);

  private:
    Error put(Bytes b);
    Error start(Command command, std::uint8_t family_transport, std::size_t block);
    Buffer out_;
    std::size_t pos_ = 0;
    std::size_t ssl_at_ = 0;  // offset of the open SSL TLV, 0 when none
    bool started_ = false;
    Error error_ = Error::ok;
};

// One-shot header without TLVs (the TCP acceptor's and UDP tests' common case).
Error encode_v2(Buffer out, Command command, Transport transport, const Endpoint &source,
                const Endpoint &destination, std::size_t &written);

}  // namespace ppinject::proxy
