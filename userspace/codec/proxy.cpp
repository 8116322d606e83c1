#include "codec/proxy.hpp"

#include "codec/wire.hpp"

namespace ppinject::proxy {

std::string_view name(Kind k) {
    switch (k) {
        case Kind::v1:
            return "PROXY v1";
        case Kind::v2:
            return "PROXY v2";
        case Kind::spp:
            break;
    }
    return "SPP";
}

Status decode_any(Bytes in, AnyHeader &out) {
    if (in.empty()) {
        return wire::need_more(0);
    }
    Status s;
    switch (in[0]) {
        case 'P':
            out.kind = Kind::v1;
            s = decode_v1(in, out.v1);
            out.length = out.v1.length;
            break;
        case kV2Signature[0]:
            out.kind = Kind::v2;
            s = decode_v2(in, out.v2);
            out.length = out.v2.length;
            break;
        case kSppMagic >> 8:
            out.kind = Kind::spp;
            s = decode_spp(in, out.spp);
            out.length = kSppLen;
            break;
        default:
            return wire::status(Error::unknown_format, 0, in[0]);
    }
    return s;
}

}  // namespace ppinject::proxy
