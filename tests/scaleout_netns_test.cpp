// Scaling out: several front hosts announce one service address over BGP (BIRD 2), a router
// spreads the flows over them with ECMP, and the backends still see every client's own
// address. README "Scaling out" reports what this test measures.
//
//                        router (BIRD: tools/bgp/router.conf)                backend
//   client               r0 192.0.2.1/24       br0 198.51.100.1/25        br0 198.51.100.129/25
//   c0 192.0.2.2/24 ---     2001:db8:1::1/64       2001:db8:10::1/64         2001:db8:20::1/64
//      2001:db8:1::2/64                          |  |  |                     |  |  |
//                                  front i: u0 198.51.100.(10+i)/25          |  |  |
//                                              2001:db8:10::(10+i)/64        |  |  |
//                                           d0 198.51.100.(140+i)/25 --------+  |  |
//                                              2001:db8:20::(10+i)/64
//
// kFronts front hosts (PPINJECT_SCALEOUT_FRONTS overrides it), each with the service
// addresses 203.0.113.10 and 2001:db8:3::10 on its loopback, ppinject (tc on u0 for UDP,
// relay listeners for TCP), nftables DNAT of the UDP ports to the backend and masquerade on
// d0, BIRD from tools/bgp/front.conf and tools/bgp/ppinject-bgp-health switching the
// announcement with GET /healthz. The router's BIRD merges the fronts' equal routes into
// one multipath route; the kernel hashes each flow onto a front by its ports
// (fib_multipath_hash_policy = 1). The backend is this test process: sockets in the backend
// namespace decode every header, and the peer address (the front's d0 address: masquerade,
// or the relay's own connection) says which front a flow went through.
//
// PPINJECT_BGP_DIR names another directory with router.conf, front.conf and
// ppinject-bgp-health (their @...@ placeholders are listed at the top of each .conf).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "codec/proxy.hpp"
#include "support/http_client.hpp"
#include "support/endpoint.hpp"
#include "support/netns.hpp"
#include "support/privileges.hpp"
#include "support/process.hpp"
#include "support/proxy_check.hpp"
#include "sys/fd.hpp"

namespace {

using pptest::bind_to;

using ppinject::Endpoint;
using ppinject::Fd;
using pptest::Netns;
using Clock = std::chrono::steady_clock;
namespace proxy = ppinject::proxy;

// How many front hosts; the one place that says it (PPINJECT_SCALEOUT_FRONTS overrides).
constexpr int kFronts = 3;
// The addressing of the drawing leaves room for this many.
constexpr int kMaxFronts = 16;
// Flows (UDP) and connections (TCP) opened per header mode and address family.
constexpr int kFlowsPerKind = 16;
// UDP flows per family in the rehash comparison.
constexpr int kRehashFlows = 128;
// The health checker's interval and BGP's hold time (the bound for a front that dies
// without a withdrawal, not used by the checks below).
constexpr const char *kHealthInterval = "0.2";
constexpr int kHoldSeconds = 3;
// A withdrawal or an announcement must reach the router's kernel within this: a check
// interval, a birdc call, one BGP UPDATE and the kernel protocol's sync, with headroom for a
// loaded CI machine.
constexpr auto kRouteBound = std::chrono::seconds(5);
constexpr auto kIoTimeout = std::chrono::seconds(5);

constexpr const char *kService4 = "203.0.113.10", *kService6 = "2001:db8:3::10";
constexpr const char *kBackend4 = "198.51.100.129", *kBackend6 = "2001:db8:20::1";
constexpr const char *kRouter4 = "198.51.100.1", *kRouter6 = "2001:db8:10::1";

// kFronts, or PPINJECT_SCALEOUT_FRONTS when set; 0 when that is not a number in 2..16.
int front_count() {
    const char *env = std::getenv("PPINJECT_SCALEOUT_FRONTS");
    if (!env) {
        return kFronts;
    }
    char *end = nullptr;
    long n = std::strtol(env, &end, 10);
    return *env && !*end && n >= 2 && n <= kMaxFronts ? static_cast<int>(n) : 0;
}

std::string bgp_dir() {
    const char *env = std::getenv("PPINJECT_BGP_DIR");
    return env ? env : std::string(PPINJECT_SOURCE_DIR) + "/tools/bgp";
}

// Front i's addresses towards the router (u0) and towards the backend (d0). The IPv6 host
// part is the decimal number written as hex digits, as in the drawing.
std::string front_up4(int i) {
    return "198.51.100." + std::to_string(10 + i);
}
std::string front_up6(int i) {
    return "2001:db8:10::" + std::to_string(10 + i);
}
std::string front_down4(int i) {
    return "198.51.100." + std::to_string(140 + i);
}
std::string front_down6(int i) {
    return "2001:db8:20::" + std::to_string(10 + i);
}

Endpoint ep(const std::string &addr, std::uint16_t port) {
    return Endpoint{*ppinject::IpAddress::parse(addr), port};
}

// `text` with every @NAME@ replaced by vars[NAME]; a placeholder without a value throws.
std::string fill(std::string text, const std::map<std::string, std::string> &vars) {
    for (const auto &[name, value] : vars) {
        std::string key = "@" + name + "@";
        for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
            text.replace(at, key.size(), value);
            at += value.size();
        }
    }
    std::smatch left;
    if (std::regex_search(text, left, std::regex("@[A-Z0-9_]+@"))) {
        throw std::runtime_error("no value for placeholder " + left.str());
    }
    return text;
}

std::string read_text(const std::string &path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

Endpoint sock_name(int fd, bool peer) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (peer) {
        getpeername(fd, reinterpret_cast<sockaddr *>(&ss), &len);
    } else {
        getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len);
    }
    return Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&ss)).value_or(Endpoint{});
}

void set_timeouts(int fd) {
    timeval tv{static_cast<time_t>(kIoTimeout.count()), 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// The UDP services and where their datagrams go: v2 "first", v2 "every", SPP.
enum UdpMode { kFirst, kEvery, kSpp, kUdpModes };
constexpr const char *kUdpModeName[kUdpModes] = {"first", "every", "spp"};
constexpr std::uint16_t kUdpPort[kUdpModes] = {5000, 5001, 5002};
// The TCP relay services: v1 to the backend's IPv4 address, v2 to its IPv6 address.
enum TcpMode { kV1, kV2, kTcpModes };
constexpr const char *kTcpModeName[kTcpModes] = {"v1", "v2"};
constexpr std::uint16_t kTcpPort[kTcpModes] = {7001, 7002};
constexpr std::uint16_t kTcpBackendPort[kTcpModes] = {9001, 9002};

struct UdpFlow {
    Fd sock;
    Endpoint client;
    UdpMode mode;
    bool v4;
    int front = -1;               // where its last datagram went
    std::set<int> remembered_by;  // fronts whose flow table has it (for "first")
    Endpoint service() const { return ep(v4 ? kService4 : kService6, kUdpPort[mode]); }
};

struct TcpConn {
    Fd client, backend;
    Endpoint local;
    TcpMode mode;
    bool v4;
    int front = -1;
};

// What became of an open relay connection after a change, seen from the client.
struct Fate {
    bool kept = false;   // a write still reached the same backend socket
    std::string before;  // before writing: "open", "fin" or "rst"
    std::string after;   // after writing, when not kept: "rst", "fin" or "silent"
};

struct Front {
    std::unique_ptr<Netns> ns;
    std::string pin_root, config, bird_conf, bird_ctl;
    std::unique_ptr<pptest::Child> ppinject, bird, checker;
};

class Scaleout : public ::testing::Test {
  protected:
    void SetUp() override {
        PP_REQUIRE_ROOT();
        if (exit_code_of({"bird", "--version"}) != 0 || exit_code_of({"curl", "--version"})) {
            FAIL() << "bird (Debian bird2) and curl are needed: tools/install-deps.sh";
        }
        // Every flow's socket lives in this process.
        rlimit rl{8192, 8192};
        setrlimit(RLIMIT_NOFILE, &rl);
        n_ = front_count();
        ASSERT_NE(n_, 0) << "PPINJECT_SCALEOUT_FRONTS must be a number from 2 to " << kMaxFronts;
        build_topology();
    }

    void TearDown() override {
        // Checkers first (they withdraw through BIRD), then BIRD, then the daemons.
        for (auto &f : fronts_) {
            if (f.checker) {
                f.checker->stop(SIGTERM, std::chrono::seconds(3));
            }
        }
        if (router_bird_) {
            router_bird_->stop(SIGTERM, std::chrono::seconds(3));
        }
        for (auto &f : fronts_) {
            if (f.bird) {
                f.bird->stop(SIGTERM, std::chrono::seconds(3));
            }
            if (f.ppinject) {
                f.ppinject->stop(SIGTERM);
            }
            if (f.ns) {
                pptest::run_process(
                    f.ns->command({pptest::ppinject_binary(), "detach", "--bpffs", f.pin_root}));
            }
            std::error_code ec;
            std::filesystem::remove_all(f.pin_root, ec);
        }
        udp_.clear();
        tcp_.clear();
        for (auto &s : udp_backend_) {
            s.reset();
        }
        for (auto &s : tcp_backend_) {
            s.reset();
        }
        fronts_.clear();
        router_bird_.reset();
        client_.reset();
        router_.reset();
        backend_.reset();
        std::error_code ec;
        for (const auto &entry : std::filesystem::directory_iterator("/tmp", ec)) {
            if (entry.path().string().rfind(tmp_, 0) == 0) {
                std::filesystem::remove(entry.path(), ec);
            }
        }
    }

    static int exit_code_of(const std::vector<std::string> &argv) {
        return pptest::run_process(argv).exit_code;
    }

    void build_topology() {
        client_ = std::make_unique<Netns>("so-client");
        router_ = std::make_unique<Netns>("so-router");
        backend_ = std::make_unique<Netns>("so-backend");
        pptest::veth(*client_, "c0", {"192.0.2.2/24", "2001:db8:1::2/64"}, *router_, "r0",
                     {"192.0.2.1/24", "2001:db8:1::1/64"});
        client_->exec(
            "ip route add default via 192.0.2.1 && ip -6 route add default via 2001:db8:1::1");
        router_->exec(
            "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
            "net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 && "
            "ip link add br0 type bridge && ip link set br0 up && "
            "ip addr add 198.51.100.1/25 dev br0 && ip addr add 2001:db8:10::1/64 dev br0 nodad");
        backend_->exec(
            "ip link add br0 type bridge && ip link set br0 up && "
            "ip addr add 198.51.100.129/25 dev br0 && "
            "ip addr add 2001:db8:20::1/64 dev br0 nodad");
        for (int m = 0; m < kUdpModes; m++) {
            for (bool v4 : {true, false}) {
                Fd s = backend_->socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM);
                bind_to(s.get(), ep(v4 ? kBackend4 : kBackend6, kUdpPort[m]));
                udp_backend_[m * 2 + (v4 ? 0 : 1)] = std::move(s);
            }
        }
        for (int m = 0; m < kTcpModes; m++) {
            bool v4 = m == kV1;
            Fd s = backend_->socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM);
            bind_to(s.get(), ep(v4 ? kBackend4 : kBackend6, kTcpBackendPort[m]));
            ASSERT_EQ(listen(s.get(), 1024), 0) << std::strerror(errno);
            tcp_backend_[m] = std::move(s);
        }
        fronts_.resize(static_cast<size_t>(n_));
        for (int i = 0; i < n_; i++) {
            Front &f = fronts_[static_cast<size_t>(i)];
            f.ns = std::make_unique<Netns>("so-front" + std::to_string(i));
            std::string rif = "rf" + std::to_string(i), bif = "bf" + std::to_string(i);
            pptest::veth(*f.ns, "u0", {front_up4(i) + "/25", front_up6(i) + "/64"}, *router_, rif,
                         {});
            router_->exec("ip link set " + rif + " master br0");
            pptest::veth(*f.ns, "d0", {front_down4(i) + "/25", front_down6(i) + "/64"}, *backend_,
                         bif, {});
            backend_->exec("ip link set " + bif + " master br0");
            f.ns->exec(std::string("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
                                   " && ip addr add ") +
                       kService4 + "/32 dev lo && ip addr add " + kService6 +
                       "/128 dev lo && ip route add default via " + kRouter4 +
                       " && ip -6 route add default via " + kRouter6);
            f.ns->exec(
                "nft -f - <<EOF\n"
                "table inet ppt {\n"
                "  chain pre { type nat hook prerouting priority dstnat;\n"
                "    iifname \"u0\" ip daddr " +
                std::string(kService4) + " udp dport 5000-5002 dnat ip to " + kBackend4 +
                "\n"
                "    iifname \"u0\" ip6 daddr " +
                kService6 + " udp dport 5000-5002 dnat ip6 to " + kBackend6 +
                "\n"
                "  }\n"
                "  chain post { type nat hook postrouting priority srcnat; oifname \"d0\" "
                "masquerade; }\n"
                "}\n"
                "EOF");
            f.pin_root = "/sys/fs/bpf/ppt" + std::to_string(getpid()) + "-so" + std::to_string(i);
            f.config = tmp_ + "front" + std::to_string(i) + ".toml";
            write_ppinject_config(f);
            start_ppinject(i);
        }
    }

    void write_ppinject_config(const Front &f) {
        std::ofstream out(f.config);
        // A flow table entry outlives the whole test: what a front remembers is decided by
        // where the flow went, not by the clock.
        out << "[global]\nbpffs = \"" << f.pin_root
            << "\"\nudp_flow_timeout = \"120s\"\nmetrics = \"127.0.0.1:9477\"\n";
        const char *udp_extra[kUdpModes] = {
            "header = \"v2\"\n", "header = \"v2\"\nudp_header = \"every\"\n", "header = \"spp\"\n"};
        for (int m = 0; m < kUdpModes; m++) {
            out << "\n[[service]]\nname = \"" << kUdpModeName[m]
                << "\"\nprotocol = \"udp\"\nlisten = [\"" << kService4 << ":" << kUdpPort[m]
                << "\", \"[" << kService6 << "]:" << kUdpPort[m] << "\"]\ninterfaces = [\"u0\"]\n"
                << udp_extra[m];
        }
        for (int m = 0; m < kTcpModes; m++) {
            Endpoint backend = ep(m == kV1 ? kBackend4 : kBackend6, kTcpBackendPort[m]);
            out << "\n[[service]]\nname = \"relay-" << kTcpModeName[m]
                << "\"\nprotocol = \"tcp\"\nlisten = [\"" << kService4 << ":" << kTcpPort[m]
                << "\", \"[" << kService6 << "]:" << kTcpPort[m] << "\"]\nbackends = [\""
                << backend.to_string() << "\"]\nheader = \"" << kTcpModeName[m] << "\"\n";
        }
    }

    void start_ppinject(int i) {
        Front &f = fronts_[static_cast<size_t>(i)];
        f.ppinject = pptest::start_ppinject_run(*f.ns, f.config);
    }

    // BIRD on the router and on every front from the committed templates, and the health
    // checker beside each front's BIRD.
    void start_bgp() {
        std::string dir = bgp_dir();
        std::map<std::string, std::string> vars = {
            {"ROUTER_ID", kRouter4},
            {"ROUTER_AS", "65000"},
            {"FRONT_AS", "65001"},
            {"FRONTS4", "198.51.100.0/25"},
            {"FRONTS6", "2001:db8:10::/64"},
            {"SERVICES4", std::string(kService4) + "/32"},
            {"SERVICES6", std::string(kService6) + "/128"},
            {"HOLD", std::to_string(kHoldSeconds)},
            {"ROUTER4", kRouter4},
            {"ROUTER6", kRouter6},
            {"SERVICE4", kService4},
            {"SERVICE6", kService6},
        };
        std::string router_conf = tmp_ + "router.conf";
        std::ofstream(router_conf) << fill(read_text(dir + "/router.conf"), vars);
        router_bird_ = std::make_unique<pptest::Child>(
            router_->command({"bird", "-f", "-c", router_conf, "-s", tmp_ + "router.ctl"}));
        std::string front_tmpl = read_text(dir + "/front.conf");
        for (int i = 0; i < n_; i++) {
            Front &f = fronts_[static_cast<size_t>(i)];
            auto mine = vars;
            mine["FRONT_ID"] = front_up4(i);
            mine["FRONT4"] = front_up4(i);
            mine["FRONT6"] = front_up6(i);
            f.bird_conf = tmp_ + "front" + std::to_string(i) + ".conf";
            f.bird_ctl = tmp_ + "front" + std::to_string(i) + ".ctl";
            std::ofstream(f.bird_conf) << fill(front_tmpl, mine);
            f.bird = std::make_unique<pptest::Child>(
                f.ns->command({"bird", "-f", "-c", f.bird_conf, "-s", f.bird_ctl}));
        }
        for (int i = 0; i < n_; i++) {
            Front &f = fronts_[static_cast<size_t>(i)];
            // Rise 1: a restarted front is announced at its first healthy answer.
            f.checker = std::make_unique<pptest::Child>(f.ns->command(
                {dir + "/ppinject-bgp-health", "--interval", kHealthInterval, "--timeout", "0.5",
                 "--rise", "1", "--fall", "1", "--socket", f.bird_ctl, "service4", "service6"}));
        }
    }

    // The gateways of the router's route to the service address of one family.
    std::set<std::string> nexthops(bool v4) {
        std::string out = router_->exec(std::string("ip ") + (v4 ? "-4" : "-6") + " route show " +
                                        (v4 ? kService4 : kService6));
        std::set<std::string> via;
        std::istringstream words(out);
        for (std::string w, prev; words >> w; prev = w) {
            if (prev == "via") {
                via.insert(w);
            }
        }
        return via;
    }

    std::set<std::string> all_gateways(bool v4, int except = -1) {
        std::set<std::string> s;
        for (int i = 0; i < n_; i++) {
            if (i != except) {
                s.insert(v4 ? front_up4(i) : front_up6(i));
            }
        }
        return s;
    }

    // Waits until both families' routes go through every front but `except`; returns how
    // long that took, or nullopt (a test failure with the BIRD state) after `bound`.
    std::optional<std::chrono::milliseconds> wait_routes(int except,
                                                         std::chrono::milliseconds bound) {
        auto start = Clock::now();
        while (Clock::now() - start < bound) {
            if (nexthops(true) == all_gateways(true, except) &&
                nexthops(false) == all_gateways(false, except)) {
                return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ADD_FAILURE() << "routes did not converge (all fronts but " << except << ") within "
                      << bound.count() << " ms:\n"
                      << router_->exec("ip route; ip -6 route") << diagnostics();
        return std::nullopt;
    }

    std::string diagnostics() {
        std::string d;
        if (router_bird_) {
            d += "router bird:\n" + router_bird_->log();
        }
        for (auto &f : fronts_) {
            d += f.ns->name() + " checker:\n" + (f.checker ? f.checker->log() : "") + "\nbird:\n" +
                 (f.bird ? f.bird->log() : "") + "\n";
        }
        return d;
    }

    // The front whose d0 address `peer` is, or -1.
    int front_of(const Endpoint &peer) const {
        std::string a = peer.addr.to_string();
        for (int i = 0; i < n_; i++) {
            if (a == front_down4(i) ||
                a == ppinject::IpAddress::parse(front_down6(i))->to_string()) {
                return i;
            }
        }
        return -1;
    }

    // `per_kind` new flows (client sockets on ports of their own) per family for each of
    // `modes`.
    std::vector<UdpFlow> open_udp_flows(const std::vector<UdpMode> &modes, int per_kind) {
        std::vector<UdpFlow> out;
        for (UdpMode m : modes) {
            for (bool v4 : {true, false}) {
                for (int k = 0; k < per_kind; k++) {
                    UdpFlow f;
                    f.sock = client_->socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM);
                    bind_to(f.sock.get(), ep(v4 ? "192.0.2.2" : "2001:db8:1::2", 0));
                    f.client = sock_name(f.sock.get(), false);
                    f.mode = m;
                    f.v4 = v4;
                    out.push_back(std::move(f));
                }
            }
        }
        return out;
    }

    // One datagram on every flow of `flows`, collected at the backend. Checks each header
    // against the flow's client and service: `every` and SPP always carry one, `first`
    // exactly when the front it reached does not remember the flow. Updates each flow's
    // front; returns how many flows changed front.
    int udp_round(std::vector<UdpFlow> &flows, int round) {
        for (size_t k = 0; k < flows.size(); k++) {
            std::string payload = "flow " + std::to_string(k) + " round " + std::to_string(round);
            sockaddr_storage ss{};
            socklen_t len = flows[k].service().to_sockaddr(ss);
            EXPECT_EQ(sendto(flows[k].sock.get(), payload.data(), payload.size(), 0,
                             reinterpret_cast<sockaddr *>(&ss), len),
                      static_cast<ssize_t>(payload.size()))
                << std::strerror(errno);
        }
        std::vector<bool> got(flows.size(), false);
        size_t left = flows.size();
        int moved = 0;
        auto deadline = Clock::now() + kIoTimeout;
        while (left > 0 && Clock::now() < deadline) {
            std::array<pollfd, kUdpModes * 2> p{};
            for (size_t s = 0; s < p.size(); s++) {
                p[s] = {udp_backend_[s].get(), POLLIN, 0};
            }
            if (poll(p.data(), p.size(), 100) <= 0) {
                continue;
            }
            for (size_t s = 0; s < p.size(); s++) {
                char buf[2048];
                sockaddr_storage from{};
                socklen_t flen = sizeof from;
                ssize_t n;
                while ((n = recvfrom(p[s].fd, buf, sizeof buf, MSG_DONTWAIT,
                                     reinterpret_cast<sockaddr *>(&from), &flen)) > 0) {
                    std::string dgram(buf, static_cast<size_t>(n));
                    int front =
                        front_of(*Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&from)));
                    flen = sizeof from;
                    auto mode = static_cast<UdpMode>(s / 2);
                    size_t at = dgram.find("flow ");
                    if (at == std::string::npos) {
                        ADD_FAILURE() << "a datagram without payload at " << kUdpModeName[mode];
                        continue;
                    }
                    std::string payload = dgram.substr(at);
                    size_t k = std::stoul(payload.substr(5));
                    if (k >= flows.size() || got[k] ||
                        payload !=
                            "flow " + std::to_string(k) + " round " + std::to_string(round)) {
                        ADD_FAILURE() << "unexpected datagram " << payload;
                        continue;
                    }
                    UdpFlow &f = flows[k];
                    SCOPED_TRACE(std::string(kUdpModeName[f.mode]) + " flow " + std::to_string(k) +
                                 " from " + f.client.to_string() + " at front " +
                                 std::to_string(front));
                    EXPECT_EQ(f.mode, mode);
                    EXPECT_GE(front, 0) << "from an unknown address";
                    bool expect_header = f.mode != kFirst || !f.remembered_by.count(front);
                    if (!expect_header) {
                        EXPECT_EQ(dgram, payload) << "a header on a flow the front remembers";
                    } else if (f.mode == kSpp) {
                        pptest::expect_spp_dgram(dgram, f.client, f.service(), payload);
                    } else {
                        pptest::expect_v2_dgram(dgram, f.client, f.service(), payload);
                    }
                    if (f.front != -1 && f.front != front) {
                        moved++;
                        if (f.mode == kFirst) {
                            first_moved_with_header_ += dgram != payload;
                            first_moved_++;
                        }
                    }
                    f.front = front;
                    f.remembered_by.insert(front);
                    got[k] = true;
                    left--;
                }
            }
        }
        EXPECT_EQ(left, 0u) << "datagrams lost in round " << round;
        return moved;
    }

    TcpConn open_tcp(TcpMode mode, bool v4, int id) {
        TcpConn c;
        c.mode = mode;
        c.v4 = v4;
        Endpoint to = ep(v4 ? kService4 : kService6, kTcpPort[mode]);
        c.client = client_->socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM);
        set_timeouts(c.client.get());
        sockaddr_storage ss{};
        socklen_t len = to.to_sockaddr(ss);
        if (connect(c.client.get(), reinterpret_cast<sockaddr *>(&ss), len) != 0) {
            ADD_FAILURE() << "connect " << to.to_string() << ": " << std::strerror(errno);
            return c;
        }
        c.local = sock_name(c.client.get(), false);
        std::string hello = "conn " + std::to_string(id) + "\n";
        EXPECT_EQ(send(c.client.get(), hello.data(), hello.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(hello.size()));
        pollfd p{tcp_backend_[mode].get(), POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(kIoTimeout.count() * 1000)) != 1) {
            ADD_FAILURE() << "no connection reached the backend for " << to.to_string();
            return c;
        }
        c.backend.reset(accept4(tcp_backend_[mode].get(), nullptr, nullptr, SOCK_CLOEXEC));
        set_timeouts(c.backend.get());
        c.front = front_of(sock_name(c.backend.get(), true));
        SCOPED_TRACE(std::string(kTcpModeName[mode]) + " " + c.local.to_string() + " at front " +
                     std::to_string(c.front));
        EXPECT_GE(c.front, 0);
        pptest::Decoded h = pptest::read_proxy_header(c.backend.get());
        if (mode == kV1) {
            EXPECT_EQ(h.kind, proxy::Kind::v1);
            EXPECT_EQ(h.v1.source, c.local);
            EXPECT_EQ(h.v1.destination, to);
        } else {
            EXPECT_EQ(h.kind, proxy::Kind::v2);
            EXPECT_EQ(h.v2.command, proxy::Command::proxy);
            EXPECT_EQ(h.v2.source, c.local);
            EXPECT_EQ(h.v2.destination, to);
        }
        std::string got(hello.size(), '\0');
        EXPECT_EQ(recv(c.backend.get(), got.data(), got.size(), MSG_WAITALL),
                  static_cast<ssize_t>(got.size()));
        EXPECT_EQ(got, hello);
        return c;
    }

    // kFlowsPerKind new connections per TCP mode and family; returns the fronts they used.
    std::vector<TcpConn> open_tcp_batch(int first_id) {
        std::vector<TcpConn> out;
        for (int m = 0; m < kTcpModes; m++) {
            for (bool v4 : {true, false}) {
                for (int k = 0; k < kFlowsPerKind; k++) {
                    out.push_back(open_tcp(static_cast<TcpMode>(m), v4, first_id++));
                }
            }
        }
        return out;
    }

    // "open", "fin" or "rst": what a non-blocking read on `fd` says now.
    static std::string read_state(int fd) {
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
        if (n == 0) {
            return "fin";
        }
        if (n < 0) {
            return errno == EAGAIN ? "open" : errno == ECONNRESET ? "rst" : "error";
        }
        return "data";
    }

    // Writes on the client side of every connection at once and says for each whether the
    // bytes still reach its backend socket, waiting at most 2 s for all answers.
    std::vector<Fate> probe(std::vector<TcpConn> &conns) {
        std::vector<Fate> fates(conns.size());
        const char msg[] = "more\n";
        for (size_t k = 0; k < conns.size(); k++) {
            fates[k].before = read_state(conns[k].client.get());
            send(conns[k].client.get(), msg, sizeof msg - 1, MSG_NOSIGNAL);
        }
        std::vector<bool> done(conns.size(), false);
        size_t left = conns.size();
        for (auto deadline = Clock::now() + std::chrono::seconds(2);
             left > 0 && Clock::now() < deadline;) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            for (size_t k = 0; k < conns.size(); k++) {
                if (done[k]) {
                    continue;
                }
                char buf[sizeof msg];
                ssize_t n = recv(conns[k].backend.get(), buf, sizeof msg - 1, MSG_DONTWAIT);
                std::string now = read_state(conns[k].client.get());
                // After a FIN, a reset shows only as the socket's error (EPIPE in CLOSE_WAIT).
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(conns[k].client.get(), SOL_SOCKET, SO_ERROR, &err, &len);
                if (n == sizeof msg - 1 && std::memcmp(buf, msg, sizeof msg - 1) == 0) {
                    fates[k].kept = true;
                } else if (now == "rst" || err == ECONNRESET || err == EPIPE) {
                    fates[k].after = "rst";
                } else {
                    fates[k].after = now == "fin" ? "fin" : "silent";
                    continue;  // until the deadline: a reset may still come
                }
                done[k] = true;
                left--;
            }
        }
        return fates;
    }

    // Probes every connection in `conns`, drops those that broke, and says in a line what
    // happened, per "victim's" and "others'". Checks the victim keeps none.
    std::string probe_all(std::vector<TcpConn> &conns, int victim) {
        std::map<std::string, int> victims, others;
        std::vector<TcpConn> alive;
        std::vector<Fate> fates = probe(conns);
        for (size_t k = 0; k < conns.size(); k++) {
            TcpConn &c = conns[k];
            const Fate &f = fates[k];
            std::string what = f.kept ? "kept" : "before=" + f.before + " after=" + f.after;
            (c.front == victim ? victims : others)[what]++;
            if (c.front == victim) {
                EXPECT_FALSE(f.kept) << "a connection of the stopped front still works";
            }
            if (f.kept) {
                alive.push_back(std::move(c));
            }
        }
        conns = std::move(alive);
        auto line = [](const std::map<std::string, int> &m) {
            std::string s;
            for (const auto &[k, v] : m) {
                s += (s.empty() ? "" : ", ") + std::to_string(v) + " " + k;
            }
            return s.empty() ? std::string("none") : s;
        };
        return "stopped front's: " + line(victims) + "; others': " + line(others);
    }

    // How many BPF filters front i has on u0, ingress and egress: a restart must not add any.
    std::string filters(int i) {
        const Netns &ns = *fronts_[static_cast<size_t>(i)].ns;
        return ns.exec(
            "echo ingress $(tc filter show dev u0 ingress | grep -c \" bpf \") "
            "egress $(tc filter show dev u0 egress | grep -c \" bpf \")");
    }

    int services_in_status(int i) {
        const Front &f = fronts_[static_cast<size_t>(i)];
        auto r = pptest::run_process(
            f.ns->command({pptest::ppinject_binary(), "status", "--bpffs", f.pin_root}));
        int n = 0;
        for (const char *name : {"first", "every", "spp", "relay-v1", "relay-v2"}) {
            n += r.out.find(std::string(name)) != std::string::npos;
        }
        return n;
    }

    int n_ = kFronts;
    // The prefix of this test's files in /tmp. Files, not a directory: what a killed test
    // leaves is removed by the next one (pptest::remove_leftovers_of_killed_tests). Set
    // before SetUp can fail, so TearDown's sweep never runs with an empty prefix (which
    // every file in /tmp matches).
    const std::string tmp_ = "/tmp/ppt" + std::to_string(getpid()) + "-so-";
    std::unique_ptr<Netns> client_, router_, backend_;
    std::vector<Front> fronts_;
    std::unique_ptr<pptest::Child> router_bird_;
    std::array<Fd, kUdpModes * 2> udp_backend_;  // [mode * 2 + (v4 ? 0 : 1)]
    std::array<Fd, kTcpModes> tcp_backend_;
    std::vector<UdpFlow> udp_;
    std::vector<TcpConn> tcp_;
    int first_moved_ = 0, first_moved_with_header_ = 0;
};

// Per family, how many flows went to each front.
std::string spread(const std::vector<UdpFlow> &flows, const std::vector<TcpConn> &conns, int n,
                   bool v4) {
    std::vector<int> count(static_cast<size_t>(n), 0);
    for (const auto &f : flows) {
        if (f.v4 == v4 && f.front >= 0) {
            count[static_cast<size_t>(f.front)]++;
        }
    }
    for (const auto &c : conns) {
        if (c.v4 == v4 && c.front >= 0) {
            count[static_cast<size_t>(c.front)]++;
        }
    }
    std::string s;
    for (int c : count) {
        s += (s.empty() ? "" : "/") + std::to_string(c);
    }
    return s;
}

TEST_F(Scaleout, BgpEcmpSpreadsWithdrawsUnhealthyFrontsAndTakesThemBack) {
    ASSERT_NO_FATAL_FAILURE(start_bgp());
    auto up = wait_routes(-1, std::chrono::seconds(20));
    ASSERT_TRUE(up);
    std::cout << "[ scaleout ] " << n_ << " fronts announced after " << up->count() << " ms\n";

    udp_ = open_udp_flows({kFirst, kEvery, kSpp}, kFlowsPerKind);
    udp_round(udp_, 0);  // every flow's first datagram: a header everywhere
    EXPECT_EQ(udp_round(udp_, 1), 0) << "flows stay on their front while nothing changes";
    tcp_ = open_tcp_batch(0);
    ASSERT_FALSE(HasFailure());
    for (bool v4 : {true, false}) {
        std::string s = spread(udp_, tcp_, n_, v4);
        std::cout << "[ scaleout ] IPv" << (v4 ? 4 : 6) << " flows per front: " << s << "\n";
        EXPECT_EQ(s.find("/0"), std::string::npos) << "a front got no flow: " << s;
        EXPECT_NE(s.rfind("0/", 0), 0u) << "a front got no flow: " << s;
    }
    std::string baseline_filters = filters(0);

    // Front 0 stopped cleanly (SIGTERM: it detaches and removes its pins); the last front
    // killed (SIGKILL: its UDP data path and pinned flow table stay); front 1 still running
    // but unhealthy (its tc filters deleted under it: /healthz says 503 and why).
    enum class How { sigterm, sigkill, unhealthy };
    int round = 2, next_id = 1000;
    for (How how : {How::sigterm, How::sigkill, How::unhealthy}) {
        int victim = how == How::sigterm ? 0 : how == How::sigkill ? n_ - 1 : 1;
        Front &v = fronts_[static_cast<size_t>(victim)];
        const char *name = how == How::sigterm   ? "SIGTERM"
                           : how == How::sigkill ? "SIGKILL"
                                                 : "503";
        SCOPED_TRACE(std::string(name) + " front " + std::to_string(victim));
        if (how == How::unhealthy) {
            v.ns->exec("tc qdisc del dev u0 clsact");
            pptest::HttpResponse r;
            v.ns->run_inside([&] {
                r = pptest::roundtrip(*Endpoint::parse("127.0.0.1:9477"), pptest::get("/healthz"));
            });
            EXPECT_EQ(r.status, 503) << r.body;
            EXPECT_NE(r.body.find("tc ingress on u0 is not attached"), std::string::npos) << r.body;
        } else {
            int sig = how == How::sigterm ? SIGTERM : SIGKILL;
            EXPECT_EQ(v.ppinject->stop(sig), how == How::sigterm ? 0 : 128 + SIGKILL)
                << v.ppinject->log();
        }
        auto check = pptest::run_process(
            v.ns->command({pptest::ppinject_binary(), "status", "--check", "--bpffs", v.pin_root}));
        EXPECT_EQ(check.exit_code, 1) << check.out;
        auto down = wait_routes(victim, kRouteBound);
        ASSERT_TRUE(down);
        std::cout << "[ scaleout ] " << name << ": front " << victim << " withdrawn after "
                  << down->count() << " ms (status --check: "
                  << check.out.substr(0, std::min<size_t>(check.out.find('('), 60)) << ")\n";

        std::vector<int> before;
        for (const auto &f : udp_) {
            before.push_back(f.front);
        }
        first_moved_ = first_moved_with_header_ = 0;
        int moved = udp_round(udp_, round++);
        int of_victim = 0;
        for (size_t k = 0; k < udp_.size(); k++) {
            EXPECT_NE(udp_[k].front, victim);
            of_victim += before[k] == victim;
        }
        std::cout << "[ scaleout ]   UDP: " << moved << " of " << udp_.size()
                  << " flows changed front (" << of_victim << " from the withdrawn one, "
                  << moved - of_victim << " between the others); moved `first` flows with a "
                  << "new header at the new front: " << first_moved_with_header_ << " of "
                  << first_moved_ << "\n";
        std::cout << "[ scaleout ]   TCP relay connections: " << probe_all(tcp_, victim) << "\n";
        auto during = open_tcp_batch(next_id);
        next_id += static_cast<int>(during.size());
        for (const auto &c : during) {
            EXPECT_NE(c.front, victim) << "a new connection went to the withdrawn front";
        }
        for (auto &c : during) {
            tcp_.push_back(std::move(c));
        }

        // Back: a clean stop takes the flow table with it; a killed run's is adopted.
        if (how == How::unhealthy) {
            EXPECT_EQ(v.ppinject->stop(SIGTERM), 0) << v.ppinject->log();
        }
        if (how != How::sigkill) {
            for (auto &f : udp_) {
                f.remembered_by.erase(victim);
            }
        }
        start_ppinject(victim);
        auto back = wait_routes(-1, kRouteBound);
        ASSERT_TRUE(back);
        EXPECT_EQ(filters(victim), baseline_filters) << "attached twice?";
        EXPECT_EQ(services_in_status(victim), 5);
        first_moved_ = first_moved_with_header_ = 0;
        moved = udp_round(udp_, round++);
        std::cout << "[ scaleout ]   back after " << back->count() << " ms: " << moved
                  << " UDP flows changed front; moved first flows with a header: "
                  << first_moved_with_header_ << " of " << first_moved_ << "\n";
        std::cout << "[ scaleout ]   TCP relay connections after the return: "
                  << probe_all(tcp_, -1) << "\n";
        auto after = open_tcp_batch(next_id);
        next_id += static_cast<int>(after.size());
        for (auto &c : after) {
            tcp_.push_back(std::move(c));
        }
    }
}

// The same fronts behind static next hops on the router, no BIRD: one front goes away
// (its next hop is deleted, as a withdrawal does) under a plain hash-threshold group and
// under a resilient group. Resilient moves exactly the gone front's flows; plain ECMP
// re-cuts the hash space and usually moves flows of fronts that are still there (how many
// depends on the hash seed, so it is reported, not asserted).
TEST_F(Scaleout, ResilientNexthopsMoveOnlyTheGoneFrontsFlows) {
    // iproute2 and the kernel must both know resilient groups (Linux 5.13).
    auto probe = pptest::run_process(
        {"/bin/sh", "-c",
         router_->prefix() + "ip nexthop add id 9990 via " + front_up4(0) + " dev br0 && " +
             router_->prefix() + "ip nexthop add id 9991 group 9990 type resilient buckets 8"});
    router_->exec("ip nexthop flush >/dev/null");
    if (probe.exit_code != 0) {
        PP_SKIP_MISSING_KERNEL_FEATURE("resilient nexthop groups (Linux 5.13): " + probe.err);
    }
    // Any member would do: a hash-threshold group re-cuts the hash space into equal parts
    // whichever goes, so every boundary moves.
    const int victim = 0;
    for (const char *type : {"plain", "resilient"}) {
        SCOPED_TRACE(type);
        std::string group_type =
            std::string(type) == "resilient" ? " type resilient buckets 64 idle_timer 120" : "";
        std::string v4_members, v6_members;
        for (int i = 0; i < n_; i++) {
            router_->exec("ip nexthop add id " + std::to_string(1 + i) + " via " + front_up4(i) +
                          " dev br0 && ip nexthop add id " + std::to_string(101 + i) + " via " +
                          front_up6(i) + " dev br0");
            v4_members += (i ? "/" : "") + std::to_string(1 + i);
            v6_members += (i ? "/" : "") + std::to_string(101 + i);
        }
        router_->exec("ip nexthop add id 1000 group " + v4_members + group_type +
                      " && ip nexthop add id 1001 group " + v6_members + group_type +
                      " && ip route replace " + kService4 +
                      "/32 nhid 1000 && ip -6 route replace " + kService6 + "/128 nhid 1001");
        std::vector<UdpFlow> flows = open_udp_flows({kEvery}, kRehashFlows);
        udp_round(flows, 0);
        std::vector<int> before;
        for (const auto &f : flows) {
            before.push_back(f.front);
        }
        EXPECT_EQ(spread(flows, {}, n_, true).find("/0"), std::string::npos);

        router_->exec("ip nexthop del id " + std::to_string(1 + victim) + " && ip nexthop del id " +
                      std::to_string(101 + victim));
        udp_round(flows, 1);
        int of_victim = 0, victim_moved = 0, others_moved = 0;
        for (size_t k = 0; k < flows.size(); k++) {
            if (before[k] == victim) {
                of_victim++;
                victim_moved += flows[k].front != victim;
            } else {
                others_moved += flows[k].front != before[k];
            }
        }
        EXPECT_EQ(victim_moved, of_victim) << "a flow still reached the removed front";
        if (std::string(type) == "resilient") {
            EXPECT_EQ(others_moved, 0) << "resilient hashing moved flows of a front that stayed";
        }
        std::cout << "[ scaleout ] " << type << " ECMP, front " << victim << " of " << n_
                  << " gone: its " << of_victim << " flows moved; " << others_moved << " of "
                  << flows.size() - static_cast<size_t>(of_victim)
                  << " flows of the other fronts moved too\n";
        router_->exec("ip nexthop flush");
    }
}

}  // namespace
