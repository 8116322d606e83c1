#include "tcp/congestion.hpp"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <fstream>
#include <stdexcept>

#include "sys/error.hpp"
#include "sys/fd.hpp"

namespace ppinject::tcp {

int set_congestion(int fd, const std::string &name) {
    if (name.empty()) {
        return 0;
    }
    return setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(),
                      static_cast<socklen_t>(name.size())) == 0
               ? 0
               : -errno;
}

// There is no link on loopback for BBR to model, and its pacing timer per send is pure
// cost (tools/bench/README.md).
const std::string &loopback_congestion() {
    static const std::string name = [] {
        std::string cubic = "cubic";
        Fd probe(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        return probe && set_congestion(probe.get(), cubic) == 0 ? cubic : std::string();
    }();
    return name;
}

const std::string &leg_congestion(const std::string &configured, bool loopback_peer) {
    static const std::string host;
    return !configured.empty() ? configured : loopback_peer ? loopback_congestion() : host;
}

bool loopback_listener(const Service &svc, const Endpoint &bound) {
    return !svc.transparent && bound.addr.is_loopback();
}

std::string congestion_error(const std::string &svc_name, const char *leg, const std::string &name,
                             int err) {
    std::string what = "tcp: tcp_congestion \"" + name + "\" for the " + leg + " leg of service '" +
                       svc_name + "'";
    if (err != -ENOENT) {
        return error_text(what, err);
    }
    std::string available;
    std::getline(std::ifstream("/proc/sys/net/ipv4/tcp_available_congestion_control") >> std::ws,
                 available);
    return what + ": this kernel has no such congestion control (available: " + available + ")";
}

void probe_backend_congestion(const Service &svc) {
    const std::string &name = svc.congestion.backend;
    if (name.empty()) {
        return;
    }
    Fd probe(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) {
        int err = -errno;
        throw std::runtime_error(error_text("tcp: socket for service '" + svc.name + "'", err));
    }
    if (int err = set_congestion(probe.get(), name); err != 0) {
        throw std::runtime_error(congestion_error(svc.name, "backend", name, err));
    }
}

}  // namespace ppinject::tcp
