// Real PROXY protocol receivers (nginx stream `proxy_protocol`, HAProxy `accept-proxy`)
// decode headers built with ppinject's codec: the client address and port they log is
// exactly the one the header claims, for v1 and v2, IPv4 and IPv6, and the payload behind
// the header comes back byte-exact through the receiver and its echo server. These are the
// receivers the TCP namespace tests will put behind ppinject; this test proves the
// harness itself can pass and fail before ppinject is in the path.
//
//   client ns                           receiver ns
//   c0 192.0.2.2/24     -----------     r0 192.0.2.1/24      nginx or haproxy :7000
//      2001:db8::2/64                      2001:db8::1/64    echo server 127.0.0.1:<any>
//
// The claimed clients (203.0.113.7, 2001:db8:7::7) exist only inside the headers: the
// receiver's socket sees 192.0.2.2 / 2001:db8::2, and only a decoded header can name them.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "codec/proxy.hpp"
#include "support/netns.hpp"
#include "support/privileges.hpp"
#include "support/receivers.hpp"

namespace {

using ppinject::Endpoint;
using ppinject::proxy::Command;
using ppinject::proxy::Error;
using ppinject::proxy::Transport;
using pptest::Netns;

enum class Kind { nginx, haproxy };

// Names the parameter in test output (and so in CTest's test names).
void PrintTo(Kind k, std::ostream *os) {
    *os << (k == Kind::nginx ? "nginx" : "haproxy");
}

const Endpoint kService4 = *Endpoint::parse("192.0.2.1:7000");
const Endpoint kService6 = *Endpoint::parse("[2001:db8::1]:7000");
const Endpoint kClient4 = *Endpoint::parse("203.0.113.7:40001");
const Endpoint kClient6 = *Endpoint::parse("[2001:db8:7::7]:40001");

std::string text(const std::optional<Endpoint> &e) {
    return e ? e->to_string() : "(none)";
}

std::string v1_header(const Endpoint &client, const Endpoint &service) {
    std::array<std::uint8_t, ppinject::proxy::kV1MaxLen> buf{};
    std::size_t n = 0;
    EXPECT_EQ(ppinject::proxy::encode_v1(buf, client, service, n), Error::ok);
    return {reinterpret_cast<const char *>(buf.data()), n};
}

// A v2 PROXY header with TLVs the receivers must skip (UNIQUE_ID) or check (CRC32C: HAProxy
// verifies it and drops the connection on a mismatch; nginx 1.22 skips it).
std::string v2_header(const Endpoint &client, const Endpoint &service) {
    std::array<std::uint8_t, 256> buf{};
    ppinject::proxy::V2Writer w(buf);
    const std::uint8_t id[] = {'p', 'p', 't', '-', '1'};
    std::size_t n = 0;
    EXPECT_EQ(w.begin(Command::proxy, Transport::stream, client, service), Error::ok);
    EXPECT_EQ(w.add_unique_id(id), Error::ok);
    EXPECT_EQ(w.finish(true, n), Error::ok);
    return {reinterpret_cast<const char *>(buf.data()), n};
}

// v2 LOCAL: what a sender uses for its own health checks; the receiver keeps the socket's
// addresses.
std::string v2_local() {
    std::array<std::uint8_t, 64> buf{};
    ppinject::proxy::V2Writer w(buf);
    std::size_t n = 0;
    EXPECT_EQ(w.begin_unspec(Command::local), Error::ok);
    EXPECT_EQ(w.finish(false, n), Error::ok);
    return {reinterpret_cast<const char *>(buf.data()), n};
}

// Bytes no receiver could mistake for a header, and large enough (several socket buffers)
// that the echo has to stream both ways at once.
std::string payload(std::size_t size) {
    std::string out(size, '\0');
    std::uint32_t x = 2463534242u;  // xorshift32
    for (char &c : out) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x);
    }
    return out;
}

std::size_t first_difference(const std::string &a, const std::string &b) {
    std::size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) {
        i++;
    }
    return i;
}

class Receivers : public ::testing::TestWithParam<Kind> {
  protected:
    void SetUp() override {
        PP_REQUIRE_ROOT();
        client_ = std::make_unique<Netns>("rc-client");
        server_ = std::make_unique<Netns>("rc-recv");
        pptest::veth(*client_, "c0", {"192.0.2.2/24", "2001:db8::2/64"}, *server_, "r0",
                     {"192.0.2.1/24", "2001:db8::1/64"});
        std::vector<Endpoint> listen = {kService4, kService6};
        if (GetParam() == Kind::nginx) {
            receiver_ = std::make_unique<pptest::NginxStream>(*server_, listen);
        } else {
            receiver_ = std::make_unique<pptest::Haproxy>(*server_, listen);
        }
    }

    void TearDown() override {
        // The receiver refers to its namespace: stop it (by PID) before the namespaces go.
        receiver_.reset();
        server_.reset();
        client_.reset();
    }

    // Sends `header` and a large payload to `dial`, expects every payload byte back and the
    // connection closed cleanly, and returns the client socket's own address.
    Endpoint expect_echo(const Endpoint &dial, const std::string &header) {
        const std::string data = payload(256 * 1024);
        pptest::TcpExchange x = pptest::tcp_exchange(*client_, dial, header + data);
        EXPECT_TRUE(x.eof) << "reset=" << x.reset << " timed_out=" << x.timed_out
                           << " errno=" << x.error << "\n"
                           << receiver_->diagnostics();
        EXPECT_EQ(x.received.size(), data.size());
        EXPECT_TRUE(x.received == data)
            << "echo differs at byte " << first_difference(x.received, data);
        return x.local;
    }

    // One connection with `header` for `claimed` -> `service`: the echo is exact and the
    // receiver logged the claimed client and the header's destination.
    void expect_decoded(const std::string &header, const Endpoint &claimed,
                        const Endpoint &service) {
        Endpoint local = expect_echo(service, header);
        std::vector<pptest::Seen> seen = receiver_->wait_seen(1);
        ASSERT_EQ(seen.size(), 1u) << receiver_->diagnostics();
        EXPECT_EQ(text(seen[0].client), claimed.to_string()) << seen[0].line;
        EXPECT_EQ(text(seen[0].destination), service.to_string()) << seen[0].line;
        if (GetParam() == Kind::nginx) {
            // The socket's peer stays the real one: the header did not replace it.
            EXPECT_EQ(text(seen[0].peer), local.to_string()) << seen[0].line;
            EXPECT_EQ(seen[0].status, "200") << seen[0].line;
        } else {
            EXPECT_EQ(seen[0].status, "--") << seen[0].line;  // closed normally
        }
        EXPECT_EQ(receiver_->echo().accepted(), 1u);
    }

    std::unique_ptr<Netns> client_, server_;
    std::unique_ptr<pptest::Receiver> receiver_;
};

TEST_P(Receivers, V1Ipv4ClientDecoded) {
    expect_decoded(v1_header(kClient4, kService4), kClient4, kService4);
}

TEST_P(Receivers, V2Ipv4ClientDecoded) {
    expect_decoded(v2_header(kClient4, kService4), kClient4, kService4);
}

TEST_P(Receivers, V1Ipv6ClientDecoded) {
    expect_decoded(v1_header(kClient6, kService6), kClient6, kService6);
}

TEST_P(Receivers, V2Ipv6ClientDecoded) {
    expect_decoded(v2_header(kClient6, kService6), kClient6, kService6);
}

// An IPv6 client reaching an IPv4 service (ppinject writes TCP6 then): the header's family
// is not the connection's, and the receivers must take the header's.
TEST_P(Receivers, Ipv6HeaderOnIpv4ConnectionDecoded) {
    expect_echo(kService4, v2_header(kClient6, kService6));
    std::vector<pptest::Seen> seen = receiver_->wait_seen(1);
    ASSERT_EQ(seen.size(), 1u) << receiver_->diagnostics();
    EXPECT_EQ(text(seen[0].client), kClient6.to_string()) << seen[0].line;
    EXPECT_EQ(text(seen[0].destination), kService6.to_string()) << seen[0].line;
}

// Several connections, both versions and families, each with its own claimed port: one
// entry per connection, each naming its own client.
TEST_P(Receivers, EveryConnectionLoggedWithItsClient) {
    std::multiset<std::string> want;
    for (int i = 0; i < 8; i++) {
        bool v6 = i % 2 == 1;
        Endpoint claimed = v6 ? kClient6 : kClient4;
        claimed.port = static_cast<std::uint16_t>(41000 + i);
        const Endpoint &service = v6 ? kService6 : kService4;
        expect_echo(service, i % 4 < 2 ? v1_header(claimed, service) : v2_header(claimed, service));
        want.insert(claimed.to_string());
    }
    std::vector<pptest::Seen> seen = receiver_->wait_seen(want.size());
    std::multiset<std::string> got;
    for (const auto &s : seen) {
        got.insert(text(s.client));
    }
    EXPECT_EQ(got, want) << receiver_->diagnostics();
}

// v2 LOCAL (a sender's health check) is accepted with the payload forwarded. The receivers
// differ on what they log: nginx reports no proxy address at all, HAProxy falls back to
// the socket's own addresses.
TEST_P(Receivers, V2LocalAcceptedWithSocketAddresses) {
    Endpoint local = expect_echo(kService4, v2_local());
    std::vector<pptest::Seen> seen = receiver_->wait_seen(1);
    ASSERT_EQ(seen.size(), 1u) << receiver_->diagnostics();
    if (GetParam() == Kind::nginx) {
        EXPECT_EQ(text(seen[0].client), "(none)") << seen[0].line;
        EXPECT_EQ(text(seen[0].peer), local.to_string()) << seen[0].line;
    } else {
        EXPECT_EQ(text(seen[0].client), local.to_string()) << seen[0].line;
        EXPECT_EQ(text(seen[0].destination), kService4.to_string()) << seen[0].line;
    }
}

// Without a header the receiver refuses the connection: nothing reaches the echo server,
// nothing comes back, no entry names a client, and the receiver says why. This is the
// case that shows the log check can fail.
TEST_P(Receivers, ConnectionWithoutHeaderRejected) {
    pptest::TcpExchange x =
        pptest::tcp_exchange(*client_, kService4, "GET / HTTP/1.0\r\n\r\n" + payload(1024));
    EXPECT_TRUE(x.eof || x.reset) << "timed_out=" << x.timed_out << " errno=" << x.error;
    EXPECT_TRUE(x.received.empty()) << x.received.size() << " bytes came back";
    if (GetParam() == Kind::nginx) {
        EXPECT_TRUE(receiver_->wait_message("broken header")) << receiver_->diagnostics();
        // nginx logs the session with status 400 and no proxy address.
        std::vector<pptest::Seen> seen = receiver_->wait_seen(1);
        ASSERT_EQ(seen.size(), 1u) << receiver_->diagnostics();
        EXPECT_EQ(text(seen[0].client), "(none)") << seen[0].line;
        EXPECT_EQ(seen[0].status, "400") << seen[0].line;
    } else {
        EXPECT_TRUE(receiver_->wait_message("does not look like a PROXY protocol header"))
            << receiver_->diagnostics();
        // HAProxy logs the refused connection only in its error format, never as a session.
        EXPECT_TRUE(receiver_->seen().empty()) << receiver_->diagnostics();
    }
    EXPECT_EQ(receiver_->echo().accepted(), 0u);
}

// A v2 header whose CRC32C does not match: HAProxy checks the checksum and refuses the
// connection (so the codec's CRC32C is checked by a decoder nobody here wrote); nginx 1.22
// does not check TLVs and accepts it.
TEST_P(Receivers, V2BadCrc32cRefusedByHaproxy) {
    std::string header = v2_header(kClient4, kService4);
    header.back() = static_cast<char>(header.back() ^ 0x01);  // the CRC32C TLV comes last
    pptest::TcpExchange x = pptest::tcp_exchange(*client_, kService4, header + "hello");
    if (GetParam() == Kind::nginx) {
        EXPECT_TRUE(x.eof);
        EXPECT_EQ(x.received, "hello");
        std::vector<pptest::Seen> seen = receiver_->wait_seen(1);
        ASSERT_EQ(seen.size(), 1u) << receiver_->diagnostics();
        EXPECT_EQ(text(seen[0].client), kClient4.to_string()) << seen[0].line;
    } else {
        EXPECT_TRUE(x.eof || x.reset) << "timed_out=" << x.timed_out << " errno=" << x.error;
        EXPECT_TRUE(x.received.empty());
        EXPECT_TRUE(receiver_->wait_message("PROXY protocol")) << receiver_->diagnostics();
        EXPECT_TRUE(receiver_->seen().empty()) << receiver_->diagnostics();
        EXPECT_EQ(receiver_->echo().accepted(), 0u);
    }
}

INSTANTIATE_TEST_SUITE_P(Real, Receivers, ::testing::Values(Kind::nginx, Kind::haproxy),
                         [](const ::testing::TestParamInfo<Kind> &info) {
                             return std::string(info.param == Kind::nginx ? "nginx" : "haproxy");
                         });

// The versions the results above were obtained with, in the test log.
TEST(ReceiversVersion, Reported) {
    std::string nginx = pptest::NginxStream::version(), haproxy = pptest::Haproxy::version();
    EXPECT_EQ(nginx.rfind("nginx/", 0), 0u) << nginx;
    EXPECT_FALSE(haproxy.empty());
    RecordProperty("nginx", nginx);
    RecordProperty("haproxy", haproxy);
    std::cout << "receivers: " << nginx << ", haproxy " << haproxy << "\n";
}

}  // namespace
