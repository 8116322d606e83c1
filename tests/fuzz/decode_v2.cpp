// Fuzz target: decode_v2 (the prefix properties of codec_checks.hpp, the decoded views, and
// V2Writer rebuilding the header).
#include "codec_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    ppfuzz::Bytes in(data, size);
    ppfuzz::V2Header h;
    if (ppfuzz::check_prefixes(in, h, ppfuzz::decode_v2).ok()) {
        ppfuzz::check_v2(in, h);
    }
    return 0;
}
