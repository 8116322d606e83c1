// Receivers nobody here wrote decode what ppinject writes: nginx (stream, `listen ...
// proxy_protocol`) and HAProxy (`bind ... accept-proxy`) in the backend namespace log the
// client address they read from the header, for v1 and v2, IPv4 and IPv6, with a plain
// listening socket and with sk_lookup steering, in each relay mode. The payload comes back
// from their echo server byte for byte.
//
// Client, front and backend as in support/hosts.hpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include "support/hosts.hpp"
#include "support/privileges.hpp"
#include "support/process.hpp"
#include "support/receivers.hpp"

namespace {

using ppinject::Endpoint;

Endpoint ep(const std::string &text) {
    return *Endpoint::parse(text);
}

std::string payload(std::size_t n) {
    std::mt19937 gen(7);
    std::string s(n, '\0');
    for (auto &c : s) {
        c = static_cast<char>(gen());
    }
    return s;
}

// One ppinject service per receiver, header and steering; each gets its own port.
struct Case {
    const char *receiver;  // "nginx" or "haproxy"
    const char *header;    // "v1" or "v2"
    bool transparent;
};

class TcpReceivers : public ::testing::TestWithParam<const char *> {
  protected:
    void SetUp() override {
        PP_REQUIRE_ROOT();
        hosts_ = std::make_unique<pptest::Hosts>();
        nginx_ = std::make_unique<pptest::NginxStream>(
            *hosts_->backend,
            std::vector<Endpoint>{ep("198.51.100.2:9100"), ep("[2001:db8:2::2]:9100")});
        haproxy_ = std::make_unique<pptest::Haproxy>(
            *hosts_->backend,
            std::vector<Endpoint>{ep("198.51.100.2:9200"), ep("[2001:db8:2::2]:9200")});

        pin_root_ = "/sys/fs/bpf/ppt" + std::to_string(getpid()) + "-recv";
        config_path_ = "/tmp/ppt" + std::to_string(getpid()) + "-recv.toml";
        std::ofstream cfg(config_path_);
        cfg << "[global]\nbpffs = \"" << pin_root_ << "\"\n";
        int port = 7500;
        for (const char *receiver : {"nginx", "haproxy"}) {
            for (const char *header : {"v1", "v2"}) {
                for (bool transparent : {false, true}) {
                    cases_.push_back({receiver, header, transparent});
                    std::string listen =
                        transparent ? "[\"203.0.113.0/24:" + std::to_string(port) +
                                          "\", \"[2001:db8:3::/64]:" + std::to_string(port) + "\"]"
                                    : "[\"192.0.2.1:" + std::to_string(port) +
                                          "\", \"[2001:db8:1::1]:" + std::to_string(port) + "\"]";
                    // IPv4 backend for v1, IPv6 for v2: both families on each side.
                    std::string backend =
                        std::string(header) == "v1" ? "198.51.100.2:" : "[2001:db8:2::2]:";
                    backend += std::string(receiver) == "nginx" ? "9100" : "9200";
                    cfg << "\n[[service]]\nname = \"" << receiver << "-" << header
                        << (transparent ? "-steered" : "-plain") << "\"\nprotocol = \"tcp\"\n"
                        << "listen = " << listen
                        << "\ntransparent = " << (transparent ? "true" : "false")
                        << "\nbackends = [\"" << backend << "\"]\nheader = \"" << header
                        << "\"\nrelay = \"" << GetParam() << "\"\n";
                    ports_.push_back(port++);
                }
            }
        }
        cfg.close();
        daemon_ = pptest::start_ppinject_run(*hosts_->front, config_path_);
        ASSERT_FALSE(HasFailure());
    }

    void TearDown() override {
        if (daemon_) {
            EXPECT_EQ(daemon_->stop(SIGTERM), 0) << daemon_->log();
        }
        daemon_.reset();
        unlink(config_path_.c_str());
        std::filesystem::remove_all(pin_root_);
        nginx_.reset();
        haproxy_.reset();
        hosts_.reset();
    }

    std::unique_ptr<pptest::Hosts> hosts_;
    std::unique_ptr<pptest::NginxStream> nginx_;
    std::unique_ptr<pptest::Haproxy> haproxy_;
    std::unique_ptr<pptest::Child> daemon_;
    std::vector<Case> cases_;
    std::vector<int> ports_;
    std::string pin_root_, config_path_;
};

TEST_P(TcpReceivers, LogTheClientsOwnAddress) {
    const std::string data = payload(256 << 10);
    std::size_t nginx_seen = 0, haproxy_seen = 0;
    for (std::size_t i = 0; i < cases_.size(); i++) {
        const Case &k = cases_[i];
        for (bool v4 : {true, false}) {
            std::string port = std::to_string(ports_[i]);
            Endpoint to = ep(k.transparent ? (v4 ? "203.0.113.44:" : "[2001:db8:3::44]:") + port
                                           : (v4 ? "192.0.2.1:" : "[2001:db8:1::1]:") + port);
            SCOPED_TRACE(std::string(k.receiver) + " " + k.header + " to " + to.to_string());
            pptest::TcpExchange x = pptest::tcp_exchange(*hosts_->client, to, data);
            EXPECT_TRUE(x.eof && !x.reset && !x.timed_out && x.error == 0)
                << "eof " << x.eof << " reset " << x.reset << " error " << x.error;
            EXPECT_TRUE(x.received == data) << "echo differs: " << x.received.size() << " bytes";

            pptest::Receiver &r = std::string(k.receiver) == "nginx"
                                      ? static_cast<pptest::Receiver &>(*nginx_)
                                      : static_cast<pptest::Receiver &>(*haproxy_);
            std::size_t &n = &r == nginx_.get() ? nginx_seen : haproxy_seen;
            auto seen = r.wait_seen(++n);
            ASSERT_EQ(seen.size(), n) << r.diagnostics();
            const pptest::Seen &s = seen.back();
            ASSERT_TRUE(s.client) << s.line;
            EXPECT_EQ(*s.client, x.local) << s.line;  // the client namespace's own address
            ASSERT_TRUE(s.destination) << s.line;
            EXPECT_EQ(*s.destination, to) << s.line;  // what the client dialled
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, TcpReceivers, ::testing::Values("sockmap", "splice", "copy"),
                         [](const auto &info) { return std::string(info.param); });

}  // namespace
