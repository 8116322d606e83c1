// The CLI as a user runs it: exit codes, one-line errors, --help and check output (decode has
// its own file, cli_decode_test.cpp).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "loader/service_key.hpp"
#include "support/privileges.hpp"
#include "support/process.hpp"
#include "sys/fd.hpp"
#include "sys/kernel.hpp"

namespace {

using ppinject::Fd;
using ppinject::IpAddress;
using ppinject::make_service_key;
using pptest::ppinject_binary;
using pptest::run_process;

pptest::ProcessResult cli(std::vector<std::string> args, const std::string &in = {}) {
    args.insert(args.begin(), ppinject_binary());
    return run_process(args, in);
}

std::string source(const std::string &rel) {
    return std::string(PPINJECT_SOURCE_DIR) + "/" + rel;
}

// Exactly one line on stderr, starting with "FILE:LINE: ".
void expect_one_line_error(const pptest::ProcessResult &r, const std::string &file, unsigned line) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.out, "");
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    EXPECT_EQ(r.err.rfind(file + ":" + std::to_string(line) + ": ", 0), 0u) << r.err;
}

class CliCheck : public ::testing::Test {
  protected:
    void write(const std::string &text) { std::ofstream(path_) << text; }
    void TearDown() override { unlink(path_.c_str()); }
    std::string path_ = "/tmp/ppt-cli-" + std::to_string(getpid()) + ".toml";
};

TEST_F(CliCheck, DesignExampleListsResolvedServices) {
    auto r = cli({"check", "--config", source("tests/configs/design.toml")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    for (const char *want : {
             "service dns (id 1, line 9): udp, header v2 on the first datagram of a flow",
             "0.0.0.0/0 port 53, every IPv4 address",
             "interfaces  eth0",
             "service web (id 2, line 17): tcp, header v2, mode relay, transparent (sk_lookup)",
             "192.0.2.1/32 port 443",
             "backends    198.51.100.10:8443, [2001:db8::10]:8443",
             "timeouts    connect 5s, idle 1h",
             "udp_flow_timeout  30s",
         }) {
        EXPECT_NE(r.out.find(want), std::string::npos) << "missing: " << want << "\n" << r.out;
    }
    // The verdict is the last line.
    EXPECT_EQ(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1), "config OK: 2 services\n");
}

TEST_F(CliCheck, ExampleFilePassesAndListsEveryService) {
    auto r = cli({"check", "--config", source("tools/ppinject.example.toml")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("service dns (id 1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("192.0.2.0/24 ports 27000-27015 (16 keys)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("::/0 port 8443, every IPv6 and IPv4 address"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("config OK: 7 services\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("service edge (id 7, line 146): tcp, header v2, mode inline"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("  interfaces  eth0, tc ingress and egress\n"), std::string::npos)
        << r.out;

    r = cli({"check", "--json", "--config", source("tools/ppinject.example.toml")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["services"].size(), 7u);
    EXPECT_EQ(j["services"][6]["mode"], "inline");
    EXPECT_EQ(j["services"][6]["interfaces"], nlohmann::json::array({"eth0"}));
    EXPECT_EQ(j["services"][4]["mode"], "relay");
    EXPECT_EQ(j["global"]["inline_max_conns"], 65536);
    EXPECT_EQ(j["services"][0]["name"], "dns");
    EXPECT_EQ(j["services"][2]["header"], "spp");
    EXPECT_EQ(j["services"][4]["transparent"], true);
    EXPECT_EQ(j["services"][4]["tlv"]["custom"]["0xE0"], "front-1");
}

TEST_F(CliCheck, BadFixturesAreOneLineWithFileAndLine) {
    struct Case {
        const char *file;
        unsigned line;
        const char *reason;
    };
    for (const auto &c : std::vector<Case>{
             {"tests/configs/bad-typo.toml", 8,
              "unknown key 'udp_heade' in service 'dns' (did you mean 'udp_header'?)"},
             {"tests/configs/bad-overlap.toml", 15,
              "listen \"192.0.2.1:50-60\" of service 'dns-every' overlaps \"192.0.2.1:53\" of "
              "service 'dns' (line 5)"},
             {"tests/configs/bad-syntax.toml", 5, "TOML syntax: "},
             {"tests/configs/bad-combination.toml", 7,
              "PROXY v1 is text for TCP; a UDP service takes \"v2\" or \"spp\""},
         }) {
        std::string path = source(c.file);
        auto r = cli({"check", "--config", path});
        SCOPED_TRACE(c.file);
        expect_one_line_error(r, path, c.line);
        EXPECT_NE(r.err.find(c.reason), std::string::npos) << r.err;
        // --json changes nothing about errors.
        auto rj = cli({"check", "--json", "--config", path});
        EXPECT_EQ(rj.exit_code, 1);
        EXPECT_EQ(rj.err, r.err);
        EXPECT_EQ(rj.out, "");
    }
}

TEST_F(CliCheck, BadFileIsExactlyTheReason) {
    write(
        "[[service]]\nname = \"dns\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1/24:53\"\n"
        "interfaces = [\"eth0\"]\nheader = \"v2\"\n");
    auto r = cli({"check", "--config", path_});
    expect_one_line_error(r, path_, 4);
    EXPECT_EQ(r.err, path_ +
                         ":4: listen \"192.0.2.1/24:53\" of service 'dns': \"192.0.2.1/24\" has "
                         "host bits set past the /24 prefix\n");
}

TEST_F(CliCheck, SyntaxErrorIsOneLine) {
    write("[global]\nudp_max_flows = 1\nudp_max_flows = 2\n");
    auto r = cli({"check", "--config", path_});
    expect_one_line_error(r, path_, 3);
    EXPECT_NE(r.err.find("TOML syntax: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("(line 2: "), std::string::npos) << r.err;
}

TEST_F(CliCheck, EmptyFileHasNoServices) {
    write("");
    auto r = cli({"check", "--config", path_});
    expect_one_line_error(r, path_, 1);
    EXPECT_NE(r.err.find("no [[service]] defined"), std::string::npos) << r.err;
}

TEST_F(CliCheck, UnreadableFiles) {
    auto r = cli({"check", "--config", "/nonexistent/x.toml"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "/nonexistent/x.toml: cannot read: No such file or directory\n");
    EXPECT_EQ(r.out, "");
    r = cli({"check", "--config", "/"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "/: cannot read: Is a directory\n");
}

TEST_F(CliCheck, PinRootCommandsReportABadConfig) {
    // status/flows/detach/reload --config read the pin root from the file: a bad file is the
    // same one-line error, and nothing else is attempted.
    write("[global]\nbpffs = \"relative\"\n");
    for (const char *cmd : {"status", "flows", "conns", "detach", "reload"}) {
        auto r = cli({cmd, "--config", path_});
        SCOPED_TRACE(cmd);
        expect_one_line_error(r, path_, 2);
        EXPECT_NE(r.err.find("'bpffs' in [global] must be an absolute"), std::string::npos)
            << r.err;
    }
}

TEST(Cli, HelpTeachesEachCommand) {
    struct Case {
        std::string cmd;
        std::vector<std::string> mentions;
    };
    for (const auto &c : std::vector<Case>{
             {"run", {"--config", "--verbose", "SIGHUP", "SIGINT", "Example:", "Exit status:"}},
             {"check",
              {"--config", "--json", "FILE:LINE", "config OK", "Example:", "Exit status:"}},
             {"status", {"--bpffs", "--config", "--json", "counters", "Example:", "Exit status:"}},
             {"flows", {"--bpffs", "--config", "--json", "Example:", "Exit status:"}},
             {"conns",
              {"--bpffs", "--config", "--json", "inline", "header-acked", "fin-client",
               "Example:", "Exit status:"}},
             {"detach", {"--bpffs", "--config", "killed", "Example:", "Exit status:"}},
             {"decode", {"--hex", "--json", "stdin", "Example:", "Exit status:"}},
             {"reload", {"--bpffs", "--config", "SIGHUP", "Example:", "Exit status:"}}}) {
        auto r = cli({c.cmd, "--help"});
        SCOPED_TRACE(c.cmd);
        EXPECT_EQ(r.exit_code, 0);
        EXPECT_EQ(r.err, "");
        for (const auto &m : c.mentions) {
            EXPECT_NE(r.out.find(m), std::string::npos) << c.cmd << " --help lacks " << m;
        }
    }
    // The overview names every command.
    auto r = cli({"--help"});
    EXPECT_EQ(r.exit_code, 0);
    for (const char *cmd :
         {"run", "check", "status", "flows", "conns", "detach", "decode", "reload"}) {
        EXPECT_NE(r.out.find(std::string("  ") + cmd + " "), std::string::npos) << cmd;
    }
}

TEST(Cli, Version) {
    auto r = cli({"--version"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.out.rfind("ppinject ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find_first_of("0123456789"), std::string::npos) << r.out;
}

TEST(Cli, UsageErrorsExitTwo) {
    for (const auto &args : std::vector<std::vector<std::string>>{
             {},                                             // no subcommand
             {"frobnicate"},                                 // unknown subcommand
             {"check"},                                      // --config is required
             {"check", "--config"},                          // ... with a value
             {"run"},                                        // same for run
             {"decode", "--hax"},                            // unknown flag
             {"status", "--bpffs", "/a", "--config", "/b"},  // one or the other
             {"check", "--config", "x.toml", "extra"},       // stray argument
         }) {
        auto r = cli(args);
        EXPECT_EQ(r.exit_code, 2) << testing::PrintToString(args) << ": " << r.err;
        EXPECT_FALSE(r.err.empty()) << testing::PrintToString(args);
    }
}

// Without privileges each command names the capabilities it lacks (setpriv drops them all
// with the switch to an unprivileged user).
TEST(Cli, UnprivilegedCommandsNameTheMissingCapabilities) {
    PP_REQUIRE_ROOT();
    std::string example = source("tools/ppinject.example.toml");
    struct Case {
        std::vector<std::string> args;
        std::string err;
    } cases[] = {
        {{"run", "--config", example},
         "ppinject: run needs CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN (run as root): to load BPF "
         "programs, attach them and mount bpffs\n"},
        {{"status"}, "ppinject status: needs CAP_BPF (run as root)\n"},
        {{"flows"}, "ppinject flows: needs CAP_BPF (run as root)\n"},
        {{"conns"}, "ppinject conns: needs CAP_BPF (run as root)\n"},
        {{"detach"}, "ppinject detach: needs CAP_BPF, CAP_NET_ADMIN (run as root)\n"},
    };
    for (const auto &c : cases) {
        std::vector<std::string> argv = {"setpriv", "--reuid=65534", "--regid=65534",
                                         "--clear-groups", ppinject_binary()};
        argv.insert(argv.end(), c.args.begin(), c.args.end());
        auto r = run_process(argv);
        EXPECT_EQ(r.exit_code, 1) << c.args[0];
        EXPECT_EQ(r.err, c.err);
    }
    // check needs nothing.
    auto r = run_process({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          ppinject_binary(), "check", "--config", example});
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(Cli, ReloadWithoutARunSaysWhy) {
    auto r = cli({"reload", "--bpffs", "/sys/fs/bpf/ppt-nothing-here"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "ppinject reload: no 'ppinject run' owns /sys/fs/bpf/ppt-nothing-here\n");
    EXPECT_EQ(r.out, "");
}

TEST(Cli, StatusWithoutStateSaysWhy) {
    auto r = cli({"status", "--bpffs", "/sys/fs/bpf/ppt-nothing-here"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("no ppinject state at /sys/fs/bpf/ppt-nothing-here"), std::string::npos)
        << r.err;
}

// A pin root made by hand: the maps a run pins, of the right layout (no programs), one
// inline service with a connection in inline_conns and a relay service, so that status and
// conns read what the kernel side would leave there.
class CliPinnedTables : public ::testing::Test {
  protected:
    void SetUp() override {
        PP_REQUIRE_ROOT();
        ASSERT_EQ(mkdir(root_.c_str(), 0700), 0) << root_ << ": " << std::strerror(errno);
        made_ = true;
        services_ = pin("services", BPF_MAP_TYPE_LPM_TRIE, sizeof(pp_service_key),
                        sizeof(pp_service), 64, BPF_F_NO_PREALLOC);
        counters_ = pin("counters", BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(std::uint32_t),
                        sizeof(pp_counters), PP_MAX_SERVICES, 0);
        pin("udp_flows", BPF_MAP_TYPE_LRU_HASH, sizeof(pp_flow_key), sizeof(pp_flow), 64, 0);
        pin("attachments", BPF_MAP_TYPE_HASH, sizeof(std::uint32_t), sizeof(pp_attachment), 8, 0);
        add_service(3, "edge", PP_SVC_INLINE, "203.0.113.0", 24, 443);
        add_service(4, "web", 0, "192.0.2.1", 32, 443);
        // Every CPU's slot of service 3 counts 2 headers: status sums them.
        int ncpu = libbpf_num_possible_cpus();
        ASSERT_GT(ncpu, 0);
        std::vector<pp_counters> per_cpu(static_cast<std::size_t>(ncpu));
        for (auto &c : per_cpu) {
            c.inline_headers = 2;
        }
        std::uint32_t id = 3;
        ASSERT_EQ(bpf_map_update_elem(counters_.get(), &id, per_cpu.data(), BPF_ANY), 0)
            << "fill counters: " << std::strerror(errno);
        headers_ = 2u * static_cast<unsigned>(ncpu);
    }
    void TearDown() override {
        if (made_) {
            std::filesystem::remove_all(root_);
        }
    }

    // Creates a map and pins it as <root>/name.
    Fd pin(const char *name, bpf_map_type type, std::uint32_t key, std::uint32_t value,
           std::uint32_t max, std::uint32_t flags) {
        LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
        Fd fd(bpf_map_create(type, name, key, value, max, &opts));
        EXPECT_TRUE(fd) << "create map " << name << ": " << std::strerror(errno);
        std::string path = root_ + "/" + name;
        EXPECT_EQ(bpf_obj_pin(fd.get(), path.c_str()), 0)
            << "pin " << path << ": " << std::strerror(errno);
        return fd;
    }

    void add_service(std::uint32_t id, const char *name, std::uint8_t flags, const char *addr,
                     unsigned prefix, std::uint16_t port) {
        pp_service v{};
        v.id = id;
        v.header = PP_HDR_V2;
        v.flags = flags;
        v.flow_timeout_ns = 600'000'000'000;  // 10m
        std::strncpy(v.name, name, sizeof v.name - 1);
        pp_service_key k = make_service_key(IPPROTO_TCP, *IpAddress::parse(addr), prefix, port);
        ASSERT_EQ(bpf_map_update_elem(services_.get(), &k, &v, BPF_ANY), 0)
            << "fill services: " << std::strerror(errno);
    }

    // The inline connection table with one IPv4 and one IPv6 connection of service 3.
    void pin_conns() {
        Fd conns = pin("inline_conns", BPF_MAP_TYPE_HASH, sizeof(pp_flow_key),
                       sizeof(pp_inline_conn), 128, 0);
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
        std::uint64_t now_ns = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000 +
                               static_cast<std::uint64_t>(now.tv_nsec);
        auto add = [&](const char *client, std::uint16_t cport, const char *dialled,
                       std::uint16_t dport, std::uint8_t state, std::uint8_t backend_state,
                       std::uint64_t age_s) {
            pp_flow_key k{};
            std::memcpy(k.client_addr, IpAddress::parse(client)->mapped().data(), 16);
            std::memcpy(k.service_addr, IpAddress::parse(dialled)->mapped().data(), 16);
            k.client_port = htons(cport);
            k.service_port = htons(dport);
            pp_inline_conn v{};
            v.created_ns = now_ns - age_s * 1'000'000'000;
            v.last_seen_ns = now_ns - 1'000'000'000;
            v.packets_in = 12;
            v.packets_out = 34;
            v.bytes_in = 5678;
            v.bytes_out = 91011;
            v.service_id = 3;
            v.hdr_len = 28;
            v.flags = state;
            v.flags_backend = backend_state;
            ASSERT_EQ(bpf_map_update_elem(conns.get(), &k, &v, BPF_NOEXIST), 0)
                << "fill inline_conns: " << std::strerror(errno);
        };
        // Each program's bits in its own byte: ingress writes flags, egress flags_backend.
        add("198.51.100.7", 40000, "203.0.113.5", 443, PP_INLINE_HDR_SENT | PP_INLINE_FIN_CLIENT,
            PP_INLINE_HDR_ACKED | PP_INLINE_RESET_BACKEND, 5);
        add("2001:db8::7", 40001, "2001:db8::5", 443, 0, 0, 1);
    }

    std::string root_ = "/sys/fs/bpf/ppt-cli-" + std::to_string(getpid());
    bool made_ = false;
    Fd services_, counters_;
    unsigned headers_ = 0;
};

TEST_F(CliPinnedTables, ConnsListsTheInlineTable) {
    pin_conns();
    auto r = cli({"conns", "--bpffs", root_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // IPv4 connections print plainly, not IPv4-mapped.
    EXPECT_NE(r.out.find("198.51.100.7:40000"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("203.0.113.5:443"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("::ffff:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[2001:db8::7]:40001"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(" header-sent,header-acked,fin-client,reset-backend\n"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find(" syn\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\n2 connections\n"), std::string::npos) << r.out;

    r = cli({"conns", "--json", "--bpffs", root_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j.size(), 2u);
    const auto &v4 = j[0]["client"] == "198.51.100.7:40000" ? j[0] : j[1];
    EXPECT_EQ(v4["client"], "198.51.100.7:40000");
    EXPECT_EQ(v4["dialled"], "203.0.113.5:443");
    EXPECT_EQ(v4["service_name"], "edge");
    EXPECT_EQ(v4["service_id"], 3);
    EXPECT_EQ(v4["packets_in"], 12);
    EXPECT_EQ(v4["packets_out"], 34);
    EXPECT_EQ(v4["bytes_in"], 5678);
    EXPECT_EQ(v4["bytes_out"], 91011);
    EXPECT_EQ(v4["header_len"], 28);
    EXPECT_EQ(v4["state"], nlohmann::json::array(
                               {"header-sent", "header-acked", "fin-client", "reset-backend"}));
    EXPECT_NEAR(v4["age_s"].get<double>(), 5.0, 1.0);
    EXPECT_NEAR(v4["idle_s"].get<double>(), 1.0, 1.0);
}

TEST_F(CliPinnedTables, ConnsWithoutTheTableSaysWhy) {
    auto r = cli({"conns", "--bpffs", root_});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "ppinject conns: no ppinject state at " + root_ +
                         " (inline_conns is not pinned): is `ppinject run` running in this "
                         "mount namespace?\n");
}

TEST_F(CliPinnedTables, StatusShowsTheModeTheInlineCountersAndTheTable) {
    auto r = cli({"status", "--bpffs", root_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("service edge (id 3): tcp v2, mode inline, idle 10m\n"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("service web (id 4): tcp v2, mode relay\n"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("inline tcp connections"), std::string::npos) << r.out;  // no pin
    // The inline service has the tc programs' counters, the relay one the relay's.
    std::string edge = r.out.substr(r.out.find("service edge"),
                                    r.out.find("service web") - r.out.find("service edge"));
    EXPECT_NE(edge.find("  inline_headers       " + std::to_string(headers_) + "\n"),
              std::string::npos)
        << edge;
    EXPECT_NE(edge.find("  inline_no_state      0\n"), std::string::npos) << edge;
    EXPECT_EQ(edge.find("tcp_accepted"), std::string::npos) << edge;
    std::string web = r.out.substr(r.out.find("service web"));
    EXPECT_EQ(web.find("inline_headers"), std::string::npos) << web;

    pin_conns();
    r = cli({"status", "--bpffs", root_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("inline tcp connections: 2 of 128\n"), std::string::npos) << r.out;
    r = cli({"status", "--json", "--bpffs", root_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["inline_conns"]["count"], 2);
    EXPECT_EQ(j["inline_conns"]["max"], 128);
    ASSERT_EQ(j["services"].size(), 2u);
    EXPECT_EQ(j["services"][0]["mode"], "inline");
    EXPECT_EQ(j["services"][0]["idle_timeout_s"], 600.0);
    EXPECT_EQ(j["services"][0]["counters"]["inline_headers"], headers_);
    EXPECT_EQ(j["services"][1]["mode"], "relay");
    EXPECT_FALSE(j["services"][1]["counters"].contains("inline_headers"));
}

}  // namespace
