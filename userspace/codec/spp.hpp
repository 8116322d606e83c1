// Cloudflare's Simple Proxy Protocol (SPP): a fixed 38-byte header in front of each UDP
// payload, addresses as IPv6 (IPv4 mapped), every field in network byte order.
#pragma once

#include "codec/address.hpp"
#include "codec/common.hpp"

namespace ppinject::proxy {

// A decoded SPP header.
struct SppHeader {
    Endpoint client;  // who sent the datagram
    Endpoint proxy;   // the address and port the client sent it to
};

// Decodes the 38 bytes at the start of `in`: spp_bad_magic as soon as the first two bytes
// are not 0x56EC, need_more until all 38 are there.
Status decode_spp(Bytes in, SppHeader &out);

// Writes the 38-byte header (IPv4 endpoints in mapped form); buffer_too_small otherwise.
Error encode_spp(Buffer out, const Endpoint &client, const Endpoint &proxy);

}  // namespace ppinject::proxy
