// Small socket facts and actions the acceptor and its relays share. Functions that can
// fail return 0 or a negative errno, captured at once (sys/error.hpp renders it).
#pragma once

#include <cstdint>
#include <optional>

#include "codec/address.hpp"
#include "sys/fd.hpp"

namespace ppinject::tcp {

// The pending error of a socket (SO_ERROR), 0 when none.
int socket_error(int fd);

// An error that means the peer reset the connection (or it timed out): passed on as a reset.
bool is_reset(int err);

// Sets an int-valued socket option; 0 or -errno.
int set_option(int fd, int level, int name, int value);

// Closes `fd` so that its peer sees a reset rather than a FIN (SO_LINGER with a zero
// timeout). If the option cannot be set the socket is still closed, with a FIN.
void close_with_reset(Fd fd);

// The socket's cookie (SO_COOKIE), the key of the sockmap maps; 0 if it cannot be read.
std::uint64_t socket_cookie(int fd);

// The local address of a socket (getsockname), nullopt when it has none.
std::optional<Endpoint> local_endpoint(int fd);

}  // namespace ppinject::tcp
