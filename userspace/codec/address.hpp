// IP addresses and endpoints as the codec, the config and the loader share them.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ppinject {

// An IPv4 or IPv6 address. IPv4 is kept as an IPv4-mapped IPv6 address (::ffff:a.b.c.d),
// the form the BPF maps use, so one 16-byte array serves both families.
class IpAddress {
  public:
    IpAddress() = default;
    static IpAddress v4(std::array<std::uint8_t, 4> bytes);
    static IpAddress v6(const std::array<std::uint8_t, 16> &bytes);  // ::ffff:a.b.c.d -> v4
    // Strict text form: dotted quad or RFC 4291 IPv6 (no brackets, no zone, no prefix).
    static std::optional<IpAddress> parse(std::string_view text);

    bool is_v4() const { return is_v4_; }
    // 0.0.0.0 or ::.
    bool is_unspecified() const;
    // 127.0.0.0/8 or ::1.
    bool is_loopback() const;
    // 16 bytes, IPv4 mapped.
    const std::array<std::uint8_t, 16> &mapped() const { return bytes_; }
    // Canonical text: dotted quad, or RFC 5952 for IPv6.
    std::string to_string() const;

    friend bool operator==(const IpAddress &, const IpAddress &) = default;

  private:
    std::array<std::uint8_t, 16> bytes_{};
    bool is_v4_ = false;
};

// An address and a port (host byte order).
struct Endpoint {
    IpAddress addr;
    std::uint16_t port = 0;

    // "192.0.2.1:53" or "[2001:db8::1]:53"; the port is required (0..65535, no sign,
    // no leading zeros).
    static std::optional<Endpoint> parse(std::string_view text);
    // Same forms as parse() accepts.
    std::string to_string() const;
    // From a sockaddr_in / sockaddr_in6; nullopt for other families.
    static std::optional<Endpoint> from_sockaddr(const sockaddr *sa);
    // To sockaddr_in (IPv4) or sockaddr_in6; returns the length used.
    socklen_t to_sockaddr(sockaddr_storage &ss) const;

    friend bool operator==(const Endpoint &, const Endpoint &) = default;
};

// Decimal port without sign or leading zeros ("0".."65535").
std::optional<std::uint16_t> parse_port(std::string_view text);

}  // namespace ppinject
