#include "codec/proxy_v1.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "codec/wire.hpp"

namespace ppinject::proxy {
namespace {

using wire::status;

constexpr std::string_view kPrefix = "PROXY ";

enum class AddrCheck : std::uint8_t { ok, bad, noncanonical, wrong_family };

// Dotted quad of four decimal numbers 0..255; `leading_zero` tells whether one is written
// with a leading zero, which the specification forbids (octal confusion).
bool parse_dotted_quad(std::string_view s, std::array<std::uint8_t, 4> &out, bool &leading_zero) {
    leading_zero = false;
    std::size_t i = 0;
    for (std::size_t part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= s.size() || s[i] != '.') {
                return false;
            }
            i++;
        }
        std::size_t start = i;
        unsigned v = 0;
        while (i < s.size() && i - start < 3 && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + static_cast<unsigned>(s[i++] - '0');
        }
        if (i == start || v > 255) {
            return false;
        }
        leading_zero = leading_zero || (i - start > 1 && s[start] == '0');
        out[part] = static_cast<std::uint8_t>(v);
    }
    return i == s.size();
}

// An address field of a TCP4 (want_v6 false) or TCP6 line. IPv6 is taken in every RFC 4291
// text form inet_pton reads (compressed or not, leading zeros, embedded IPv4, either case):
// senders format it differently (RFC 5952 writes ::1:2 where glibc writes ::0.1.0.2), and
// the address is the same. IPv4 with a leading zero is refused: 010 reads as 8 elsewhere.
AddrCheck check_address(std::string_view s, bool want_v6, IpAddress &out) {
    if (s.find(':') == std::string_view::npos) {
        std::array<std::uint8_t, 4> b{};
        bool leading_zero = false;
        if (!parse_dotted_quad(s, b, leading_zero)) {
            return AddrCheck::bad;
        }
        if (want_v6) {
            return AddrCheck::wrong_family;
        }
        if (leading_zero) {
            return AddrCheck::noncanonical;
        }
        out = IpAddress::v4(b);
        return AddrCheck::ok;
    }
    char text[INET6_ADDRSTRLEN];
    std::array<std::uint8_t, 16> b{};
    if (s.size() >= sizeof text) {
        return AddrCheck::bad;
    }
    std::memcpy(text, s.data(), s.size());
    text[s.size()] = '\0';
    if (inet_pton(AF_INET6, text, b.data()) != 1) {
        return AddrCheck::bad;
    }
    if (!want_v6) {
        return AddrCheck::wrong_family;
    }
    out = IpAddress::v6(b);
    return AddrCheck::ok;
}

}  // namespace

Status decode_v1(Bytes in, V1Header &out) {
    const auto *c = reinterpret_cast<const char *>(in.data());
    std::size_t have = std::min(in.size(), kPrefix.size());
    for (std::size_t i = 0; i < have; i++) {
        if (c[i] != kPrefix[i]) {
            return status(Error::v1_bad_prefix, i);
        }
    }
    // The line ends at the first CR, which must be followed by LF within 107 bytes.
    std::size_t limit = std::min(in.size(), kV1MaxLen);
    std::size_t end = 0;
    for (std::size_t i = kPrefix.size(); i < limit && end == 0; i++) {
        if (c[i] == '\n') {
            return status(Error::v1_lone_lf, i);
        }
        if (c[i] == '\r') {
            if (i + 1 >= kV1MaxLen) {
                return status(Error::v1_no_crlf, i);  // its LF would be byte 108
            }
            if (i + 1 >= in.size()) {
                return wire::need_more(in.size());
            }
            if (c[i + 1] != '\n') {
                return status(Error::v1_lone_cr, i);
            }
            end = i + 2;
        }
    }
    if (end == 0) {
        return in.size() >= kV1MaxLen ? status(Error::v1_no_crlf, kV1MaxLen)
                                      : wire::need_more(in.size());
    }

    std::string_view line(c + kPrefix.size(), end - 2 - kPrefix.size());
    auto offset = [c](std::string_view field) {
        return static_cast<std::size_t>(field.data() - c);
    };
    std::size_t sp = line.find(' ');
    std::string_view protocol = line.substr(0, sp);
    if (protocol.empty()) {
        return status(Error::v1_empty_field, kPrefix.size());
    }
    out = V1Header{};
    out.length = end;
    if (protocol == "UNKNOWN") {
        return {};  // anything may follow; the receiver uses the connection's own addresses
    }
    if (protocol != "TCP4" && protocol != "TCP6") {
        return status(Error::v1_bad_protocol, kPrefix.size());
    }

    // Source, destination, source port, destination port: exactly one space before each.
    std::string_view fields[4];
    std::size_t count = 1;  // the protocol
    for (std::string_view rest = sp == std::string_view::npos ? "" : line.substr(sp + 1);
         sp != std::string_view::npos;) {
        sp = rest.find(' ');
        std::string_view field = rest.substr(0, sp);
        if (field.empty()) {
            return status(Error::v1_empty_field, offset(field));
        }
        if (count <= 4) {
            fields[count - 1] = field;
        }
        count++;
        rest = sp == std::string_view::npos ? "" : rest.substr(sp + 1);
    }
    if (count != 5) {
        return status(Error::v1_field_count, kPrefix.size(), count, 5);
    }

    bool v6 = protocol == "TCP6";
    out.protocol = v6 ? V1Protocol::tcp6 : V1Protocol::tcp4;
    IpAddress *addrs[2] = {&out.source.addr, &out.destination.addr};
    for (std::size_t side = 0; side < 2; side++) {
        std::size_t at = offset(fields[side]);
        switch (check_address(fields[side], v6, *addrs[side])) {
            case AddrCheck::ok:
                break;
            case AddrCheck::bad:
                return status(
                    side ? Error::v1_bad_destination_address : Error::v1_bad_source_address, at,
                    v6 ? 6 : 4);
            case AddrCheck::noncanonical:
                return status(side ? Error::v1_noncanonical_destination_address
                                   : Error::v1_noncanonical_source_address,
                              at);
            case AddrCheck::wrong_family:
                return status(Error::v1_address_family_mismatch, at, side, v6 ? 6 : 4);
        }
    }
    auto sport = parse_port(fields[2]);
    if (!sport) {
        return status(Error::v1_bad_source_port, offset(fields[2]));
    }
    auto dport = parse_port(fields[3]);
    if (!dport) {
        return status(Error::v1_bad_destination_port, offset(fields[3]));
    }
    out.source.port = *sport;
    out.destination.port = *dport;
    return {};
}

Error encode_v1(Buffer out, const Endpoint &source, const Endpoint &destination,
                std::size_t &written) {
    // Composed on the stack (the longest line is 104 bytes), then copied out in one go.
    char line[128];
    std::size_t n = 0;
    auto put = [&](std::string_view s) {
        std::memcpy(line + n, s.data(), s.size());
        n += s.size();
    };
    bool v6 = needs_ipv6(source, destination);
    put(v6 ? "PROXY TCP6" : "PROXY TCP4");
    for (const Endpoint *e : {&source, &destination}) {
        char text[INET6_ADDRSTRLEN];
        if (v6) {
            inet_ntop(AF_INET6, e->addr.mapped().data(), text, sizeof text);
        } else {
            inet_ntop(AF_INET, e->addr.mapped().data() + 12, text, sizeof text);
        }
        put(" ");
        put(text);
    }
    for (std::uint16_t port : {source.port, destination.port}) {
        put(" ");
        n = static_cast<std::size_t>(std::to_chars(line + n, line + sizeof line, port).ptr - line);
    }
    put("\r\n");
    if (n > out.size()) {
        return Error::buffer_too_small;
    }
    std::memcpy(out.data(), line, n);
    written = n;
    return Error::ok;
}

Error encode_v1_unknown(Buffer out, std::size_t &written) {
    static constexpr std::string_view kLine = "PROXY UNKNOWN\r\n";
    if (out.size() < kLine.size()) {
        return Error::buffer_too_small;
    }
    std::memcpy(out.data(), kLine.data(), kLine.size());
    written = kLine.size();
    return Error::ok;
}

}  // namespace ppinject::proxy
