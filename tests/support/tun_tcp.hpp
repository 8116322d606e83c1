// A TCP client written by hand on a TUN device, for tests that need segments the kernel's
// own TCP never sends in that order: out of order, or overlapping bytes sent before (as a
// retransmission does after a loss). IPv4, no TCP options; it sends, and reads only what it
// needs (the SYN-ACK).
//
// The device lives in the namespace of the host under test, with a route to the client's
// address through it; the client's segments enter that host as if from a link.
#pragma once

#include <cstdint>
#include <string>

#include "support/netns.hpp"
#include "sys/fd.hpp"

namespace pptest {

class TunTcpClient {
  public:
    // Creates TUN device `ifname` (MTU 65000: segments far larger than one page) in `ns`,
    // routing `client_addr` (an IPv4 address) through it.
    TunTcpClient(const Netns &ns, const std::string &ifname, const std::string &client_addr);
    ~TunTcpClient();
    TunTcpClient(const TunTcpClient &) = delete;
    TunTcpClient &operator=(const TunTcpClient &) = delete;

    // Three-way handshake from `sport` to server:port; false (with a test failure) when no
    // SYN-ACK arrives within the I/O timeout.
    bool connect(const std::string &server, std::uint16_t port, std::uint16_t sport);
    // Sends bytes [from, from + len) of `stream` in one segment at their place in the
    // stream (len 0 with fin: a bare FIN after the stream's `from` bytes).
    void send(const std::string &stream, std::size_t from, std::size_t len, bool fin = false);

  private:
    void write_segment(std::uint32_t seq, std::uint8_t flags, const char *data, std::size_t len);

    ppinject::Fd fd_;
    std::string client_, server_;
    std::uint16_t sport_ = 0, dport_ = 0;
    std::uint32_t isn_ = 0x1000, server_next_ = 0;  // server_next_: the ACK we send
};

}  // namespace pptest
