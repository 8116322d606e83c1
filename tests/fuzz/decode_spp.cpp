// Fuzz target: decode_spp (the prefix properties of codec_checks.hpp, and a decoded header
// re-encodes to the same 38 bytes).
#include "codec_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    ppfuzz::Bytes in(data, size);
    ppfuzz::SppHeader h;
    if (ppfuzz::check_prefixes(in, h, ppfuzz::decode_spp).ok()) {
        ppfuzz::check_spp(in, h);
    }
    return 0;
}
