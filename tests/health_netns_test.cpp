// Health for a BGP speaker: GET /healthz on the metrics address and `ppinject status
// --check` give one answer, from one check. 200 / exit 0 while every service is served;
// 503 / exit 1 with the reason once a UDP service's interface is deleted under the running
// daemon, its tc filter is removed, or the daemon is killed (its TCP listeners go with it);
// a reload that fails changes nothing, so health stays as it was; a reload that drops the
// service, or finds its interface back, makes the host healthy again.
//
//   client ns                      front ns (ppinject, metrics on 127.0.0.1:9477)
//   c0 192.0.2.2/24  ----------   f0 192.0.2.1/24   UDP "dns" (v2)
//   c9               ----------   f9                UDP "game" (spp: ingress and egress)
//                                 TCP "web" listens on 192.0.2.1:7080,
//                                 TCP "edge" (transparent) on 203.0.113.0/24:7443
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "support/http_client.hpp"
#include "support/netns.hpp"
#include "support/privileges.hpp"
#include "support/process.hpp"

namespace {

using pptest::Netns;

class Health : public ::testing::Test {
  protected:
    void SetUp() override {
        PP_REQUIRE_ROOT();
        client_ = std::make_unique<Netns>("hl-client");
        front_ = std::make_unique<Netns>("hl-front");
        pptest::veth(*client_, "c0", {"192.0.2.2/24"}, *front_, "f0", {"192.0.2.1/24"});
        pptest::veth(*front_, "f9", {}, *client_, "c9", {});
        pin_root_ = "/sys/fs/bpf/ppt" + std::to_string(getpid()) + "-hl";
        config_ = "/tmp/ppt" + std::to_string(getpid()) + "-hl.toml";
        write_config();
    }

    void TearDown() override {
        run_.reset();
        if (front_) {
            pptest::run_process(
                front_->command({pptest::ppinject_binary(), "detach", "--bpffs", pin_root_}));
        }
        unlink(config_.c_str());
        client_.reset();
        front_.reset();
    }

    // The services of the drawing (without "game" if `game` is false), and `extra`.
    void write_config(const std::string &extra = {}, bool game = true) {
        std::ofstream(config_)
            << "[global]\nbpffs = \"" << pin_root_ << "\"\n"
            << "metrics = \"127.0.0.1:9477\"\n\n"
            << "[[service]]\nname = \"dns\"\nprotocol = \"udp\"\n"
            << "listen = \"192.0.2.1:7000\"\ninterfaces = [\"f0\"]\nheader = \"v2\"\n\n"
            << (game ? "[[service]]\nname = \"game\"\nprotocol = \"udp\"\n"
                       "listen = \"192.0.2.1:7001\"\ninterfaces = [\"f9\"]\n"
                       "header = \"spp\"\n\n"
                     : "")
            << "[[service]]\nname = \"web\"\nprotocol = \"tcp\"\n"
            << "listen = \"192.0.2.1:7080\"\nbackends = [\"192.0.2.2:80\"]\nheader = \"v1\"\n\n"
            << "[[service]]\nname = \"edge\"\nprotocol = \"tcp\"\n"
            << "listen = \"203.0.113.0/24:7443\"\ntransparent = true\n"
            << "backends = [\"192.0.2.2:80\"]\nheader = \"v2\"\n"
            << extra;
    }

    void start() {
        run_ = pptest::start_ppinject_run(*front_, config_);
        ASSERT_TRUE(run_->running()) << run_->log();
    }

    // GET /healthz from inside the front namespace.
    pptest::HttpResponse healthz() const {
        pptest::HttpResponse r;
        front_->run_inside([&] {
            r = pptest::roundtrip(*ppinject::Endpoint::parse("127.0.0.1:9477"),
                                  pptest::get("/healthz"));
        });
        return r;
    }

    pptest::ProcessResult check(bool json = false) const {
        std::vector<std::string> argv = {pptest::ppinject_binary(), "status", "--check", "--bpffs",
                                         pin_root_};
        if (json) {
            argv.push_back("--json");
        }
        return pptest::run_process(front_->command(argv));
    }

    // Both views say `reason` ("ok" when healthy), with 200/0 or 503/1.
    void expect_health(const std::string &reason) const {
        bool ok = reason == "ok";
        pptest::HttpResponse r = healthz();
        EXPECT_EQ(r.status, ok ? 200 : 503) << r.body;
        EXPECT_EQ(r.body, reason + "\n");
        pptest::ProcessResult c = check();
        EXPECT_EQ(c.exit_code, ok ? 0 : 1) << c.out << c.err;
        EXPECT_EQ(c.out, reason + "\n");
        EXPECT_EQ(c.err, "");
    }

    std::unique_ptr<Netns> client_, front_;
    std::string pin_root_, config_;
    std::unique_ptr<pptest::Child> run_;
};

TEST_F(Health, OkWhileServedAndTheReasonOnceAnInterfaceIsDeleted) {
    ASSERT_NO_FATAL_FAILURE(start());
    expect_health("ok");
    pptest::ProcessResult j = check(true);
    EXPECT_EQ(j.exit_code, 0);
    EXPECT_NE(j.out.find("\"healthy\": true"), std::string::npos) << j.out;

    front_->exec("ip link del f9");  // takes c9 with it
    expect_health("udp service \"game\": interface f9 is gone");
    j = check(true);
    EXPECT_EQ(j.exit_code, 1);
    EXPECT_NE(j.out.find("\"healthy\": false"), std::string::npos) << j.out;
    EXPECT_NE(
        j.out.find("\"problems\": [\n    \"udp service \\\"game\\\": interface f9 is gone\"\n  ]"),
        std::string::npos)
        << j.out;
    EXPECT_TRUE(run_->running()) << "the daemon keeps serving what is left";

    // A reload that drops the service makes the host healthy again.
    write_config({}, false);
    kill(run_->pid(), SIGHUP);
    ASSERT_TRUE(run_->wait_for_output("reloaded")) << run_->log();
    expect_health("ok");

    EXPECT_EQ(run_->stop(SIGTERM), 0) << run_->log();
    pptest::ProcessResult c = check();
    EXPECT_EQ(c.exit_code, 1);
    EXPECT_EQ(c.out.rfind("no ppinject state at " + pin_root_, 0), 0u) << c.out;
}

// The interface comes back (same name, a new index): a reload attaches to it again and
// forgets the record of the one that went.
TEST_F(Health, ReloadAttachesToARecreatedInterface) {
    ASSERT_NO_FATAL_FAILURE(start());
    front_->exec("ip link del f9");
    expect_health("udp service \"game\": interface f9 is gone");
    pptest::veth(*front_, "f9", {}, *client_, "c9", {});
    expect_health("udp service \"game\": interface f9 is gone");
    kill(run_->pid(), SIGHUP);
    ASSERT_TRUE(run_->wait_for_output("reloaded")) << run_->log();
    EXPECT_NE(run_->log().find("forgot interface f9: it is gone"), std::string::npos)
        << run_->log();
    expect_health("ok");
    EXPECT_NE(front_->exec("tc filter show dev f9 egress").find("udp_egress"), std::string::npos);
    EXPECT_EQ(run_->stop(SIGTERM), 0) << run_->log();
    EXPECT_EQ(front_->exec("tc filter show dev f9 ingress"), "");
}

TEST_F(Health, FailedReloadKeepsHealthAsItWas) {
    ASSERT_NO_FATAL_FAILURE(start());
    expect_health("ok");
    // A file that fails validation, and one naming an interface the host does not have:
    // neither changes anything, so the host stays healthy.
    std::ofstream(config_, std::ios::trunc) << "[[service]]\nname = \"broken\"\n";
    kill(run_->pid(), SIGHUP);
    ASSERT_TRUE(run_->wait_for_output("reload failed, nothing changed")) << run_->log();
    expect_health("ok");

    write_config(
        "\n[[service]]\nname = \"late\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:7002\"\n"
        "interfaces = [\"nosuch0\"]\nheader = \"v2\"\n\n[[service]]\nname = \"more\"\nprotocol = "
        "\"tcp\"\n"
        "listen = \"192.0.2.1:7081\"\nbackends = [\"192.0.2.2:80\"]\nheader = \"v1\"\n");
    kill(run_->pid(), SIGHUP);
    ASSERT_TRUE(run_->wait_for_output("interface nosuch0 not found")) << run_->log();
    expect_health("ok");
    pptest::ProcessResult st = pptest::run_process(
        front_->command({pptest::ppinject_binary(), "status", "--bpffs", pin_root_}));
    EXPECT_EQ(st.out.find("late"), std::string::npos) << st.out;
    EXPECT_EQ(st.out.find("more"), std::string::npos) << "nor a TCP listener: " << st.out;
    EXPECT_EQ(front_->exec("ss -Htln sport = :7081"), "");
    EXPECT_EQ(run_->stop(SIGTERM), 0) << run_->log();
}

TEST_F(Health, RemovedFilterAndKilledDaemonAreReported) {
    ASSERT_NO_FATAL_FAILURE(start());
    expect_health("ok");
    // Someone deletes the clsact qdisc on f0, and ppinject's filters with it.
    front_->exec("tc qdisc del dev f0 clsact");
    expect_health("udp service \"dns\": tc ingress on f0 is not attached");
    front_->exec("tc qdisc del dev f9 clsact");
    expect_health(
        "udp service \"dns\": tc ingress on f0 is not attached; udp service \"game\": tc ingress "
        "on f9 is not attached; udp service \"game\": tc egress on f9 is not attached");

    // Killed: the pins stay, the TCP listeners are gone with the process.
    ASSERT_EQ(run_->stop(SIGKILL), 128 + SIGKILL);
    pptest::ProcessResult c = check();
    EXPECT_EQ(c.exit_code, 1);
    EXPECT_EQ(c.out, "no ppinject run owns " + pin_root_ +
                         " (a killed run's UDP data path may still be attached); udp service "
                         "\"dns\": tc ingress on f0 is not attached; udp service \"game\": tc "
                         "ingress on f9 is not attached; udp service \"game\": tc egress on f9 "
                         "is not attached; tcp service \"web\": not listening on "
                         "192.0.2.1:7080; tcp service \"edge\": not listening (no IPv4 "
                         "listener for sk_lookup in tcp_listen)\n");
}

// A killed daemon's UDP data path goes on injecting, but nothing would reload it or detach
// it cleanly: a host without its daemon is not healthy even with only UDP services.
TEST_F(Health, KilledUdpOnlyRunIsNotHealthy) {
    std::ofstream(config_, std::ios::trunc)
        << "[global]\nbpffs = \"" << pin_root_ << "\"\n\n"
        << "[[service]]\nname = \"dns\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:7000\"\n"
        << "interfaces = [\"f0\"]\nheader = \"v2\"\n";
    ASSERT_NO_FATAL_FAILURE(start());
    pptest::ProcessResult c = check();
    EXPECT_EQ(c.exit_code, 0) << c.out;
    ASSERT_EQ(run_->stop(SIGKILL), 128 + SIGKILL);
    c = check();
    EXPECT_EQ(c.exit_code, 1);
    EXPECT_EQ(c.out, "no ppinject run owns " + pin_root_ +
                         " (a killed run's UDP data path may still be attached)\n");
}

}  // namespace
