// The codec tests' way to call a decoder: on an exact-size heap copy of the input, so a read
// past its end is a real overread that AddressSanitizer or valgrind reports; and a decoded
// header that owns the bytes its views point into.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "codec/proxy.hpp"

namespace pptest {

// A decoded header together with the bytes its views (v2 TLVs, UNIX paths) point into, so
// it can be returned and copied without its views dangling. The base is private so that a
// Decoded never silently becomes a bare AnyHeader whose views point into a freed copy (as
// `AnyHeader h = read_proxy_header(fd)` did); `header()` is the explicit way, for as long as
// the Decoded lives.
struct Decoded : private ppinject::proxy::AnyHeader {
    using AnyHeader::kind;
    using AnyHeader::length;
    using AnyHeader::spp;
    using AnyHeader::v1;
    using AnyHeader::v2;
    std::shared_ptr<const std::vector<std::uint8_t>> bytes;

    ppinject::proxy::AnyHeader &header() { return *this; }
    const ppinject::proxy::AnyHeader &header() const { return *this; }
};

// `decode` (decode_v1, decode_v2, decode_spp, decode_any) on a copy of `in`. The copy lives
// until the next call with the same header type and decoder, so views into it that `out`
// holds (v2 paths and TLVs) stay valid for the checks that follow.
template <typename Header, typename Decode>
ppinject::proxy::Status decode_exact(const std::vector<std::uint8_t> &in, Header &out,
                                     Decode decode) {
    static std::unique_ptr<std::uint8_t[]> copy;
    copy = std::make_unique<std::uint8_t[]>(in.size());
    std::copy(in.begin(), in.end(), copy.get());
    return decode(ppinject::proxy::Bytes(copy.get(), in.size()), out);
}

inline ppinject::proxy::Status decode_exact(const std::vector<std::uint8_t> &in,
                                            ppinject::proxy::V1Header &out) {
    return decode_exact(in, out, ppinject::proxy::decode_v1);
}

inline ppinject::proxy::Status decode_exact(const std::vector<std::uint8_t> &in,
                                            ppinject::proxy::V2Header &out) {
    return decode_exact(in, out, ppinject::proxy::decode_v2);
}

}  // namespace pptest
