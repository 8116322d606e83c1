// Keys of the `services` and `udp_addresses` LPM tries and bits of the `udp_ports` bitmap,
// built the one way the BPF programs expect them.
#pragma once

#include <cstdint>

#include "codec/address.hpp"
#include "sys/kernel.hpp"

namespace ppinject {

// Key for `protocol` (IPPROTO_UDP/TCP), `port` and `addr` with `prefix_len` bits of the
// address's own family (0..32 for IPv4, 0..128 for IPv6). Bits past the prefix are
// cleared; IPv4 is stored IPv4-mapped, so its prefix sits after the 96-bit mapping.
pp_service_key make_service_key(std::uint8_t protocol, const IpAddress &addr, unsigned prefix_len,
                                std::uint16_t port);

// Key of the `udp_addresses` LPM trie: the same address prefix, without protocol and port.
pp_address_key make_address_key(const IpAddress &addr, unsigned prefix_len);

// Word (the map key) and bit of `port` in the `udp_ports` bitmap.
inline std::uint32_t port_word(unsigned port) {
    return port / 64;
}
inline std::uint64_t port_bit(unsigned port) {
    return std::uint64_t{1} << (port % 64);
}

}  // namespace ppinject
