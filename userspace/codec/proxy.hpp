// PROXY protocol v1 (text) and v2 (binary), and Cloudflare's Simple Proxy Protocol (SPP):
// decoders that never read past their input and tell "need more bytes" apart from
// "malformed" (a distinct reason for every malformed form), and encoders that write into
// the caller's buffer without allocating. This header includes all of the codec and adds
// the decoder that recognises which of the three an input starts with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "codec/common.hpp"
#include "codec/crc32c.hpp"
#include "codec/proxy_v1.hpp"
#include "codec/proxy_v2.hpp"
#include "codec/spp.hpp"

namespace ppinject::proxy {

// Which header an input starts with.
enum class Kind : std::uint8_t { v1, v2, spp };

// "PROXY v1", "PROXY v2", "SPP".
std::string_view name(Kind k);

// Whichever header decode_any() found; only the member of `kind` is set.
struct AnyHeader {
    Kind kind = Kind::v1;
    V1Header v1;
    V2Header v2;
    SppHeader spp;
    std::size_t length = 0;  // bytes of the header; the payload follows
};

// Recognises the header by its first byte ('P' v1, 0x0D v2, 0x56 SPP; anything else is
// unknown_format) and decodes it; `out.kind` is set whenever the first byte was recognised,
// so a need_more or malformed result can name the format.
Status decode_any(Bytes in, AnyHeader &out);

}  // namespace ppinject::proxy
