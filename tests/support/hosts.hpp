// The three hosts of the namespace tests: a client, the front host where ppinject runs,
// and a backend, joined by veth pairs; removed with the object, also when a test fails.
//
//   client                    front                                   backend
//   c0 192.0.2.2/24  ------  f0 192.0.2.1/24                ------  b0 198.51.100.2/24
//      2001:db8:1::2/64         2001:db8:1::1/64    f1 198.51.100.1/24    2001:db8:2::2/64
//                                                      2001:db8:2::1/64
//
// Client and backend route everything through the front, which forwards. The front also
// answers for 203.0.113.0/24 and 2001:db8:3::/64 (local routes), the prefixes the tests'
// sk_lookup services use: sk_lookup sees only packets delivered locally.
#pragma once

#include <memory>

#include "support/netns.hpp"

namespace pptest {

struct Hosts {
    Hosts();
    std::unique_ptr<Netns> client, front, backend;
};

}  // namespace pptest
