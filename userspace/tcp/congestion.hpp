// TCP congestion control of the daemon's own sockets, per leg of a service (client,
// backend): the service's choice (tcp_congestion), else cubic for a peer on a loopback
// address, else the host's. See TcpCongestion in config/config.hpp for the rules.
#pragma once

#include <string>

#include "codec/address.hpp"
#include "config/config.hpp"

namespace ppinject::tcp {

// Sets congestion control `name` on a TCP socket; an empty name keeps the host's. 0 or
// -errno.
int set_congestion(int fd, const std::string &name);

// The congestion control of a leg whose peer is on a loopback address, when the service
// names none: "cubic" if this kernel has it, else "" (the host's).
const std::string &loopback_congestion();

// The congestion control for a socket of one leg: `configured` (the service's for that
// leg), else loopback_congestion() for a peer on a loopback address, else "" (the host's).
const std::string &leg_congestion(const std::string &configured, bool loopback_peer);

// A listener bound to a loopback address has only loopback clients (not a transparent
// service's, which sk_lookup feeds from anywhere): it takes their leg's congestion control
// itself, and they inherit it.
bool loopback_listener(const Service &svc, const Endpoint &bound);

// Why `name` could not be set (error `err`) on a socket of `leg` ("client", "backend") of
// service `svc_name` (a negative errno); for an unknown name, with the names this kernel has.
std::string congestion_error(const std::string &svc_name, const char *leg, const std::string &name,
                             int err);

// Refuses a backend-leg congestion control this kernel cannot set, before a connection
// needs it (the client leg is checked by opening the listeners). Throws
// std::runtime_error.
void probe_backend_congestion(const Service &svc);

}  // namespace ppinject::tcp
