// PROXY protocol version 1: the text line "PROXY TCP4|TCP6|UNKNOWN ... \r\n".
#pragma once

#include <cstddef>
#include <cstdint>

#include "codec/address.hpp"
#include "codec/common.hpp"

namespace ppinject::proxy {

// The protocol word of a v1 line.
enum class V1Protocol : std::uint8_t { tcp4, tcp6, unknown };

// A decoded v1 line; the endpoints are set for TCP4/TCP6 only.
struct V1Header {
    V1Protocol protocol = V1Protocol::unknown;
    Endpoint source;
    Endpoint destination;
    std::size_t length = 0;  // bytes of the line including CRLF
};

// Decodes the line at the start of `in`: need_more until a CRLF arrives (at most 107
// bytes), then exact fields (single spaces, canonical addresses of the protocol's family,
// ports without sign or leading zeros). `out` is meaningful only when the result is ok.
Status decode_v1(Bytes in, V1Header &out);

// Writes "PROXY TCP4 ..." when both endpoints are IPv4 (IPv4-mapped IPv6 counts as IPv4),
// else "PROXY TCP6 ..." with an IPv4 endpoint in its mapped form; `written` gets the length.
Error encode_v1(Buffer out, const Endpoint &source, const Endpoint &destination,
                std::size_t &written);

// Writes "PROXY UNKNOWN\r\n" (15 bytes).
Error encode_v1_unknown(Buffer out, std::size_t &written);

}  // namespace ppinject::proxy
