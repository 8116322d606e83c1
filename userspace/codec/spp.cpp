#include "codec/spp.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "codec/wire.hpp"

namespace ppinject::proxy {

Status decode_spp(Bytes in, SppHeader &out) {
    const std::uint8_t magic[2] = {kSppMagic >> 8, kSppMagic & 0xFF};
    for (std::size_t i = 0; i < 2 && i < in.size(); i++) {
        if (in[i] != magic[i]) {
            std::size_t seen = in.size() >= 2 ? wire::be16(in.data()) : in[0] << 8;
            return wire::status(Error::spp_bad_magic, i, seen, std::min<std::size_t>(in.size(), 2));
        }
    }
    if (in.size() < kSppLen) {
        return wire::need_more(in.size(), kSppLen);
    }
    std::array<std::uint8_t, 16> client, proxy;
    std::memcpy(client.data(), in.data() + 2, 16);
    std::memcpy(proxy.data(), in.data() + 18, 16);
    out.client = {IpAddress::v6(client), wire::be16(in.data() + 34)};
    out.proxy = {IpAddress::v6(proxy), wire::be16(in.data() + 36)};
    return {};
}

Error encode_spp(Buffer out, const Endpoint &client, const Endpoint &proxy) {
    if (out.size() < kSppLen) {
        return Error::buffer_too_small;
    }
    wire::put_be16(out.data(), kSppMagic);
    std::memcpy(out.data() + 2, client.addr.mapped().data(), 16);
    std::memcpy(out.data() + 18, proxy.addr.mapped().data(), 16);
    wire::put_be16(out.data() + 34, client.port);
    wire::put_be16(out.data() + 36, proxy.port);
    return Error::ok;
}

}  // namespace ppinject::proxy
