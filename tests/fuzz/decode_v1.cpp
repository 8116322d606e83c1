// Fuzz target: decode_v1 (the prefix properties of codec_checks.hpp, and TCP4 lines
// re-encode to the same bytes, TCP6 lines to ones that decode the same).
#include "codec_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    ppfuzz::Bytes in(data, size);
    ppfuzz::V1Header h;
    if (ppfuzz::check_prefixes(in, h, ppfuzz::decode_v1).ok()) {
        ppfuzz::check_v1(in, h);
    }
    return 0;
}
