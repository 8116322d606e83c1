// Endpoints from address literals for tests: a literal that does not parse fails the test
// (and gives the unspecified address) instead of throwing or reading an empty optional.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "codec/address.hpp"

namespace pptest {

inline ppinject::Endpoint ep(const char *addr, std::uint16_t port) {
    auto a = ppinject::IpAddress::parse(addr);
    EXPECT_TRUE(a) << addr;
    return {a.value_or(ppinject::IpAddress{}), port};
}

}  // namespace pptest
