#include "codec/proxy.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace ppinject::proxy {
namespace {

constexpr std::array<std::uint32_t, 256> make_crc32c_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; i++) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // Castagnoli, reflected
        }
        t[i] = c;
    }
    return t;
}
constexpr auto kCrc32cTable = make_crc32c_table();

std::uint16_t be16(const std::uint8_t *p) {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
void put_be16(std::uint8_t *p, std::size_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

// Minimum address block per family (v2 byte 13, high nibble).
std::size_t address_block(Family f) {
    switch (f) {
        case Family::inet:
            return 12;
        case Family::inet6:
            return 36;
        case Family::unix_socket:
            return 216;
        case Family::unspec:
            break;
    }
    return 0;
}

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

// Address text without allocating: dotted quad, or IPv6 (IPv4 mapped when `as_v6`).
std::string_view addr_text(const IpAddress &a, bool as_v6, char (&buf)[INET6_ADDRSTRLEN]) {
    if (as_v6) {
        inet_ntop(AF_INET6, a.mapped().data(), buf, sizeof buf);
    } else {
        inet_ntop(AF_INET, a.mapped().data() + 12, buf, sizeof buf);
    }
    return buf;
}

std::string_view unix_path(const std::uint8_t *p) {
    const auto *c = reinterpret_cast<const char *>(p);
    return {c, strnlen(c, 108)};
}

Error check_tlv(const Tlv &t, Bytes header, std::size_t value_offset, bool &crc_seen) {
    switch (t.type) {
        case tlv::unique_id:
            return t.value.size() > kUniqueIdMax ? Error::v2_unique_id_too_long : Error::ok;
        case tlv::ssl: {
            SslTlv ssl;
            return parse_ssl(t, ssl);
        }
        case tlv::crc32c: {
            if (t.value.size() != 4) {
                return Error::v2_crc32c_bad_length;
            }
            // CRC of the whole header with the value's 4 bytes taken as zero.
            static constexpr std::uint8_t zero[4] = {};
            std::uint32_t c = crc32c(header.first(value_offset));
            c = crc32c(Bytes(zero, 4), c);
            c = crc32c(header.subspan(value_offset + 4), c);
            std::uint32_t want = static_cast<std::uint32_t>(t.value[0]) << 24 |
                                 static_cast<std::uint32_t>(t.value[1]) << 16 |
                                 static_cast<std::uint32_t>(t.value[2]) << 8 | t.value[3];
            crc_seen = true;
            return c == want ? Error::ok : Error::v2_crc32c_mismatch;
        }
    }
    return Error::ok;
}

}  // namespace

std::uint32_t crc32c(Bytes data, std::uint32_t crc) {
    crc = ~crc;
    for (std::uint8_t b : data) {
        crc = kCrc32cTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
    }
    return ~crc;
}

std::string_view describe(Error e) {
    switch (e) {
        case Error::ok:
            return "ok";
        case Error::need_more:
            return "incomplete header: need more bytes";
        case Error::unknown_format:
            return "not a PROXY v1, PROXY v2 or SPP header";
        case Error::v1_bad_prefix:
            return "line does not start with \"PROXY \"";
        case Error::v1_no_crlf:
            return "no CRLF within the first 107 bytes";
        case Error::v1_lone_cr:
            return "CR not followed by LF";
        case Error::v1_lone_lf:
            return "LF without a CR before it";
        case Error::v1_bad_protocol:
            return "protocol is not TCP4, TCP6 or UNKNOWN";
        case Error::v1_field_count:
            return "expected exactly 5 fields separated by single spaces";
        case Error::v1_bad_source_address:
            return "source address is not a valid address";
        case Error::v1_bad_destination_address:
            return "destination address is not a valid address";
        case Error::v1_address_family_mismatch:
            return "address family does not match TCP4/TCP6";
        case Error::v1_bad_source_port:
            return "source port is not 0..65535 without leading zeros";
        case Error::v1_bad_destination_port:
            return "destination port is not 0..65535 without leading zeros";
        case Error::v2_bad_signature:
            return "bad signature";
        case Error::v2_bad_version:
            return "version is not 2";
        case Error::v2_bad_command:
            return "command is neither LOCAL nor PROXY";
        case Error::v2_bad_family_transport:
            return "invalid address family / transport byte";
        case Error::v2_length_too_short:
            return "length is shorter than the address block of its family";
        case Error::v2_tlv_overrun:
            return "a TLV runs past the end of the header";
        case Error::v2_ssl_too_short:
            return "SSL TLV shorter than its 5-byte client/verify part";
        case Error::v2_ssl_subtlv_overrun:
            return "an SSL sub-TLV runs past the end of the SSL TLV";
        case Error::v2_unique_id_too_long:
            return "UNIQUE_ID longer than 128 bytes";
        case Error::v2_crc32c_bad_length:
            return "CRC32C TLV is not 4 bytes";
        case Error::v2_crc32c_mismatch:
            return "CRC32C checksum does not match";
        case Error::spp_bad_magic:
            return "bad magic (expected 0x56EC)";
        case Error::buffer_too_small:
            return "output buffer too small";
        case Error::value_too_long:
            return "TLV value too long";
        case Error::bad_tlv_type:
            return "TLV type not allowed here";
        case Error::not_started:
            return "header writer used out of order";
    }
    return "unknown error";
}

// ---- v1 ---------------------------------------------------------------------------------

Error decode_v1(Bytes in, V1Header &out) {
    static constexpr std::string_view prefix = "PROXY ";
    std::size_t n = std::min(in.size(), prefix.size());
    if (std::memcmp(in.data(), prefix.data(), n) != 0) {
        return Error::v1_bad_prefix;
    }
    // The line ends at the first CRLF, which must come within 107 bytes.
    std::size_t limit = std::min(in.size(), kV1MaxLen);
    std::size_t end = 0;
    for (std::size_t i = 0; i < limit && end == 0; i++) {
        if (in[i] == '\n') {
            return Error::v1_lone_lf;
        }
        if (in[i] == '\r') {
            if (i + 1 >= kV1MaxLen) {
                return Error::v1_no_crlf;  // its LF would be byte 108
            }
            if (i + 1 >= in.size()) {
                return Error::need_more;
            }
            if (in[i + 1] != '\n') {
                return Error::v1_lone_cr;
            }
            end = i + 2;
        }
    }
    if (end == 0) {
        return in.size() >= kV1MaxLen ? Error::v1_no_crlf : Error::need_more;
    }
    if (in.size() < prefix.size()) {
        return Error::need_more;
    }
    std::string_view line(reinterpret_cast<const char *>(in.data()) + prefix.size(),
                          end - 2 - prefix.size());
    out = V1Header{};
    out.length = end;

    std::string_view fields[6];
    std::size_t count = 0;
    for (std::size_t start = 0; count < 6;) {
        std::size_t sp = line.find(' ', start);
        fields[count++] = line.substr(start, sp - start);
        if (sp == std::string_view::npos) {
            break;
        }
        start = sp + 1;
    }
    if (fields[0] == "UNKNOWN") {
        out.protocol = V1Protocol::unknown;
        return Error::ok;  // anything may follow; the receiver uses the socket's addresses
    }
    if (fields[0] != "TCP4" && fields[0] != "TCP6") {
        return Error::v1_bad_protocol;
    }
    if (count != 5 || std::any_of(fields, fields + 5, [](auto f) { return f.empty(); })) {
        return Error::v1_field_count;
    }
    bool v6 = fields[0] == "TCP6";
    out.protocol = v6 ? V1Protocol::tcp6 : V1Protocol::tcp4;
    auto src = IpAddress::parse(fields[1]);
    auto dst = IpAddress::parse(fields[2]);
    if (!src) {
        return Error::v1_bad_source_address;
    }
    if (!dst) {
        return Error::v1_bad_destination_address;
    }
    // The text decides the family: "::ffff:192.0.2.1" is an IPv6 address here.
    bool src_v6 = fields[1].find(':') != std::string_view::npos;
    bool dst_v6 = fields[2].find(':') != std::string_view::npos;
    if (src_v6 != v6 || dst_v6 != v6) {
        return Error::v1_address_family_mismatch;
    }
    auto sport = parse_port(fields[3]);
    auto dport = parse_port(fields[4]);
    if (!sport) {
        return Error::v1_bad_source_port;
    }
    if (!dport) {
        return Error::v1_bad_destination_port;
    }
    out.source = {*src, *sport};
    out.destination = {*dst, *dport};
    return Error::ok;
}

Error encode_v1(Buffer out, const Endpoint &source, const Endpoint &destination,
                std::size_t &written) {
    bool v6 = !source.addr.is_v4() || !destination.addr.is_v4();
    char sbuf[INET6_ADDRSTRLEN], dbuf[INET6_ADDRSTRLEN];
    std::string_view parts[] = {v6 ? "PROXY TCP6 " : "PROXY TCP4 ",
                                addr_text(source.addr, v6, sbuf), " ",
                                addr_text(destination.addr, v6, dbuf), " "};
    std::size_t pos = 0;
    for (auto p : parts) {
        if (pos + p.size() > out.size()) {
            return Error::buffer_too_small;
        }
        std::memcpy(out.data() + pos, p.data(), p.size());
        pos += p.size();
    }
    char *begin = reinterpret_cast<char *>(out.data());
    for (std::uint16_t port : {source.port, destination.port}) {
        auto r = std::to_chars(begin + pos, begin + out.size(), port);
        if (r.ec != std::errc() || r.ptr + 1 > begin + out.size()) {
            return Error::buffer_too_small;
        }
        pos = static_cast<std::size_t>(r.ptr - begin);
        begin[pos++] = ' ';
    }
    pos--;  // the last port is followed by CRLF, not a space
    if (pos + 2 > out.size()) {
        return Error::buffer_too_small;
    }
    begin[pos++] = '\r';
    begin[pos++] = '\n';
    written = pos;
    return Error::ok;
}

Error encode_v1_unknown(Buffer out, std::size_t &written) {
    static constexpr std::string_view line = "PROXY UNKNOWN\r\n";
    if (out.size() < line.size()) {
        return Error::buffer_too_small;
    }
    std::memcpy(out.data(), line.data(), line.size());
    written = line.size();
    return Error::ok;
}

// ---- v2 ---------------------------------------------------------------------------------

bool TlvReader::next(Tlv &out) {
    if (rest_.empty()) {
        return false;
    }
    if (rest_.size() < 3 || rest_.size() < 3u + be16(rest_.data() + 1)) {
        overrun_ = true;
        return false;
    }
    std::size_t len = be16(rest_.data() + 1);
    out.type = rest_[0];
    out.value = rest_.subspan(3, len);
    rest_ = rest_.subspan(3 + len);
    return true;
}

Error parse_ssl(const Tlv &t, SslTlv &out) {
    if (t.value.size() < 5) {
        return Error::v2_ssl_too_short;
    }
    out.client = t.value[0];
    out.verify = static_cast<std::uint32_t>(t.value[1]) << 24 |
                 static_cast<std::uint32_t>(t.value[2]) << 16 |
                 static_cast<std::uint32_t>(t.value[3]) << 8 | t.value[4];
    out.sub_tlvs = t.value.subspan(5);
    TlvReader r(out.sub_tlvs);
    Tlv sub;
    while (r.next(sub)) {
    }
    return r.overrun() ? Error::v2_ssl_subtlv_overrun : Error::ok;
}

Error decode_v2(Bytes in, V2Header &out) {
    std::size_t n = std::min(in.size(), kV2Signature.size());
    if (std::memcmp(in.data(), kV2Signature.data(), n) != 0) {
        return Error::v2_bad_signature;
    }
    if (in.size() > 12) {
        if ((in[12] >> 4) != 2) {
            return Error::v2_bad_version;
        }
        if ((in[12] & 0x0F) > 1) {
            return Error::v2_bad_command;
        }
    }
    if (in.size() > 13 && !valid_family_transport(in[13])) {
        return Error::v2_bad_family_transport;
    }
    if (in.size() < kV2FixedLen) {
        return Error::need_more;
    }
    out = V2Header{};
    out.command = static_cast<Command>(in[12] & 0x0F);
    out.family = static_cast<Family>(in[13] >> 4);
    out.transport = static_cast<Transport>(in[13] & 0x0F);
    std::size_t len = be16(in.data() + 14);
    std::size_t block = address_block(out.family);
    if (len < block) {
        return Error::v2_length_too_short;
    }
    if (in.size() < kV2FixedLen + len) {
        return Error::need_more;
    }
    out.length = kV2FixedLen + len;
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
            out.destination_path = unix_path(a + 108);
            break;
        case Family::unspec:
            return Error::ok;  // the receiver skips the whole block
    }
    Bytes header = in.first(out.length);
    out.tlvs = header.subspan(kV2FixedLen + block);
    TlvReader r(out.tlvs);
    Tlv t;
    while (r.next(t)) {
        std::size_t value_offset = static_cast<std::size_t>(t.value.data() - in.data());
        Error e = check_tlv(t, header, value_offset, out.has_crc32c);
        if (e != Error::ok) {
            return e;
        }
    }
    return r.overrun() ? Error::v2_tlv_overrun : Error::ok;
}

Error V2Writer::put(Bytes b) {
    if (error_ != Error::ok) {
        return error_;
    }
    if (pos_ + b.size() > out_.size()) {
        return error_ = Error::buffer_too_small;
    }
    std::memcpy(out_.data() + pos_, b.data(), b.size());
    pos_ += b.size();
    return Error::ok;
}

Error V2Writer::begin_unspec(Command command) {
    pos_ = 0;
    error_ = Error::ok;
    std::uint8_t fixed[4] = {static_cast<std::uint8_t>(0x20 | static_cast<std::uint8_t>(command)),
                             0x00, 0, 0};
    put(kV2Signature);
    started_ = put(fixed) == Error::ok;
    return error_;
}

Error V2Writer::begin(Command command, Transport transport, const Endpoint &source,
                      const Endpoint &destination) {
    bool v6 = !source.addr.is_v4() || !destination.addr.is_v4();
    begin_unspec(command);
    if (error_ != Error::ok) {
        return error_;
    }
    out_[13] = static_cast<std::uint8_t>((v6 ? 0x20 : 0x10) | static_cast<std::uint8_t>(transport));
    std::uint8_t ports[4];
    put_be16(ports, source.port);
    put_be16(ports + 2, destination.port);
    if (v6) {
        put(source.addr.mapped());
        put(destination.addr.mapped());
    } else {
        put(Bytes(source.addr.mapped()).subspan(12));
        put(Bytes(destination.addr.mapped()).subspan(12));
    }
    return put(ports);
}

Error V2Writer::begin_unix(Command command, Transport transport, std::string_view source,
                           std::string_view destination) {
    if (source.size() > 108 || destination.size() > 108) {
        return error_ = Error::value_too_long;
    }
    begin_unspec(command);
    if (error_ != Error::ok) {
        return error_;
    }
    out_[13] = static_cast<std::uint8_t>(0x30 | static_cast<std::uint8_t>(transport));
    for (auto path : {source, destination}) {
        if (pos_ + 108 > out_.size()) {
            return error_ = Error::buffer_too_small;
        }
        std::memset(out_.data() + pos_, 0, 108);
        std::memcpy(out_.data() + pos_, path.data(), path.size());
        pos_ += 108;
    }
    return Error::ok;
}

Error V2Writer::add(std::uint8_t type, Bytes value) {
    if (!started_) {
        return Error::not_started;
    }
    if (value.size() > 0xFFFF) {
        return Error::value_too_long;  // nothing written: the writer stays usable
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
    if (id.size() > kUniqueIdMax) {
        return Error::value_too_long;
    }
    return add(tlv::unique_id, id);
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
    std::uint8_t head[3] = {tlv::noop, 0, 0};
    put_be16(head + 1, value_len);
    put(head);
    if (error_ == Error::ok && pos_ + value_len > out_.size()) {
        error_ = Error::buffer_too_small;
    }
    if (error_ != Error::ok) {
        return error_;
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
    std::uint8_t fixed[8] = {tlv::ssl,
                             0,
                             0,
                             client,
                             static_cast<std::uint8_t>(verify >> 24),
                             static_cast<std::uint8_t>(verify >> 16),
                             static_cast<std::uint8_t>(verify >> 8),
                             static_cast<std::uint8_t>(verify)};
    if (put(fixed) == Error::ok) {
        ssl_at_ = at;
    }
    return error_;
}

Error V2Writer::end_ssl() {
    if (ssl_at_ == 0) {
        return Error::not_started;
    }
    if (error_ == Error::ok) {
        put_be16(out_.data() + ssl_at_ + 1, pos_ - ssl_at_ - 3);
    }
    ssl_at_ = 0;
    return error_;
}

Error V2Writer::finish(bool with_crc32c, std::size_t &written) {
    if (!started_ || ssl_at_ != 0) {
        return Error::not_started;
    }
    std::size_t crc_at = 0;
    if (with_crc32c) {
        static constexpr std::uint8_t zero[4] = {};
        add(tlv::crc32c, zero);
        crc_at = pos_ - 4;
    }
    if (error_ != Error::ok) {
        return error_;
    }
    if (pos_ - kV2FixedLen > 0xFFFF) {
        return error_ = Error::value_too_long;
    }
    put_be16(out_.data() + 14, pos_ - kV2FixedLen);
    if (with_crc32c) {
        std::uint32_t c = crc32c(Bytes(out_.data(), pos_));
        out_[crc_at] = static_cast<std::uint8_t>(c >> 24);
        out_[crc_at + 1] = static_cast<std::uint8_t>(c >> 16);
        out_[crc_at + 2] = static_cast<std::uint8_t>(c >> 8);
        out_[crc_at + 3] = static_cast<std::uint8_t>(c);
    }
    written = pos_;
    return Error::ok;
}

// ---- SPP --------------------------------------------------------------------------------

Error decode_spp(Bytes in, SppHeader &out) {
    if ((in.size() >= 1 && in[0] != (kSppMagic >> 8)) ||
        (in.size() >= 2 && in[1] != (kSppMagic & 0xFF))) {
        return Error::spp_bad_magic;
    }
    if (in.size() < kSppLen) {
        return Error::need_more;
    }
    std::array<std::uint8_t, 16> c, p;
    std::memcpy(c.data(), in.data() + 2, 16);
    std::memcpy(p.data(), in.data() + 18, 16);
    out.client = {IpAddress::v6(c), be16(in.data() + 34)};
    out.proxy = {IpAddress::v6(p), be16(in.data() + 36)};
    return Error::ok;
}

Error encode_spp(Buffer out, const Endpoint &client, const Endpoint &proxy) {
    if (out.size() < kSppLen) {
        return Error::buffer_too_small;
    }
    put_be16(out.data(), kSppMagic);
    std::memcpy(out.data() + 2, client.addr.mapped().data(), 16);
    std::memcpy(out.data() + 18, proxy.addr.mapped().data(), 16);
    put_be16(out.data() + 34, client.port);
    put_be16(out.data() + 36, proxy.port);
    return Error::ok;
}

// ---- any --------------------------------------------------------------------------------

Error decode_any(Bytes in, AnyHeader &out) {
    if (in.empty()) {
        return Error::need_more;
    }
    Error e = Error::unknown_format;
    switch (in[0]) {
        case 'P':
            out.kind = Kind::v1;
            e = decode_v1(in, out.v1);
            out.length = out.v1.length;
            break;
        case 0x0D:
            out.kind = Kind::v2;
            e = decode_v2(in, out.v2);
            out.length = out.v2.length;
            break;
        case kSppMagic >> 8:
            out.kind = Kind::spp;
            e = decode_spp(in, out.spp);
            out.length = kSppLen;
            break;
    }
    return e;
}

}  // namespace ppinject::proxy
