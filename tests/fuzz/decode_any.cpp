// Fuzz target: decode_any. Besides the prefix properties of codec_checks.hpp, it must give
// exactly the answer of the decoder its first byte selects (unknown_format for any other
// first byte), and what it decodes passes that format's re-encoding checks.
#include "codec_checks.hpp"

namespace {

using namespace ppfuzz;

template <typename Header, typename Decode>
void check_same_as(Bytes in, const Status &s, const AnyHeader &a, const Header &mine,
                   Decode decode) {
    Header h;
    Status t = decode(in, h);
    FUZZ_CHECK(s.error == t.error && s.offset == t.offset && s.value == t.value &&
               s.limit == t.limit && s.type == t.type);
    FUZZ_CHECK(!s.ok() || (same(mine, h) && a.length == header_length(h)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    Bytes in(data, size);
    AnyHeader a;
    Status s = check_prefixes(in, a, decode_any);
    if (in.empty()) {
        FUZZ_CHECK(s.error == Error::need_more);
        return 0;
    }
    switch (in[0]) {
        case 'P':
            FUZZ_CHECK(a.kind == Kind::v1);
            check_same_as(in, s, a, a.v1, decode_v1);
            if (s.ok()) {
                check_v1(in, a.v1);
            }
            break;
        case kV2Signature[0]:
            FUZZ_CHECK(a.kind == Kind::v2);
            check_same_as(in, s, a, a.v2, decode_v2);
            if (s.ok()) {
                check_v2(in, a.v2);
            }
            break;
        case kSppMagic >> 8:
            FUZZ_CHECK(a.kind == Kind::spp);
            check_same_as(in, s, a, a.spp, decode_spp);
            if (s.ok()) {
                check_spp(in, a.spp);
            }
            break;
        default:
            FUZZ_CHECK(s.error == Error::unknown_format && s.offset == 0 && s.value == in[0]);
            break;
    }
    return 0;
}
