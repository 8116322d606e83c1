// Internal to the codec: big-endian loads and stores on raw bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "codec/common.hpp"

namespace ppinject::proxy::wire {

inline std::uint16_t be16(const std::uint8_t *p) {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
inline std::uint32_t be32(const std::uint8_t *p) {
    return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
           static_cast<std::uint32_t>(p[2]) << 8 | p[3];
}
inline void put_be16(std::uint8_t *p, std::size_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
inline void put_be32(std::uint8_t *p, std::uint32_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}

// A Status from size_t values (the fields are 32-bit; header offsets never exceed 65551).
inline Status status(Error e, std::size_t offset = 0, std::size_t value = 0, std::size_t limit = 0,
                     std::uint8_t type = 0) {
    return {e, static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(value),
            static_cast<std::uint32_t>(limit), type};
}

// need_more with the total length when it is known (0 otherwise) and what is there.
inline Status need_more(std::size_t have, std::size_t total = 0) {
    return status(Error::need_more, 0, total, have);
}

}  // namespace ppinject::proxy::wire
