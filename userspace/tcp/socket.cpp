#include "tcp/socket.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace ppinject::tcp {

int socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 ? err : errno;
}

bool is_reset(int err) {
    return err == ECONNRESET || err == ETIMEDOUT;
}

int set_option(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : -errno;
}

void close_with_reset(Fd fd) {
    linger l{1, 0};
    // A failure leaves an ordinary close: the peer sees a FIN, and nothing else can be done.
    setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

std::uint64_t socket_cookie(int fd) {
    std::uint64_t cookie = 0;
    socklen_t len = sizeof cookie;
    return getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0 ? cookie : 0;
}

std::optional<Endpoint> local_endpoint(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len) != 0) {
        return std::nullopt;
    }
    return Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&ss));
}

}  // namespace ppinject::tcp
