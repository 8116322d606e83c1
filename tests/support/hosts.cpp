#include "support/hosts.hpp"

namespace pptest {

Hosts::Hosts()
    : client(std::make_unique<Netns>("client")),
      front(std::make_unique<Netns>("front")),
      backend(std::make_unique<Netns>("backend")) {
    veth(*client, "c0", {"192.0.2.2/24", "2001:db8:1::2/64"}, *front, "f0",
         {"192.0.2.1/24", "2001:db8:1::1/64"});
    veth(*front, "f1", {"198.51.100.1/24", "2001:db8:2::1/64"}, *backend, "b0",
         {"198.51.100.2/24", "2001:db8:2::2/64"});
    client->exec("ip route add default via 192.0.2.1 && ip -6 route add default via 2001:db8:1::1");
    backend->exec(
        "ip route add default via 198.51.100.1 && ip -6 route add default via 2001:db8:2::1");
    front->exec(
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 && "
        "ip route add local 203.0.113.0/24 dev lo && "
        "ip -6 route add local 2001:db8:3::/64 dev lo");
}

}  // namespace pptest
