// Assertions on datagrams a backend received: the header ppinject put in front, decoded
// with the codec, names the client and the address it sent to, and the payload follows.
#pragma once

#include <string>

#include "codec/address.hpp"
#include "support/decode_exact.hpp"

namespace pptest {

// `datagram` is a PROXY v2 PROXY/DGRAM header for client -> service, then `payload`.
void expect_v2_dgram(const std::string &datagram, const ppinject::Endpoint &client,
                     const ppinject::Endpoint &service, const std::string &payload);
// `datagram` is a 38-byte SPP header for client -> service, then `payload`.
void expect_spp_dgram(const std::string &datagram, const ppinject::Endpoint &client,
                      const ppinject::Endpoint &service, const std::string &payload);

// Reads the PROXY header (v1 or v2) at the start of TCP connection `fd`, byte by byte so
// nothing past it is consumed. A connection that ends inside the header, or a header that
// does not decode, is a test failure (and an empty result).
Decoded read_proxy_header(int fd);

}  // namespace pptest
