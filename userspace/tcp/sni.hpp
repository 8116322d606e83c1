// The server name a TLS client asks for (SNI, RFC 6066 section 3) read from the first bytes
// of its ClientHello, so a PROXY v2 header can carry it as AUTHORITY. Reads only what is
// given; never reads past it.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace ppinject::tcp {

struct SniResult {
    enum Kind {
        need_more,  // a ClientHello so far: read more bytes and call again
        not_tls,    // not a TLS ClientHello (or one too odd to read): no name
        no_sni,     // a ClientHello without a host_name
        found,      // `name` is the host name (a view into the input)
    } kind = need_more;
    std::string_view name;
};

SniResult find_sni(std::span<const std::uint8_t> in);

}  // namespace ppinject::tcp
