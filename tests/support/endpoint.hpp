// Endpoints from address literals for tests: a literal that does not parse fails the test
// (and gives the unspecified address) instead of throwing or reading an empty optional; and
// binding a test's socket to one.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "codec/address.hpp"

namespace pptest {

inline ppinject::Endpoint ep(const char *addr, std::uint16_t port) {
    auto a = ppinject::IpAddress::parse(addr);
    EXPECT_TRUE(a) << addr;
    return {a.value_or(ppinject::IpAddress{}), port};
}

// Binds `fd` to `at` (SO_REUSEADDR first); throws with the endpoint and the reason.
inline void bind_to(int fd, const ppinject::Endpoint &at) {
    sockaddr_storage ss{};
    socklen_t len = at.to_sockaddr(ss);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0) {
        throw std::runtime_error("bind " + at.to_string() + ": " + std::strerror(errno));
    }
}

}  // namespace pptest
