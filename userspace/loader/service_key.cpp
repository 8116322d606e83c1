#include "loader/service_key.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace ppinject {
namespace {

// Copies `addr` IPv4-mapped into `out` with only its first `prefix_len` bits (of its own
// family) kept; returns how many of the 128 bits are prefix.
unsigned masked_address(const IpAddress &addr, unsigned prefix_len, std::uint8_t (&out)[16]) {
    unsigned bits = addr.is_v4() ? 96 + prefix_len : prefix_len;
    std::memcpy(out, addr.mapped().data(), sizeof out);
    for (unsigned bit = bits; bit < 128; bit++) {
        out[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    }
    return bits;
}

}  // namespace

pp_service_key make_service_key(std::uint8_t protocol, const IpAddress &addr, unsigned prefix_len,
                                std::uint16_t port) {
    pp_service_key key{};
    key.prefixlen = PP_SERVICE_KEY_FIXED_BITS + masked_address(addr, prefix_len, key.addr);
    key.protocol = protocol;
    key.port = htons(port);
    return key;
}

pp_address_key make_address_key(const IpAddress &addr, unsigned prefix_len) {
    pp_address_key key{};
    key.prefixlen = masked_address(addr, prefix_len, key.addr);
    return key;
}

}  // namespace ppinject
