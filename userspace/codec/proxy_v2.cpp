#include "codec/proxy_v2.hpp"

#include <algorithm>
#include <cstring>

#include "codec/wire.hpp"

namespace ppinject::proxy {
namespace {

using wire::be16;
using wire::be32;
using wire::put_be16;
using wire::status;

bool valid_family_transport(std::uint8_t b) {
    switch (b) {
        case 0x00:
        case 0x11:
        case 0x12:
        case 0x21:
        case 0x22:
        case 0x31:
        case 0x32:
            return true;
    }
    return false;
}

std::string_view unix_path(const std::uint8_t *p) {
    const auto *c = reinterpret_cast<const char *>(p);
    return {c, strnlen(c, kV2UnixPathLen)};
}

// The TLV at `pos` of `area` fits (its 3-byte head and its value); else the overrun status
// (offset, bytes it needs, bytes left, type).
Status tlv_fits(Bytes area, std::size_t pos, Error overrun, std::size_t &len) {
    std::size_t left = area.size() - pos;
    len = left >= 3 ? be16(area.data() + pos + 1) : 0;
    if (left < 3 || left < 3 + len) {
        return status(overrun, pos, left < 3 ? 3 : 3 + len, left, area[pos]);
    }
    return {};
}

// Type-specific checks of one top-level TLV of `header` whose head is at `pos`.
Status check_tlv(Bytes header, std::size_t pos, const Tlv &t, bool &crc_seen) {
    switch (t.type) {
        case tlv::unique_id:
            if (t.value.size() > kUniqueIdMax) {
                return status(Error::v2_unique_id_too_long, pos, t.value.size(), kUniqueIdMax,
                              t.type);
            }
            break;
        case tlv::ssl: {
            SslTlv ssl;
            Status s = parse_ssl(t, ssl);
            s.offset += static_cast<std::uint32_t>(pos + 3);
            return s.ok() ? Status{} : s;
        }
        case tlv::crc32c: {
            if (t.value.size() != 4) {
                return status(Error::v2_crc32c_bad_length, pos, t.value.size(), 4, t.type);
            }
            // CRC32c of the whole header with these 4 bytes read as zero.
            static constexpr std::uint8_t kZero[4] = {};
            std::size_t at = pos + 3;
            std::uint32_t c = crc32c(header.first(at));
            c = crc32c(kZero, c);
            c = crc32c(header.subspan(at + 4), c);
            std::uint32_t stored = be32(t.value.data());
            if (c != stored) {
                return status(Error::v2_crc32c_mismatch, pos, stored, c, t.type);
            }
            crc_seen = true;
            break;
        }
    }
    return {};
}

}  // namespace

std::size_t address_block_len(Family f) {
    switch (f) {
        case Family::inet:
            return kV2InetAddrLen;
        case Family::inet6:
            return kV2Inet6AddrLen;
        case Family::unix_socket:
            return kV2UnixAddrLen;
        case Family::unspec:
            break;
    }
    return 0;
}

std::string_view name(Command c) {
    return c == Command::proxy ? "PROXY" : "LOCAL";
}

std::string_view name(Family f) {
    static constexpr std::string_view kNames[] = {"UNSPEC", "INET", "INET6", "UNIX"};
    return kNames[static_cast<std::size_t>(f) & 3];
}

std::string_view name(Transport t) {
    static constexpr std::string_view kNames[] = {"UNSPEC", "STREAM", "DGRAM", "?"};
    return kNames[static_cast<std::size_t>(t) & 3];
}

std::string_view tlv_name(std::uint8_t type, bool ssl_sub) {
    if (ssl_sub) {
        static constexpr std::string_view kSub[] = {
            "SSL_VERSION", "SSL_CN",    "SSL_CIPHER",     "SSL_SIG_ALG",
            "SSL_KEY_ALG", "SSL_GROUP", "SSL_SIG_SCHEME", "SSL_CLIENT_CERT"};
        return type >= tlv::ssl_version && type <= tlv::ssl_client_cert
                   ? kSub[type - tlv::ssl_version]
                   : "UNKNOWN";
    }
    switch (type) {
        case tlv::alpn:
            return "ALPN";
        case tlv::authority:
            return "AUTHORITY";
        case tlv::crc32c:
            return "CRC32C";
        case tlv::noop:
            return "NOOP";
        case tlv::unique_id:
            return "UNIQUE_ID";
        case tlv::ssl:
            return "SSL";
        case tlv::netns:
            return "NETNS";
    }
    if (type >= tlv::custom_min && type <= tlv::custom_max) {
        return "CUSTOM";
    }
    if (type >= tlv::experiment_min && type <= tlv::experiment_max) {
        return "EXPERIMENT";
    }
    return type >= tlv::future_min ? "FUTURE" : "UNKNOWN";
}

// ---- decoding -----------------------------------------------------------------------------

bool TlvReader::next(Tlv &out) {
    if (overrun_ || pos_ >= area_.size()) {
        return false;
    }
    std::size_t len = 0;
    if (!tlv_fits(area_, pos_, Error::v2_tlv_overrun, len).ok()) {
        overrun_ = true;
        return false;
    }
    out.type = area_[pos_];
    out.value = area_.subspan(pos_ + 3, len);
    pos_ += 3 + len;
    return true;
}

Status parse_ssl(const Tlv &t, SslTlv &out) {
    if (t.value.size() < 5) {
        return status(Error::v2_ssl_too_short, 0, t.value.size(), 5, t.type);
    }
    out.client = t.value[0];
    out.verify = be32(t.value.data() + 1);
    out.sub_tlvs = t.value.subspan(5);
    for (std::size_t pos = 0, len = 0; pos < out.sub_tlvs.size(); pos += 3 + len) {
        Status s = tlv_fits(out.sub_tlvs, pos, Error::v2_ssl_subtlv_overrun, len);
        if (!s.ok()) {
            s.offset += 5;
            return s;
        }
    }
    return {};
}

std::optional<Tlv> V2Header::find(std::uint8_t type) const {
    for (const Tlv &t : TlvReader(tlvs)) {
        if (t.type == type) {
            return t;
        }
    }
    return std::nullopt;
}

std::optional<std::string_view> V2Header::alpn() const {
    auto t = find(tlv::alpn);
    return t ? std::optional(t->text()) : std::nullopt;
}

std::optional<std::string_view> V2Header::authority() const {
    auto t = find(tlv::authority);
    return t ? std::optional(t->text()) : std::nullopt;
}

std::optional<std::string_view> V2Header::netns() const {
    auto t = find(tlv::netns);
    return t ? std::optional(t->text()) : std::nullopt;
}

std::optional<Bytes> V2Header::unique_id() const {
    auto t = find(tlv::unique_id);
    return t ? std::optional(t->value) : std::nullopt;
}

std::optional<SslTlv> V2Header::ssl() const {
    auto t = find(tlv::ssl);
    SslTlv ssl;
    if (!t || !parse_ssl(*t, ssl).ok()) {
        return std::nullopt;
    }
    return ssl;
}

Status decode_v2(Bytes in, V2Header &out) {
    // Reject as early as the bytes allow: a stream that is not v2 fails at its first byte.
    std::size_t n = std::min(in.size(), kV2Signature.size());
    for (std::size_t i = 0; i < n; i++) {
        if (in[i] != kV2Signature[i]) {
            return status(Error::v2_bad_signature, i, in[i], kV2Signature[i]);
        }
    }
    if (in.size() > 12) {
        if ((in[12] >> 4) != 2) {
            return status(Error::v2_bad_version, 12, in[12] >> 4, 2);
        }
        if ((in[12] & 0x0F) > 1) {
            return status(Error::v2_bad_command, 12, in[12] & 0x0F);
        }
    }
    if (in.size() > 13 && !valid_family_transport(in[13])) {
        return status(Error::v2_bad_family_transport, 13, in[13]);
    }
    if (in.size() < kV2FixedLen) {
        return wire::need_more(in.size());
    }
    out = V2Header{};
    out.command = static_cast<Command>(in[12] & 0x0F);
    out.family = static_cast<Family>(in[13] >> 4);
    out.transport = static_cast<Transport>(in[13] & 0x0F);
    std::size_t len = be16(in.data() + 14);
    std::size_t block = address_block_len(out.family);
    if (len < block) {
        return status(Error::v2_length_too_short, 14, len, block);
    }
    out.length = kV2FixedLen + len;
    if (in.size() < out.length) {
        return wire::need_more(in.size(), out.length);
    }

    const std::uint8_t *a = in.data() + kV2FixedLen;
    switch (out.family) {
        case Family::inet: {
            std::array<std::uint8_t, 4> s, d;
            std::memcpy(s.data(), a, 4);
            std::memcpy(d.data(), a + 4, 4);
            out.source = {IpAddress::v4(s), be16(a + 8)};
            out.destination = {IpAddress::v4(d), be16(a + 10)};
            break;
        }
        case Family::inet6: {
            std::array<std::uint8_t, 16> s, d;
            std::memcpy(s.data(), a, 16);
            std::memcpy(d.data(), a + 16, 16);
            out.source = {IpAddress::v6(s), be16(a + 32)};
            out.destination = {IpAddress::v6(d), be16(a + 34)};
            break;
        }
        case Family::unix_socket:
            out.source_path = unix_path(a);
            out.destination_path = unix_path(a + kV2UnixPathLen);
            break;
        case Family::unspec:
            break;
    }

    Bytes header = in.first(out.length);
    out.tlvs = header.subspan(kV2FixedLen + block);
    if (out.family == Family::unspec) {
        // UNSPEC may carry address data of an unsupported family: the receiver skips it. Only
        // an area that is a whole TLV sequence (a LOCAL health check's CRC32C, say) is read.
        TlvReader r(out.tlvs);
        for (Tlv t; r.next(t);) {
        }
        if (r.overrun()) {
            out.unspec_data = out.tlvs;
            out.tlvs = {};
            return {};
        }
    }
    for (std::size_t pos = kV2FixedLen + block, tlen = 0; pos < header.size(); pos += 3 + tlen) {
        Status s = tlv_fits(header, pos, Error::v2_tlv_overrun, tlen);
        if (s.ok()) {
            s = check_tlv(header, pos, Tlv{header[pos], header.subspan(pos + 3, tlen)},
                          out.has_crc32c);
        }
        if (!s.ok()) {
            return s;
        }
    }
    return {};
}

// ---- encoding -----------------------------------------------------------------------------

Error V2Writer::put(Bytes b) {
    if (error_ != Error::ok) {
        return error_;
    }
    if (b.size() > out_.size() - pos_) {
        return error_ = Error::buffer_too_small;
    }
    if (!b.empty()) {  // an empty span may hold a null pointer, which memcpy must not get
        std::memcpy(out_.data() + pos_, b.data(), b.size());
    }
    pos_ += b.size();
    return Error::ok;
}

Error V2Writer::start(Command command, std::uint8_t family_transport, std::size_t block) {
    // Started even when it does not fit: later calls then report the sticky overflow.
    pos_ = 0;
    ssl_at_ = 0;
    error_ = Error::ok;
    started_ = true;
    if (out_.size() < kV2FixedLen + block) {
        return error_ = Error::buffer_too_small;
    }
    const std::uint8_t fixed[4] = {static_cast<std::uint8_t>(0x20 | static_cast<int>(command)),
                                   family_transport, 0, 0};
    put(kV2Signature);
    return put(fixed);
}

Error V2Writer::begin(Command command, Transport transport, const Endpoint &source,
                      const Endpoint &destination) {
    if (transport == Transport::unspec) {
        return Error::v2_bad_family_transport;  // 0x10 / 0x20 are not valid bytes
    }
    Family f = family_for(source, destination);
    Error e = start(
        command, static_cast<std::uint8_t>(static_cast<int>(f) << 4 | static_cast<int>(transport)),
        address_block_len(f));
    if (e != Error::ok) {
        return e;
    }
    Bytes src(source.addr.mapped()), dst(destination.addr.mapped());
    if (f == Family::inet) {
        src = src.subspan(12);  // the IPv4 bytes of the mapped form
        dst = dst.subspan(12);
    }
    std::uint8_t ports[4];
    put_be16(ports, source.port);
    put_be16(ports + 2, destination.port);
    put(src);
    put(dst);
    return put(ports);
}

Error V2Writer::begin_unspec(Command command) {
    return start(command, 0x00, 0);
}

Error V2Writer::begin_unix(Command command, Transport transport, std::string_view source,
                           std::string_view destination) {
    if (transport == Transport::unspec) {
        return Error::v2_bad_family_transport;
    }
    if (source.size() > kV2UnixPathLen || destination.size() > kV2UnixPathLen) {
        return Error::value_too_long;
    }
    Error e = start(command, static_cast<std::uint8_t>(0x30 | static_cast<int>(transport)),
                    kV2UnixAddrLen);
    if (e != Error::ok) {
        return e;
    }
    for (std::string_view path : {source, destination}) {
        std::memset(out_.data() + pos_, 0, kV2UnixPathLen);
        std::copy(path.begin(), path.end(), out_.data() + pos_);
        pos_ += kV2UnixPathLen;
    }
    return Error::ok;
}

Error V2Writer::add(std::uint8_t type, Bytes value) {
    if (!started_) {
        return Error::not_started;
    }
    bool in_ssl = ssl_at_ != 0;
    if ((in_ssl && (type < 0x21 || type > 0x2F)) || (!in_ssl && type == tlv::crc32c)) {
        return Error::bad_tlv_type;
    }
    if (!in_ssl && type == tlv::unique_id && value.size() > kUniqueIdMax) {
        return Error::v2_unique_id_too_long;
    }
    // An SSL TLV written whole is held to what the decoder requires of one.
    if (SslTlv ssl; !in_ssl && type == tlv::ssl) {
        if (Status s = parse_ssl(Tlv{type, value}, ssl); !s.ok()) {
            return s.error;
        }
    }
    if (value.size() > 0xFFFF) {
        return Error::value_too_long;
    }
    std::uint8_t head[3] = {type, 0, 0};
    put_be16(head + 1, value.size());
    put(head);
    return put(value);
}

Error V2Writer::add_text(std::uint8_t type, std::string_view value) {
    return add(type, Bytes(reinterpret_cast<const std::uint8_t *>(value.data()), value.size()));
}

Error V2Writer::add_unique_id(Bytes id) {
    return id.size() > kUniqueIdMax ? Error::v2_unique_id_too_long : add(tlv::unique_id, id);
}

Error V2Writer::add_custom(std::uint8_t type, Bytes value) {
    if (type < tlv::custom_min || type > tlv::custom_max) {
        return Error::bad_tlv_type;
    }
    return add(type, value);
}

Error V2Writer::add_noop(std::size_t value_len) {
    if (!started_) {
        return Error::not_started;
    }
    if (value_len > 0xFFFF) {
        return Error::value_too_long;
    }
    std::uint8_t head[3] = {tlv::noop, 0, 0};
    put_be16(head + 1, value_len);
    if (put(head) != Error::ok) {
        return error_;
    }
    if (value_len > out_.size() - pos_) {
        return error_ = Error::buffer_too_small;
    }
    std::memset(out_.data() + pos_, 0, value_len);
    pos_ += value_len;
    return Error::ok;
}

Error V2Writer::begin_ssl(std::uint8_t client, std::uint32_t verify) {
    if (!started_ || ssl_at_ != 0) {
        return Error::not_started;
    }
    std::size_t at = pos_;
    std::uint8_t fixed[8] = {tlv::ssl, 0, 0, client};
    wire::put_be32(fixed + 4, verify);
    if (put(fixed) == Error::ok) {
        ssl_at_ = at;  // never 0: the fixed part comes first
    }
    return error_;
}

Error V2Writer::end_ssl() {
    std::size_t at = ssl_at_;
    ssl_at_ = 0;
    if (error_ != Error::ok) {
        return error_;
    }
    if (at == 0) {
        return Error::not_started;
    }
    if (pos_ - at - 3 > 0xFFFF) {
        return error_ = Error::value_too_long;
    }
    put_be16(out_.data() + at + 1, pos_ - at - 3);
    return Error::ok;
}

Error V2Writer::finish(bool with_crc32c, std::size_t &written) {
    if (!started_ || ssl_at_ != 0) {
        return Error::not_started;
    }
    if (with_crc32c) {
        static constexpr std::uint8_t kEmptyCrc[7] = {tlv::crc32c, 0x00, 0x04};
        put(kEmptyCrc);
    }
    if (error_ != Error::ok) {
        return error_;
    }
    if (pos_ > kV2MaxLen) {
        return error_ = Error::value_too_long;
    }
    put_be16(out_.data() + 14, pos_ - kV2FixedLen);
    if (with_crc32c) {
        // Last, over the final header with its own 4 bytes still zero.
        wire::put_be32(out_.data() + pos_ - 4, crc32c(Bytes(out_.data(), pos_)));
    }
    started_ = false;
    written = pos_;
    return Error::ok;
}

Error encode_v2(Buffer out, Command command, Transport transport, const Endpoint &source,
                const Endpoint &destination, std::size_t &written) {
    V2Writer w(out);
    Error e = w.begin(command, transport, source, destination);
    return e != Error::ok ? e : w.finish(false, written);
}

}  // namespace ppinject::proxy
