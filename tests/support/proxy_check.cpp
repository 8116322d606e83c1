#include "support/proxy_check.hpp"

#include <gtest/gtest.h>

#include "codec/proxy.hpp"

namespace pptest {

using namespace ppinject::proxy;

namespace {
Bytes as_bytes(const std::string &s) {
    return {reinterpret_cast<const std::uint8_t *>(s.data()), s.size()};
}
}  // namespace

void expect_v2_dgram(const std::string &datagram, const ppinject::Endpoint &client,
                     const ppinject::Endpoint &service, const std::string &payload) {
    V2Header h;
    ASSERT_EQ(decode_v2(as_bytes(datagram), h), Error::ok) << "no valid PROXY v2 header";
    EXPECT_EQ(h.command, Command::proxy);
    EXPECT_EQ(h.transport, Transport::dgram);
    EXPECT_EQ(h.family, client.addr.is_v4() ? Family::inet : Family::inet6);
    EXPECT_EQ(h.source, client) << h.source.to_string();
    EXPECT_EQ(h.destination, service) << h.destination.to_string();
    EXPECT_EQ(datagram.substr(h.length), payload);
}

void expect_spp_dgram(const std::string &datagram, const ppinject::Endpoint &client,
                      const ppinject::Endpoint &service, const std::string &payload) {
    SppHeader h;
    ASSERT_EQ(decode_spp(as_bytes(datagram), h), Error::ok) << "no valid SPP header";
    EXPECT_EQ(h.client, client) << h.client.to_string();
    EXPECT_EQ(h.proxy, service) << h.proxy.to_string();
    EXPECT_EQ(datagram.substr(kSppLen), payload);
}

}  // namespace pptest
