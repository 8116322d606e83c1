#include "support/proxy_check.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <memory>
#include <vector>

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

Decoded read_proxy_header(int fd) {
    std::vector<std::uint8_t> got;
    Decoded h;
    for (;;) {
        std::uint8_t c;
        if (recv(fd, &c, 1, 0) != 1) {
            ADD_FAILURE() << "connection ended inside the header";
            return h;
        }
        got.push_back(c);
        auto st = decode_any(got, h.header());
        if (st.ok()) {
            // Decoded again from the bytes it keeps: its views point into them.
            h.bytes = std::make_shared<const std::vector<std::uint8_t>>(std::move(got));
            decode_any(*h.bytes, h.header());
            return h;
        }
        if (st.error != Error::need_more) {
            ADD_FAILURE() << "bad header: " << describe(st);
            return h;
        }
    }
}

}  // namespace pptest
