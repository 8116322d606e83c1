// UDP data path with real packets through real network namespaces.
//
// Client, front and backend as in support/hosts.hpp; ppinject's ingress on f0 at tc or, with
// attach = "xdp", at XDP (native: f0 is a veth), the SPP reply stripping at tc egress on
// f0; nftables DNAT and masquerade on the front.
//
// The client sends to the service address on the front; nftables DNATs it to the backend
// and masquerades, so the backend's socket sees the front as the source. Only the header
// that ppinject inserted on f0's ingress tells the backend who the client was. Each check
// runs at tc with the client's TX checksum offload on and off, and at XDP with it off (see
// the instantiation), and no namespace may count a UDP checksum error.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "codec/address.hpp"
#include "support/endpoint.hpp"
#include "support/hosts.hpp"
#include "support/privileges.hpp"
#include "support/process.hpp"
#include "support/proxy_check.hpp"
#include "sys/fd.hpp"

namespace {

using pptest::bind_to;

using ppinject::Endpoint;
using pptest::Netns;

constexpr const char *kService4 = "192.0.2.1";
constexpr const char *kService6 = "2001:db8:1::1";
constexpr std::uint16_t kFirstPort = 5000, kEveryPort = 5001, kSppPort = 5002;

// One datagram with its source, or nullopt after `timeout`.
std::optional<std::pair<std::string, Endpoint>> receive(int fd, int timeout_ms = 2000) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) {
        return std::nullopt;
    }
    char buf[65536];
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr *>(&from), &len);
    if (n < 0) {
        return std::nullopt;
    }
    return std::pair{std::string(buf, static_cast<size_t>(n)),
                     *Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&from))};
}

void send_to(int fd, const std::string &data, const Endpoint &to) {
    sockaddr_storage ss{};
    socklen_t len = to.to_sockaddr(ss);
    ASSERT_EQ(sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr *>(&ss), len),
              static_cast<ssize_t>(data.size()))
        << std::strerror(errno);
}

Endpoint local_endpoint(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len);
    return *Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&ss));
}

// (client TX checksum offload on, ingress at XDP)
class UdpNetns : public ::testing::TestWithParam<std::tuple<bool, bool>> {
  protected:
    bool offload() const { return std::get<0>(GetParam()); }
    bool xdp() const { return std::get<1>(GetParam()); }

    void SetUp() override {
        PP_REQUIRE_ROOT();
        hosts_ = std::make_unique<pptest::Hosts>();
        client_ = hosts_->client.get();
        front_ = hosts_->front.get();
        backend_ = hosts_->backend.get();
        front_->exec(
            "nft -f - <<EOF\n"
            "table inet ppt {\n"
            "  chain pre { type nat hook prerouting priority dstnat;\n"
            "    iifname \"f0\" ip daddr 192.0.2.1 udp dport 5000-5002 dnat ip to 198.51.100.2\n"
            "    iifname \"f0\" ip6 daddr 2001:db8:1::1 udp dport 5000-5002 dnat ip6 to "
            "2001:db8:2::2\n"
            "  }\n"
            "  chain post { type nat hook postrouting priority srcnat; oifname \"f1\" "
            "masquerade; }\n"
            "}\n"
            "EOF");
        // The sender's TX checksum offload: on, the local stack may trust bad checksums
        // and forward CHECKSUM_PARTIAL packets; off, every checksum is really computed.
        client_->exec(std::string("ethtool -K c0 tx ") + (offload() ? "on" : "off") +
                      " >/dev/null");

        pin_root_ = "/sys/fs/bpf/ppt" + std::to_string(getpid()) + "-udp";
        config_path_ = "/tmp/ppt" + std::to_string(getpid()) + "-udp.toml";
        const std::string attach = xdp() ? "attach = \"xdp\"\n" : "";
        std::ofstream(config_path_) << "[global]\n"
                                    << "bpffs = \"" << pin_root_ << "\"\n"
                                    << "udp_flow_timeout = \"400ms\"\n"
                                    << R"(
[[service]]
name = "first"
protocol = "udp"
listen = ["192.0.2.1:5000", "[2001:db8:1::1]:5000"]
interfaces = ["f0"]
)" << attach << R"(header = "v2"

[[service]]
name = "every"
protocol = "udp"
listen = ["192.0.2.1:5001", "[2001:db8:1::1]:5001"]
interfaces = ["f0"]
)" << attach << R"(header = "v2"
udp_header = "every"

[[service]]
name = "spp"
protocol = "udp"
listen = ["192.0.2.1:5002", "[2001:db8:1::1]:5002"]
interfaces = ["f0"]
)" << attach << R"(header = "spp"
)";
        daemon_ = pptest::start_ppinject_run(*front_, config_path_);
        ASSERT_FALSE(HasFailure());
        // The hook the config asked for, and nothing at the other one (veth runs XDP natively).
        std::string link = front_->exec("ip -d link show dev f0");
        EXPECT_EQ(link.find("prog/xdp") != std::string::npos, xdp()) << link;
        EXPECT_EQ(front_->exec("tc filter show dev f0 ingress").empty(), xdp());
        if (xdp()) {
            EXPECT_EQ(link.find(" xdpgeneric"), std::string::npos) << "native expected: " << link;
        }
    }

    void TearDown() override {
        if (daemon_) {
            EXPECT_EQ(daemon_->stop(SIGTERM), 0) << daemon_->log();
            // A clean stop leaves no filter and no pin behind.
            EXPECT_EQ(front_->exec("tc filter show dev f0 ingress"), "");
            EXPECT_EQ(front_->exec("tc filter show dev f0 egress"), "");
            EXPECT_EQ(front_->exec("ip link show dev f0").find(" xdp"), std::string::npos)
                << front_->exec("ip link show dev f0");
            EXPECT_FALSE(std::filesystem::exists(pin_root_));
        }
        for (Netns *ns : {client_, front_, backend_}) {
            if (ns) {
                EXPECT_EQ(pptest::udp_csum_errors(*ns), 0) << ns->name();
            }
        }
        daemon_.reset();
        if (!config_path_.empty()) {
            unlink(config_path_.c_str());
        }
        std::filesystem::remove(pin_root_);
        hosts_.reset();
    }

    // A UDP socket in `ns` bound to `ep`.
    ppinject::Fd udp_socket(const Netns &ns, const Endpoint &ep) {
        ppinject::Fd fd = ns.socket(ep.addr.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM);
        bind_to(fd.get(), ep);
        return fd;
    }

    // One family's ends for a service on `port`: its address, the backend's socket on that
    // port, and a client socket on an ephemeral port.
    struct Peers {
        Endpoint service;
        ppinject::Fd backend, client;
    };
    Peers peers(bool v4, std::uint16_t port) {
        return {pptest::ep(v4 ? kService4 : kService6, port),
                udp_socket(*backend_, pptest::ep(v4 ? "198.51.100.2" : "2001:db8:2::2", port)),
                udp_socket(*client_, pptest::ep(v4 ? "192.0.2.2" : "2001:db8:1::2", 0))};
    }

    std::unique_ptr<pptest::Hosts> hosts_;
    Netns *client_ = nullptr, *front_ = nullptr, *backend_ = nullptr;
    std::unique_ptr<pptest::Child> daemon_;
    std::string pin_root_, config_path_;
};

Endpoint ep(const std::string &addr, std::uint16_t port) {
    return Endpoint{*ppinject::IpAddress::parse(addr), port};
}

// v2 "first": the first datagram of a flow carries the header, the next does not; another
// source port is another flow; after the idle timeout the header comes again.
TEST_P(UdpNetns, V2FirstHeaderOncePerFlow) {
    for (const char *family : {"4", "6"}) {
        SCOPED_TRACE(std::string("IPv") + family);
        bool v4 = family[0] == '4';
        auto [service, backend, client] = peers(v4, kFirstPort);
        Endpoint client_ep = local_endpoint(client.get());

        send_to(client.get(), "hello", service);
        auto first = receive(backend.get());
        ASSERT_TRUE(first);
        EXPECT_EQ(first->second.addr.to_string(), v4 ? "198.51.100.1" : "2001:db8:2::1")
            << "the backend's socket must see the front (masquerade), not the client";
        pptest::expect_v2_dgram(first->first, client_ep, service, "hello");

        send_to(client.get(), "again", service);
        auto second = receive(backend.get());
        ASSERT_TRUE(second);
        EXPECT_EQ(second->first, "again") << "a live flow's later datagram must be bare";

        auto client2 = udp_socket(*client_, ep(v4 ? "192.0.2.2" : "2001:db8:1::2", 0));
        send_to(client2.get(), "other", service);
        auto other = receive(backend.get());
        ASSERT_TRUE(other);
        pptest::expect_v2_dgram(other->first, local_endpoint(client2.get()), service, "other");

        std::this_thread::sleep_for(std::chrono::milliseconds(700));  // > udp_flow_timeout
        send_to(client.get(), "expired", service);
        auto fresh = receive(backend.get());
        ASSERT_TRUE(fresh);
        pptest::expect_v2_dgram(fresh->first, client_ep, service, "expired");
    }
}

// v2 "every": every datagram carries the header.
TEST_P(UdpNetns, V2EveryDatagram) {
    for (const char *family : {"4", "6"}) {
        SCOPED_TRACE(std::string("IPv") + family);
        bool v4 = family[0] == '4';
        auto [service, backend, client] = peers(v4, kEveryPort);
        Endpoint client_ep = local_endpoint(client.get());
        for (int i = 0; i < 3; i++) {
            std::string payload = "datagram " + std::to_string(i) + std::string(i * 500, 'x');
            send_to(client.get(), payload, service);
            auto got = receive(backend.get());
            ASSERT_TRUE(got);
            pptest::expect_v2_dgram(got->first, client_ep, service, payload);
        }
    }
}

// SPP: every datagram carries it; the backend echoes it on the reply and the front's
// egress strips it, so the client gets the bare reply from the service address.
TEST_P(UdpNetns, SppBothDirections) {
    for (const char *family : {"4", "6"}) {
        SCOPED_TRACE(std::string("IPv") + family);
        bool v4 = family[0] == '4';
        auto [service, backend, client] = peers(v4, kSppPort);
        Endpoint client_ep = local_endpoint(client.get());
        for (int i = 0; i < 2; i++) {
            std::string payload = "query " + std::to_string(i);
            send_to(client.get(), payload, service);
            auto got = receive(backend.get());
            ASSERT_TRUE(got);
            pptest::expect_spp_dgram(got->first, client_ep, service, payload);

            // Echo the 38-byte header in front of the answer, back to where it came from.
            std::string reply = got->first.substr(0, 38) + "answer " + std::to_string(i);
            send_to(backend.get(), reply, got->second);
            auto answer = receive(client.get());
            ASSERT_TRUE(answer);
            EXPECT_EQ(answer->first, "answer " + std::to_string(i));
            EXPECT_EQ(answer->second, service);
        }
        // A reply whose header names another client is not delivered.
        send_to(client.get(), "query x", service);
        auto got = receive(backend.get());
        ASSERT_TRUE(got);
        std::string forged = got->first.substr(0, 38);
        forged[35] ^= 1;  // client port, low byte
        send_to(backend.get(), forged + "not for you", got->second);
        EXPECT_FALSE(receive(client.get(), 500));
    }
}

// A client that writes its own PROXY v2 header is dropped, not believed.
TEST_P(UdpNetns, ForgedHeaderDropped) {
    Endpoint service = ep(kService4, kEveryPort);
    auto backend = udp_socket(*backend_, ep("198.51.100.2", kEveryPort));
    auto client = udp_socket(*client_, ep("192.0.2.2", 0));
    std::string forged("\r\n\r\n\0\r\nQUIT\n\x21\x12\x00\x0c", 16);
    forged += std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02", 12);
    send_to(client.get(), forged + "payload", service);
    EXPECT_FALSE(receive(backend.get(), 500));
    send_to(client.get(), "honest", service);
    auto got = receive(backend.get());
    ASSERT_TRUE(got);
    pptest::expect_v2_dgram(got->first, local_endpoint(client.get()), service, "honest");
}

// A datagram bigger than the path MTU leaves the client in fragments: the first cannot
// carry a header, so it is dropped (frag_dropped) and nothing reaches the backend; the
// next small datagram of the same client still gets its header.
TEST_P(UdpNetns, FragmentsDropped) {
    for (const char *family : {"4", "6"}) {
        SCOPED_TRACE(std::string("IPv") + family);
        bool v4 = family[0] == '4';
        auto [service, backend, client] = peers(v4, kEveryPort);
        send_to(client.get(), std::string(3000, 'f'), service);
        EXPECT_FALSE(receive(backend.get(), 500)) << "a fragmented datagram must not arrive bare";
        send_to(client.get(), "small", service);
        auto got = receive(backend.get());
        ASSERT_TRUE(got);
        pptest::expect_v2_dgram(got->first, local_endpoint(client.get()), service, "small");
    }
}

// XDP with the client's TX checksum offload on is left out on purpose: a CHECKSUM_PARTIAL
// skb from the veth peer reaches XDP as plain bytes, and after the head moved its
// csum_start still points at the old UDP header, so whoever completes the checksum later
// (a device without offload) sums the wrong bytes (README, "XDP and checksum offload").
// Over veth to the backend the partial checksum is only trusted, so it would pass here
// without proving anything.
INSTANTIATE_TEST_SUITE_P(TxChecksumOffload, UdpNetns,
                         ::testing::Values(std::tuple{true, false}, std::tuple{false, false},
                                           std::tuple{false, true}),
                         [](const auto &info) {
                             return std::string(std::get<0>(info.param) ? "TxOffloadOn"
                                                                        : "TxOffloadOff") +
                                    (std::get<1>(info.param) ? "Xdp" : "");
                         });

}  // namespace
