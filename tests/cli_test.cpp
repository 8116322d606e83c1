// The CLI as a user runs it: exit codes, one-line errors, --help, decode and check output.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <fstream>
#include <string>

#include "support/process.hpp"

namespace {

using pptest::ppinject_binary;
using pptest::run_process;

pptest::ProcessResult cli(std::vector<std::string> args, const std::string &in = {}) {
    args.insert(args.begin(), ppinject_binary());
    return run_process(args, in);
}

std::string hex_to_bytes(const std::string &hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return out;
}

TEST(CliDecode, SpecV1ExamplePrintsBothEndpoints) {
    auto r = cli({"decode"}, "PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\r\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("PROXY v1 TCP4"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("192.0.2.0:42300"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("192.0.2.255:443"), std::string::npos) << r.out;
}

TEST(CliDecode, V2HexWithTlvsAsJson) {
    // PROXY INET6 STREAM [2001:db8::1]:1000 -> [2001:db8::2]:443, AUTHORITY "example.com".
    std::string hex =
        "0d0a0d0a000d0a515549540a 21 21 0032"
        "20010db8000000000000000000000001 20010db8000000000000000000000002 03e8 01bb"
        "02 000b 6578616d706c652e636f6d";
    auto r = cli({"decode", "--hex", "--json"}, hex);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["version"], 2);
    EXPECT_EQ(j["command"], "PROXY");
    EXPECT_EQ(j["family"], "INET6");
    EXPECT_EQ(j["transport"], "STREAM");
    EXPECT_EQ(j["source"]["address"], "2001:db8::1");
    EXPECT_EQ(j["source"]["port"], 1000);
    EXPECT_EQ(j["destination"]["port"], 443);
    ASSERT_EQ(j["tlvs"].size(), 1u);
    EXPECT_EQ(j["tlvs"][0]["name"], "AUTHORITY");
    EXPECT_EQ(j["tlvs"][0]["value"], "example.com");
    EXPECT_EQ(j["header_length"], 66);
}

TEST(CliDecode, SppRawWithPayload) {
    std::string spp = hex_to_bytes(
        "56ec00000000000000000000ffffc000020a00000000000000000000ffffcb007105a53c0035");
    auto r = cli({"decode"}, spp + "payload");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("SPP"), std::string::npos);
    EXPECT_NE(r.out.find("192.0.2.10:42300"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("203.0.113.5:53"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("7 bytes after the header"), std::string::npos) << r.out;
}

TEST(CliDecode, ErrorsExitOneWithTheReason) {
    struct Case {
        std::vector<std::string> args;
        std::string in;
        std::string reason;
    };
    std::vector<Case> cases = {
        {{"decode"},
         "PROXY TCP4 192.0.2.0 192.0.2.255 42300 4430000\r\n",
         "malformed PROXY v1 header: destination port"},
        {{"decode"}, "PROXY TCP4 192.0.2.0 192.0.2.255", "incomplete PROXY v1 header"},
        {{"decode", "--hex"},
         "0d0a0d0a000d0a515549540a 21 11 0008 c000020a cb007105",
         "malformed PROXY v2 header: length is shorter"},
        {{"decode", "--hex"}, "0d0a0d0a000d0a515549540a 31", "malformed PROXY v2 header: version"},
        {{"decode", "--hex"}, "56ed", "malformed SPP header: bad magic"},
        {{"decode", "--hex"}, "0d0a0g", "invalid hex character 'g'"},
        {{"decode", "--hex"}, "0d0", "odd number of hex digits"},
        {{"decode"}, "GET / HTTP/1.1\r\n", "not a PROXY v1, PROXY v2 or SPP header"},
        {{"decode"}, "", "no input"},
    };
    for (const auto &c : cases) {
        auto r = cli(c.args, c.in);
        EXPECT_EQ(r.exit_code, 1) << c.in;
        EXPECT_NE(r.err.find(c.reason), std::string::npos) << c.in << " -> " << r.err;
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
        EXPECT_EQ(r.out, "");
    }
}

class CliCheck : public ::testing::Test {
  protected:
    void write(const std::string &text) { std::ofstream(path_) << text; }
    void TearDown() override { unlink(path_.c_str()); }
    std::string path_ = "/tmp/ppt-cli-" + std::to_string(getpid()) + ".toml";
};

TEST_F(CliCheck, GoodFileListsServices) {
    auto r = cli(
        {"check", "--config", std::string(PPINJECT_SOURCE_DIR) + "/tools/ppinject.example.toml"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("service dns (id 1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("192.0.2.0/24:27000-27015"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("config OK: 5 services"), std::string::npos) << r.out;

    r = cli({"check", "--json", "--config",
             std::string(PPINJECT_SOURCE_DIR) + "/tools/ppinject.example.toml"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["services"].size(), 5u);
    EXPECT_EQ(j["services"][2]["header"], "spp");
}

TEST_F(CliCheck, BadFileIsOneLineWithFileAndLine) {
    write(
        "[[service]]\nname = \"dns\"\nprotocol = \"udp\"\nlisten = \"192.0.2.1:53\"\n"
        "interfaces = [\"eth0\"]\nheader = \"v2\"\nudp_heade = \"every\"\n");
    auto r = cli({"check", "--config", path_});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, path_ + ":7: unknown key 'udp_heade' in service 'dns'\n");
    EXPECT_EQ(r.out, "");
}

TEST_F(CliCheck, MissingFile) {
    auto r = cli({"check", "--config", "/nonexistent/x.toml"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "/nonexistent/x.toml: cannot read: No such file or directory\n");
}

TEST(Cli, HelpTeachesEachCommand) {
    struct Case {
        std::string cmd;
        std::vector<std::string> mentions;
    };
    for (const auto &c : std::vector<Case>{{"run", {"--config", "SIGHUP", "Example"}},
                                           {"check", {"--config", "--json", "FILE:LINE"}},
                                           {"status", {"--bpffs", "--json", "counters"}},
                                           {"flows", {"--bpffs", "--json"}},
                                           {"detach", {"--bpffs", "--config", "killed"}},
                                           {"decode", {"--hex", "--json", "Example"}}}) {
        auto r = cli({c.cmd, "--help"});
        EXPECT_EQ(r.exit_code, 0) << c.cmd;
        for (const auto &m : c.mentions) {
            EXPECT_NE(r.out.find(m), std::string::npos) << c.cmd << " --help lacks " << m;
        }
    }
}

TEST(Cli, UsageErrorsExitTwo) {
    EXPECT_EQ(cli({}).exit_code, 2);
    EXPECT_EQ(cli({"frobnicate"}).exit_code, 2);
    EXPECT_EQ(cli({"check"}).exit_code, 2);  // --config is required
    EXPECT_EQ(cli({"decode", "--hax"}).exit_code, 2);
    auto r = cli({"reload"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("not implemented in this build yet"), std::string::npos) << r.err;
}

TEST(Cli, StatusWithoutStateSaysWhy) {
    auto r = cli({"status", "--bpffs", "/sys/fs/bpf/ppt-nothing-here"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("no ppinject state at /sys/fs/bpf/ppt-nothing-here"), std::string::npos)
        << r.err;
}

}  // namespace
