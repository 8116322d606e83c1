#include "codec/crc32c.hpp"

#include <array>

namespace ppinject::proxy {
namespace {

// Reflected polynomial 0x1EDC6F41, one table entry per byte value, built at compile time.
constexpr std::array<std::uint32_t, 256> make_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; i++) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        t[i] = c;
    }
    return t;
}
constexpr auto kTable = make_table();

}  // namespace

std::uint32_t crc32c(Bytes data, std::uint32_t crc) {
    crc = ~crc;
    for (std::uint8_t b : data) {
        crc = kTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
    }
    return ~crc;
}

}  // namespace ppinject::proxy
