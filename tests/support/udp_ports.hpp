// The udp_ports bitmap filled one port at a time, as the packet tests and bpf_bench set up
// services (the loader writes the whole bitmap for a config instead).
#pragma once

#include <bpf/bpf.h>

#include <cstdint>

#include "loader/service_key.hpp"

namespace pptest {

// Sets `port`'s bit in the udp_ports map behind `fd`, keeping the others; false if the map
// could not be read or written (errno says why).
inline bool mark_udp_port(int fd, unsigned port) {
    std::uint32_t word = ppinject::port_word(port);
    std::uint64_t bits = 0;
    if (bpf_map_lookup_elem(fd, &word, &bits) != 0) {
        return false;
    }
    bits |= ppinject::port_bit(port);
    return bpf_map_update_elem(fd, &word, &bits, BPF_ANY) == 0;
}

}  // namespace pptest
