#include "support/tun_tcp.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "support/packet.hpp"
#include "sys/error.hpp"

namespace pptest {
namespace {

constexpr int kTimeoutMs = 10000;
constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kPsh = 0x08, kAck = 0x10;
constexpr std::size_t kEthernet = 14;  // Packet::build() frames; a TUN device takes IP

void put32(Bytes &b, std::uint32_t v) {
    for (int shift : {24, 16, 8, 0}) {
        b.push_back(static_cast<std::uint8_t>(v >> shift));
    }
}

std::uint32_t get32(const std::uint8_t *p) {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

}  // namespace

TunTcpClient::TunTcpClient(const Netns &ns, const std::string &ifname,
                           const std::string &client_addr)
    : client_(client_addr) {
    ns.run_inside([&] {
        fd_.reset(open("/dev/net/tun", O_RDWR | O_CLOEXEC));
        if (!fd_) {
            int err = -errno;
            throw std::runtime_error(ppinject::error_text("open /dev/net/tun", err));
        }
        ifreq ifr{};
        ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
        std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
        if (ioctl(fd_.get(), TUNSETIFF, &ifr) != 0) {
            int err = -errno;
            throw std::runtime_error(ppinject::error_text("TUNSETIFF " + ifname, err));
        }
    });
    // On failure fd_ closes, and the device goes with its last descriptor.
    ns.exec("ip link set " + ifname + " mtu 65000 up && ip route add " + client_addr + "/32 dev " +
            ifname);
}

TunTcpClient::~TunTcpClient() = default;  // fd_ closes: the device goes with it

void TunTcpClient::write_segment(std::uint32_t seq, std::uint8_t flags, const char *data,
                                 std::size_t len) {
    Bytes tcp;
    tcp.push_back(static_cast<std::uint8_t>(sport_ >> 8));
    tcp.push_back(static_cast<std::uint8_t>(sport_));
    tcp.push_back(static_cast<std::uint8_t>(dport_ >> 8));
    tcp.push_back(static_cast<std::uint8_t>(dport_));
    put32(tcp, seq);
    put32(tcp, flags & kAck ? server_next_ : 0);
    tcp.push_back(5 << 4);  // 20-byte header, no options
    tcp.push_back(flags);
    tcp.push_back(0xFF);  // window 65535
    tcp.push_back(0xFF);
    tcp.insert(tcp.end(), 4, 0);  // checksum, urgent pointer
    tcp.insert(tcp.end(), data, data + len);
    Addr src = Addr::parse(client_), dst = Addr::parse(server_);
    std::uint16_t sum = tcp_checksum(src, dst, tcp);
    tcp[16] = static_cast<std::uint8_t>(sum >> 8);
    tcp[17] = static_cast<std::uint8_t>(sum);
    Bytes frame = Packet().ip(client_, server_).l4(6, tcp).build();
    ssize_t n = write(fd_.get(), frame.data() + kEthernet, frame.size() - kEthernet);
    ASSERT_EQ(n, static_cast<ssize_t>(frame.size() - kEthernet)) << std::strerror(errno);
}

bool TunTcpClient::connect(const std::string &server, std::uint16_t port, std::uint16_t sport) {
    server_ = server;
    dport_ = port;
    sport_ = sport;
    write_segment(isn_, kSyn, nullptr, 0);
    Addr srv = Addr::parse(server);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
    std::uint8_t buf[65536];
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd_.get(), POLLIN, 0};
        if (poll(&p, 1, 100) != 1) {
            continue;
        }
        ssize_t n = read(fd_.get(), buf, sizeof buf);
        if (n < 40 || (buf[0] >> 4) != 4 || buf[9] != 6) {
            continue;  // not IPv4 TCP (the kernel also sends IPv6 solicitations)
        }
        std::size_t ihl = (buf[0] & 0x0F) * 4u;
        const std::uint8_t *t = buf + ihl;
        bool from_server = std::memcmp(buf + 12, srv.bytes.data(), 4) == 0;
        std::uint16_t to_port = static_cast<std::uint16_t>(t[2] << 8 | t[3]);
        if (from_server && to_port == sport_ && t[13] == (kSyn | kAck) &&
            get32(t + 8) == isn_ + 1) {
            server_next_ = get32(t + 4) + 1;
            write_segment(isn_ + 1, kAck, nullptr, 0);
            return true;
        }
    }
    ADD_FAILURE() << "no SYN-ACK from " << server << ":" << port;
    return false;
}

void TunTcpClient::send(const std::string &stream, std::size_t from, std::size_t len, bool fin) {
    ASSERT_LE(from + len, stream.size());
    std::uint8_t flags = kAck | (len > 0 ? kPsh : 0) | (fin ? kFin : 0);
    write_segment(isn_ + 1 + static_cast<std::uint32_t>(from), flags, stream.data() + from, len);
}

}  // namespace pptest
