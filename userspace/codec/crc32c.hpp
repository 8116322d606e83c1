// CRC32c (Castagnoli), the checksum of the PROXY v2 CRC32C TLV (RFC 4960 appendix B).
#pragma once

#include <cstdint>

#include "codec/common.hpp"

namespace ppinject::proxy {

// CRC32c of `data`, continuing from `crc` (the result of a previous call on the bytes
// before it, 0 to start): crc32c(b, crc32c(a)) == crc32c(a followed by b).
std::uint32_t crc32c(Bytes data, std::uint32_t crc = 0);

}  // namespace ppinject::proxy
