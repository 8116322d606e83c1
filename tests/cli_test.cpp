// The CLI as a user runs it: exit codes, one-line errors, --help and check output (decode has
// its own file, cli_decode_test.cpp).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <fstream>
#include <string>

#include "support/privileges.hpp"
#include "support/process.hpp"

namespace {

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
    EXPECT_NE(r.out.find("config OK: 6 services\n"), std::string::npos) << r.out;

    r = cli({"check", "--json", "--config", source("tools/ppinject.example.toml")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["services"].size(), 6u);
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
    for (const char *cmd : {"status", "flows", "detach", "reload"}) {
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
    for (const char *cmd : {"run", "check", "status", "flows", "detach", "decode", "reload"}) {
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

}  // namespace
