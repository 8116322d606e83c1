// The daemon's lifecycle as an operator meets it: a killed run keeps injecting and
// `detach` removes all of it; a new run adopts what a killed one left; a failed or
// refused start attaches nothing; a second run is refused; pins show named fields; a
// clsact qdisc ppinject did not create survives it. The same for attach = "xdp", where
// someone else's XDP program is never replaced.
//
//   client ns                      front ns
//   c0 192.0.2.2/24  ----------   f0 192.0.2.1/24   (ppinject: tc or XDP on f0)
//                                 f9 (no address; a second interface)
//
// The service is local to the front (no forwarding): a UDP socket on the front receives
// the datagrams with their headers.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "codec/proxy.hpp"
#include "loader/service_key.hpp"
#include "support/netns.hpp"
#include "support/privileges.hpp"
#include "support/process.hpp"
#include "sys/fd.hpp"

namespace {

using ppinject::Endpoint;
using pptest::Netns;

class Lifecycle : public ::testing::Test {
  protected:
    void SetUp() override {
        PP_REQUIRE_ROOT();
        client_ = std::make_unique<Netns>("lc-client");
        front_ = std::make_unique<Netns>("lc-front");
        pptest::veth(*client_, "c0", {"192.0.2.2/24"}, *front_, "f0", {"192.0.2.1/24"});
        pptest::veth(*front_, "f9", {}, *client_, "c9", {});
        pin_root_ = "/sys/fs/bpf/ppt" + std::to_string(getpid()) + "-lc";
        config_ = "/tmp/ppt" + std::to_string(getpid()) + "-lc.toml";
        write_config({"f0"});
    }

    void TearDown() override {
        // Whatever a failed check left: the same command an operator would use.
        if (front_) {
            pptest::run_process(
                front_->command({pptest::ppinject_binary(), "detach", "--bpffs", pin_root_}));
        }
        unlink(config_.c_str());
        client_.reset();
        front_.reset();
    }

    void write_config(const std::vector<std::string> &interfaces, bool spp = false,
                      unsigned port = 7000, bool xdp = false) {
        std::string ifs;
        for (const auto &i : interfaces) {
            ifs += (ifs.empty() ? "\"" : ", \"") + i + "\"";
        }
        std::ofstream(config_) << "[global]\nbpffs = \"" << pin_root_ << "\"\n\n"
                               << "[[service]]\nname = \"echo\"\nprotocol = \"udp\"\n"
                               << "listen = \"192.0.2.1:" << port << "\"\ninterfaces = [" << ifs
                               << "]\n"
                               << "header = \"" << (spp ? "spp" : "v2") << "\"\n"
                               << (xdp ? "attach = \"xdp\"\n" : "");
    }

    // `ip -d link show dev IF` in the front: "prog/xdp id N" while an XDP program runs.
    std::string link(const char *ifname = "f0") const {
        return front_->exec(std::string("ip -d link show dev ") + ifname);
    }

    std::vector<std::string> run_argv() const {
        return front_->command({pptest::ppinject_binary(), "run", "--config", config_});
    }

    pptest::ProcessResult cli(std::vector<std::string> args) const {
        args.insert(args.begin(), pptest::ppinject_binary());
        return pptest::run_process(front_->command(std::move(args)));
    }

    std::string filters(const char *hook = "ingress") const {
        return front_->exec(std::string("tc filter show dev f0 ") + hook);
    }

    // Sends one datagram from the client (fixed source port) and returns what the front's
    // socket on 192.0.2.1:7000 received.
    std::optional<std::string> roundtrip(const std::string &payload) {
        ppinject::Fd rx = front_->socket(AF_INET, SOCK_DGRAM);
        ppinject::Fd tx = client_->socket(AF_INET, SOCK_DGRAM);
        int one = 1;
        setsockopt(rx.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(tx.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in to{AF_INET, htons(7000), {}, {}}, from{AF_INET, htons(41000), {}, {}};
        inet_pton(AF_INET, "192.0.2.1", &to.sin_addr);
        inet_pton(AF_INET, "192.0.2.2", &from.sin_addr);
        std::optional<std::string> got;
        if (bind(rx.get(), reinterpret_cast<sockaddr *>(&to), sizeof to) == 0 &&
            bind(tx.get(), reinterpret_cast<sockaddr *>(&from), sizeof from) == 0 &&
            sendto(tx.get(), payload.data(), payload.size(), 0, reinterpret_cast<sockaddr *>(&to),
                   sizeof to) == static_cast<ssize_t>(payload.size())) {
            pollfd p{rx.get(), POLLIN, 0};
            char buf[2048];
            if (poll(&p, 1, 2000) == 1) {
                ssize_t n = recv(rx.get(), buf, sizeof buf, 0);
                if (n >= 0) {
                    got = std::string(buf, static_cast<size_t>(n));
                }
            }
        }
        return got;
    }

    static bool has_v2_header(const std::string &d) {
        ppinject::proxy::V2Header h;
        return ppinject::proxy::decode_v2(
                   {reinterpret_cast<const std::uint8_t *>(d.data()), d.size()}, h) ==
               ppinject::proxy::Error::ok;
    }

    std::unique_ptr<Netns> client_, front_;
    std::string pin_root_, config_;
};

TEST_F(Lifecycle, KilledRunKeepsInjectingAndDetachRemovesEverything) {
    {
        pptest::Child run(run_argv());
        ASSERT_TRUE(run.wait_for_output("running")) << run.log();
        ASSERT_EQ(run.stop(SIGKILL), 128 + SIGKILL);
    }
    // The data path lives in the kernel, not in the process.
    auto d = roundtrip("after the crash");
    ASSERT_TRUE(d);
    EXPECT_TRUE(has_v2_header(*d));
    EXPECT_NE(filters().find("udp_ingress"), std::string::npos);
    EXPECT_TRUE(std::filesystem::exists(pin_root_ + "/udp_flows"));

    // status reads the pins of the dead run.
    auto st = cli({"status", "--json", "--bpffs", pin_root_});
    ASSERT_EQ(st.exit_code, 0) << st.err;
    EXPECT_NE(st.out.find("\"injected_v2\": 1"), std::string::npos) << st.out;

    auto r = cli({"detach", "--config", config_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("detached tc ingress on f0"), std::string::npos) << r.err;
    EXPECT_EQ(filters(), "");
    EXPECT_EQ(front_->exec("tc qdisc show dev f0").find("clsact"), std::string::npos)
        << "ppinject created the clsact qdisc, so detach deletes it";
    EXPECT_FALSE(std::filesystem::exists(pin_root_));
    d = roundtrip("after detach");
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, "after detach");
}

// attach = "xdp": a killed run's XDP program keeps injecting, a new run takes its place
// (one program, swapped), and `detach` after another kill removes it.
TEST_F(Lifecycle, KilledXdpRunIsAdoptedAndDetachRemovesIt) {
    write_config({"f0"}, false, 7000, true);
    {
        pptest::Child run(run_argv());
        ASSERT_TRUE(run.wait_for_output("running")) << run.log();
        EXPECT_NE(run.log().find("attached XDP (native) on f0"), std::string::npos) << run.log();
        ASSERT_EQ(run.stop(SIGKILL), 128 + SIGKILL);
    }
    auto d = roundtrip("after the crash");
    ASSERT_TRUE(d);
    EXPECT_TRUE(has_v2_header(*d));
    EXPECT_NE(link().find("prog/xdp"), std::string::npos) << link();
    EXPECT_EQ(filters(), "") << "attach = \"xdp\" puts nothing at tc ingress";
    EXPECT_EQ(front_->exec("tc qdisc show dev f0").find("clsact"), std::string::npos)
        << "and needs no clsact qdisc without SPP";
    auto st = cli({"status", "--bpffs", pin_root_});
    EXPECT_NE(st.out.find("interface f0: ingress xdp (native), egress -"), std::string::npos)
        << st.out;
    auto js = cli({"status", "--json", "--bpffs", pin_root_});
    EXPECT_NE(js.out.find("\"xdp_mode\": \"native\""), std::string::npos) << js.out;
    {
        pptest::Child run(run_argv());
        ASSERT_TRUE(run.wait_for_output("running")) << run.log();
        auto again = roundtrip("adopted");  // the flow is live: bare
        ASSERT_TRUE(again);
        EXPECT_EQ(*again, "adopted");
        EXPECT_EQ(cli({"status", "--check", "--bpffs", pin_root_}).exit_code, 0)
            << cli({"status", "--check", "--bpffs", pin_root_}).out;
        ASSERT_EQ(run.stop(SIGKILL), 128 + SIGKILL);
    }
    auto r = cli({"detach", "--config", config_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("detached XDP on f0"), std::string::npos) << r.err;
    EXPECT_EQ(link().find("prog/xdp"), std::string::npos) << link();
    EXPECT_FALSE(std::filesystem::exists(pin_root_));
    d = roundtrip("after detach");
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, "after detach");
}

// Someone else's XDP program on an interface is never replaced: the run fails with one
// line naming it, and what it attached before (XDP on f0) is rolled back.
TEST_F(Lifecycle, ForeignXdpProgramIsNeverReplaced) {
    // XDP_PASS, under a name of nobody's: r0 = 2; exit.
    const bpf_insn prog[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    ppinject::Fd foreign(bpf_prog_load(BPF_PROG_TYPE_XDP, "foreign_xdp", "GPL", prog, 2, nullptr));
    ASSERT_TRUE(foreign) << "load a foreign XDP program: " << std::strerror(errno);
    int err = 0;
    front_->run_inside([&] {
        err = bpf_xdp_attach(static_cast<int>(if_nametoindex("f9")), foreign.get(),
                             XDP_FLAGS_SKB_MODE, nullptr);
    });
    ASSERT_EQ(err, 0) << "attach the foreign program to f9: " << std::strerror(-err);
    std::string before = link("f9");
    ASSERT_NE(before.find("prog/xdp"), std::string::npos) << before;

    write_config({"f0", "f9"}, false, 7000, true);  // f0 is attached first
    EXPECT_EQ(cli({"check", "--config", config_}).exit_code, 0) << "check cannot know";
    auto r = pptest::run_process(run_argv());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("attach XDP on f9: the interface runs another XDP program (id "),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("\"foreign_xdp\"); ppinject never replaces it"), std::string::npos)
        << r.err;
    EXPECT_EQ(link().find("prog/xdp"), std::string::npos) << "f0 must be rolled back: " << link();
    EXPECT_EQ(link("f9"), before) << "the foreign program stays, in its mode";
    EXPECT_FALSE(std::filesystem::exists(pin_root_));
    // detach leaves it too.
    EXPECT_EQ(cli({"detach", "--config", config_}).exit_code, 0);
    EXPECT_EQ(link("f9"), before);
}

TEST_F(Lifecycle, NewRunAdoptsWhatAKilledRunLeft) {
    {
        pptest::Child run(run_argv());
        ASSERT_TRUE(run.wait_for_output("running")) << run.log();
        auto first = roundtrip("first");
        ASSERT_TRUE(first && has_v2_header(*first));
        run.stop(SIGKILL);
    }
    pptest::Child run(run_argv());
    ASSERT_TRUE(run.wait_for_output("running")) << run.log();
    EXPECT_NE(run.log().find("adopted pinned map " + pin_root_ + "/udp_flows"), std::string::npos)
        << run.log();
    // The flow the killed run saw is still live: its next datagram is bare.
    auto second = roundtrip("second");
    ASSERT_TRUE(second);
    EXPECT_EQ(*second, "second");
    // One filter, not two: each filter line names its handle once.
    std::string f = filters();
    EXPECT_NE(f.find("handle 0x9b1"), std::string::npos) << f;
    EXPECT_EQ(f.find("handle 0x9b1"), f.rfind("handle 0x9b1")) << f;
    EXPECT_EQ(run.stop(SIGTERM), 0) << run.log();
    EXPECT_EQ(filters(), "");
    EXPECT_FALSE(std::filesystem::exists(pin_root_));
}

TEST_F(Lifecycle, FailedAttachRollsBackAndBadConfigAttachesNothing) {
    write_config({"f0", "nosuch0"});
    auto r = pptest::run_process(run_argv());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("interface nosuch0 not found"), std::string::npos) << r.err;
    EXPECT_EQ(filters(), "") << "f0 was attached before nosuch0 failed: must be rolled back";
    EXPECT_EQ(front_->exec("tc qdisc show dev f0").find("clsact"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(pin_root_));

    std::ofstream(config_) << "[[service]]\nname = \"x\"\nprotocol = \"udp\"\n";
    r = pptest::run_process(run_argv());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, config_ + ":1: service 'x' has no 'listen' address\n");
    EXPECT_EQ(filters(), "");
}

TEST_F(Lifecycle, UnknownCongestionControlRollsBackTheAttachedUdpService) {
    // Only the kernel knows its congestion controls: `check` takes the name, `run` fails
    // when it opens the TCP service, after the UDP service was attached.
    write_config({"f0"});
    std::ofstream(config_, std::ios::app)
        << "\n[[service]]\nname = \"web\"\nprotocol = \"tcp\"\nlisten = \"192.0.2.1:7080\"\n"
        << "backends = [\"192.0.2.2:80\"]\nheader = \"v2\"\n"
        << "tcp_congestion = { client = \"no_such_cc\" }\n";
    EXPECT_EQ(cli({"check", "--config", config_}).exit_code, 0);
    auto r = pptest::run_process(run_argv());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("ppinject: tcp: tcp_congestion \"no_such_cc\" for the client leg of "
                         "service 'web': this kernel has no such congestion control (available: "),
              std::string::npos)
        << r.err;
    EXPECT_EQ(filters(), "");
    EXPECT_EQ(filters("egress"), "");
    EXPECT_FALSE(std::filesystem::exists(pin_root_));
}

TEST_F(Lifecycle, SecondRunIsRefusedWithTheOwnersPid) {
    pptest::Child run(run_argv());
    ASSERT_TRUE(run.wait_for_output("running")) << run.log();
    auto r = pptest::run_process(run_argv());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("another ppinject run owns " + pin_root_), std::string::npos) << r.err;
    // nsenter execs ppinject, so the PID we started is the owner's.
    EXPECT_NE(r.err.find("(pid " + std::to_string(run.pid()) + ")"), std::string::npos) << r.err;
    EXPECT_NE(filters().find("udp_ingress"), std::string::npos) << "the first run is untouched";
    EXPECT_EQ(run.stop(SIGTERM), 0);
}

TEST_F(Lifecycle, ForeignClsactAndFiltersSurvive) {
    // Someone else's clsact qdisc and filter on f0 (a u32 classifier after ours).
    front_->exec(
        "tc qdisc add dev f0 clsact && tc filter add dev f0 ingress pref 60000 "
        "protocol ip u32 match u32 0 0 classid 1:1");
    pptest::Child run(run_argv());
    ASSERT_TRUE(run.wait_for_output("running")) << run.log();
    auto d = roundtrip("with a neighbour");
    ASSERT_TRUE(d && has_v2_header(*d));
    EXPECT_EQ(run.stop(SIGTERM), 0) << run.log();
    std::string f = filters();
    EXPECT_EQ(f.find("udp_ingress"), std::string::npos) << f;
    EXPECT_NE(f.find("u32"), std::string::npos) << "someone else's filter must stay: " << f;
    EXPECT_NE(front_->exec("tc qdisc show dev f0").find("clsact"), std::string::npos);
}

TEST_F(Lifecycle, ReloadOnSighupMovesAttachments) {
    write_config({"f0"}, true);  // SPP: ingress and egress
    pptest::Child run(run_argv());
    ASSERT_TRUE(run.wait_for_output("running")) << run.log();
    EXPECT_NE(filters("egress").find("udp_egress"), std::string::npos);

    write_config({"f9"});  // v2 on another interface: f0 detached, f9 attached
    auto r = pptest::run_process({pptest::ppinject_binary(), "reload", "--bpffs", pin_root_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "ppinject reload: sent SIGHUP to pid " + std::to_string(run.pid()) +
                         "; its log says 'reloaded' or why not\n");
    ASSERT_TRUE(run.wait_for_output("reloaded")) << run.log();
    EXPECT_EQ(filters(), "");
    EXPECT_EQ(filters("egress"), "");
    EXPECT_NE(front_->exec("tc filter show dev f9 ingress").find("udp_ingress"), std::string::npos);

    std::ofstream(config_) << "[[service]]\nname = \"broken\"\n";
    // `reload --config` checks the file first and does not signal a bad one.
    r = pptest::run_process({pptest::ppinject_binary(), "reload", "--config", config_});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err.rfind(config_ + ":", 0), 0u) << r.err;
    EXPECT_EQ(run.log().find("reload failed"), std::string::npos) << run.log();
    kill(run.pid(), SIGHUP);
    ASSERT_TRUE(run.wait_for_output("reload failed, nothing changed")) << run.log();
    EXPECT_NE(front_->exec("tc filter show dev f9 ingress").find("udp_ingress"), std::string::npos);

    // Text that crashed toml11 (invalid UTF-8 past its 128 KiB buffer) must not take the data
    // path's owner down: the reload fails with the reason and the daemon keeps serving.
    std::ofstream(config_) << std::string(200'000, '#') << "\nx = '\xff'\n";
    kill(run.pid(), SIGHUP);
    ASSERT_TRUE(run.wait_for_output("not valid UTF-8")) << run.log();
    EXPECT_EQ(kill(run.pid(), 0), 0) << run.log();
    EXPECT_NE(front_->exec("tc filter show dev f9 ingress").find("udp_ingress"), std::string::npos);
    EXPECT_EQ(run.stop(SIGTERM), 0) << run.log();
}

// A reload that moves a service from tc to XDP: the XDP program comes, tc ingress goes,
// the SPP reply stripping stays at tc egress; a clean stop removes all of it.
TEST_F(Lifecycle, ReloadMovesIngressFromTcToXdp) {
    write_config({"f0"}, true);
    pptest::Child run(run_argv());
    ASSERT_TRUE(run.wait_for_output("running")) << run.log();
    EXPECT_NE(filters().find("udp_ingress"), std::string::npos);
    write_config({"f0"}, true, 7000, true);
    kill(run.pid(), SIGHUP);
    ASSERT_TRUE(run.wait_for_output("reloaded")) << run.log();
    EXPECT_EQ(filters(), "") << "tc ingress must go once XDP injects";
    EXPECT_NE(filters("egress").find("udp_egress"), std::string::npos);
    EXPECT_NE(link().find("prog/xdp"), std::string::npos) << link();
    auto d = roundtrip("spp at xdp");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->size(), 38 + std::string("spp at xdp").size());
    EXPECT_EQ(d->substr(38), "spp at xdp");
    EXPECT_EQ(run.stop(SIGTERM), 0) << run.log();
    EXPECT_EQ(link().find("prog/xdp"), std::string::npos) << link();
    EXPECT_EQ(filters("egress"), "");
}

// Whether `port`'s bit is set in the pinned udp_ports bitmap.
bool udp_port_marked(const std::string &pin_root, unsigned port) {
    ppinject::Fd fd(bpf_obj_get((pin_root + "/udp_ports").c_str()));
    EXPECT_GE(fd.get(), 0) << "udp_ports not pinned: " << std::strerror(errno);
    std::uint32_t word = ppinject::port_word(port);
    std::uint64_t bits = 0;
    EXPECT_EQ(bpf_map_lookup_elem(fd.get(), &word, &bits), 0) << std::strerror(errno);
    return bits & ppinject::port_bit(port);
}

// The UDP program skips datagrams to ports no service listens on: a reload that moves the
// service to another port moves its mark in udp_ports.
TEST_F(Lifecycle, ReloadMovesTheUdpPortMark) {
    pptest::Child run(run_argv());
    ASSERT_TRUE(run.wait_for_output("running")) << run.log();
    EXPECT_TRUE(udp_port_marked(pin_root_, 7000));
    EXPECT_FALSE(udp_port_marked(pin_root_, 7001));
    write_config({"f0"}, false, 7001);
    auto r = pptest::run_process({pptest::ppinject_binary(), "reload", "--bpffs", pin_root_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(run.wait_for_output("reloaded")) << run.log();
    EXPECT_FALSE(udp_port_marked(pin_root_, 7000));
    EXPECT_TRUE(udp_port_marked(pin_root_, 7001));
    EXPECT_EQ(run.stop(SIGTERM), 0) << run.log();
}

// A reload that changes the service's interfaces leaves its live flows alone: the next
// datagram of a flow that got its header before the reload is bare.
TEST_F(Lifecycle, ReloadKeepsLiveFlows) {
    pptest::Child run(run_argv());
    ASSERT_TRUE(run.wait_for_output("running")) << run.log();
    auto first = roundtrip("first");
    ASSERT_TRUE(first && has_v2_header(*first));
    write_config({"f0", "f9"});
    auto r = pptest::run_process({pptest::ppinject_binary(), "reload", "--bpffs", pin_root_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(run.wait_for_output("reloaded")) << run.log();
    EXPECT_NE(front_->exec("tc filter show dev f9 ingress").find("udp_ingress"), std::string::npos);
    auto second = roundtrip("second");
    ASSERT_TRUE(second);
    EXPECT_EQ(*second, "second");
    EXPECT_EQ(run.stop(SIGTERM), 0) << run.log();
}

TEST_F(Lifecycle, PinsCarryBtfForBpftool) {
    pptest::Child run(run_argv());
    ASSERT_TRUE(run.wait_for_output("running")) << run.log();
    // Root only: the maps decide what backends believe about their clients.
    struct stat st {};
    ASSERT_EQ(stat(pin_root_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    for (const auto &e : std::filesystem::directory_iterator(pin_root_)) {
        ASSERT_EQ(stat(e.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0600u) << e.path();
    }
    ASSERT_TRUE(roundtrip("one flow"));
    auto dump = pptest::run_process({"bpftool", "map", "dump", "pinned", pin_root_ + "/udp_flows"});
    ASSERT_EQ(dump.exit_code, 0) << dump.err;
    for (const char *field :
         {"client_addr", "client_port", "service_port", "last_seen_ns", "packets"}) {
        EXPECT_NE(dump.out.find(field), std::string::npos) << field << " in\n" << dump.out;
    }
    auto services =
        pptest::run_process({"bpftool", "map", "dump", "pinned", pin_root_ + "/services"});
    EXPECT_NE(services.out.find("\"echo\""), std::string::npos) << services.out;
    auto flows = cli({"flows", "--bpffs", pin_root_});
    EXPECT_NE(flows.out.find("192.0.2.2:41000"), std::string::npos) << flows.out;
    EXPECT_EQ(run.stop(SIGTERM), 0);
}

// `ip netns exec` remounts /sys and hides the host's bpffs: run mounts one at the pin root's
// default place and everything works within that mount namespace.
TEST_F(Lifecycle, WorksUnderIpNetnsExec) {
    std::string script = "set -e; " + pptest::ppinject_binary() + " run --config " + config_ +
                         " 2>/tmp/ppt-lc-run.log & pid=$!; for i in $(seq 100); do grep -q running "
                         "/tmp/ppt-lc-run.log && break; sleep 0.05; done; " +
                         pptest::ppinject_binary() + " status --bpffs " + pin_root_ +
                         "; kill -TERM $pid; wait $pid; cat /tmp/ppt-lc-run.log; rm "
                         "/tmp/ppt-lc-run.log";
    auto r = pptest::run_process({"ip", "netns", "exec", front_->name(), "sh", "-c", script});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("service echo (id 1)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ppinject: detached"), std::string::npos) << r.out;
    EXPECT_EQ(filters(), "");
}

}  // namespace
