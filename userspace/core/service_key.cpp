#include "core/service_key.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace ppinject {

pp_service_key make_service_key(std::uint8_t protocol, const IpAddress &addr, unsigned prefix_len,
                                std::uint16_t port) {
    pp_service_key key{};
    unsigned addr_bits = addr.is_v4() ? 96 + prefix_len : prefix_len;
    key.prefixlen = PP_SERVICE_KEY_FIXED_BITS + addr_bits;
    key.protocol = protocol;
    key.port = htons(port);
    std::memcpy(key.addr, addr.mapped().data(), sizeof key.addr);
    for (unsigned bit = addr_bits; bit < 128; bit++) {
        key.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    }
    return key;
}

}  // namespace ppinject
