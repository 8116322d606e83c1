// The PROXY header a TCP service writes to its backend before the client's bytes: the
// relay writes it per connection, the loader takes the inline data path's TLVs from it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "codec/proxy.hpp"
#include "config/config.hpp"

namespace ppinject {

// What varies per connection.
struct ConnectionFacts {
    Endpoint client;                           // the peer of the accepted socket
    Endpoint dialled;                          // its local address: what the client connected to
    std::string_view sni;                      // TLS server name, empty when none
    std::array<std::uint8_t, 16> unique_id{};  // used when the service asks for UNIQUE_ID
};

// Writes the header of `svc` for `facts` into `out` (at least max_header_len(svc) bytes);
// `written` gets its length. Fails only on a buffer too small.
proxy::Error build_header(const Service &svc, const ConnectionFacts &facts,
                          std::span<std::uint8_t> out, std::size_t &written);

}  // namespace ppinject
