#include "codec/address.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace ppinject {
namespace {

constexpr std::array<std::uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_mapped(const std::array<std::uint8_t, 16> &b) {
    return std::memcmp(b.data(), kMappedPrefix.data(), kMappedPrefix.size()) == 0;
}

}  // namespace

IpAddress IpAddress::v4(std::array<std::uint8_t, 4> bytes) {
    IpAddress a;
    std::memcpy(a.bytes_.data(), kMappedPrefix.data(), kMappedPrefix.size());
    std::memcpy(a.bytes_.data() + 12, bytes.data(), 4);
    a.is_v4_ = true;
    return a;
}

IpAddress IpAddress::v6(const std::array<std::uint8_t, 16> &bytes) {
    IpAddress a;
    a.bytes_ = bytes;
    a.is_v4_ = is_mapped(bytes);
    return a;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    if (text.empty() || text.size() > INET6_ADDRSTRLEN) {
        return std::nullopt;
    }
    char buf[INET6_ADDRSTRLEN + 1];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    if (text.find(':') == std::string_view::npos) {
        std::array<std::uint8_t, 4> b{};
        if (inet_pton(AF_INET, buf, b.data()) != 1) {
            return std::nullopt;
        }
        return v4(b);
    }
    std::array<std::uint8_t, 16> b{};
    if (inet_pton(AF_INET6, buf, b.data()) != 1) {
        return std::nullopt;
    }
    return v6(b);
}

bool IpAddress::is_unspecified() const {
    for (std::size_t i = is_v4_ ? 12 : 0; i < bytes_.size(); i++) {
        if (bytes_[i] != 0) {
            return false;
        }
    }
    return true;
}

bool IpAddress::is_loopback() const {
    if (is_v4_) {
        return bytes_[12] == 127;
    }
    for (std::size_t i = 0; i < 15; i++) {
        if (bytes_[i] != 0) {
            return false;
        }
    }
    return bytes_[15] == 1;
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN];
    if (is_v4_) {
        inet_ntop(AF_INET, bytes_.data() + 12, buf, sizeof buf);
    } else {
        inet_ntop(AF_INET6, bytes_.data(), buf, sizeof buf);
    }
    return buf;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
    if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) {
        return std::nullopt;
    }
    unsigned v = 0;
    for (char ch : text) {
        if (ch < '0' || ch > '9') {
            return std::nullopt;
        }
        v = v * 10 + static_cast<unsigned>(ch - '0');
    }
    if (v > 65535) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(v);
}

std::optional<Endpoint> Endpoint::parse(std::string_view text) {
    std::string_view host, port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        if (host.find(':') == std::string_view::npos) {
            return std::nullopt;  // brackets are for IPv6 only
        }
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return std::nullopt;  // IPv6 needs brackets
        }
    }
    auto addr = IpAddress::parse(host);
    auto p = parse_port(port);
    if (!addr || !p) {
        return std::nullopt;
    }
    return Endpoint{*addr, *p};
}

std::string Endpoint::to_string() const {
    std::string a = addr.to_string();
    std::string p = std::to_string(port);
    return addr.is_v4() ? a + ":" + p : "[" + a + "]:" + p;
}

std::optional<Endpoint> Endpoint::from_sockaddr(const sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        const auto *in = reinterpret_cast<const sockaddr_in *>(sa);
        std::array<std::uint8_t, 4> b;
        std::memcpy(b.data(), &in->sin_addr, 4);
        return Endpoint{IpAddress::v4(b), ntohs(in->sin_port)};
    }
    if (sa->sa_family == AF_INET6) {
        const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(sa);
        std::array<std::uint8_t, 16> b;
        std::memcpy(b.data(), &in6->sin6_addr, 16);
        return Endpoint{IpAddress::v6(b), ntohs(in6->sin6_port)};
    }
    return std::nullopt;
}

socklen_t Endpoint::to_sockaddr(sockaddr_storage &ss) const {
    std::memset(&ss, 0, sizeof ss);
    if (addr.is_v4()) {
        auto *in = reinterpret_cast<sockaddr_in *>(&ss);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        std::memcpy(&in->sin_addr, addr.mapped().data() + 12, 4);
        return sizeof(sockaddr_in);
    }
    auto *in6 = reinterpret_cast<sockaddr_in6 *>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, addr.mapped().data(), 16);
    return sizeof(sockaddr_in6);
}

}  // namespace ppinject
