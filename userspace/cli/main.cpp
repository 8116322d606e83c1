// ppinject: the command line. Parsing only; each subcommand is a function in commands.hpp.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "cli/commands.hpp"
#include "core/config.hpp"

namespace {

using namespace ppinject::cli;

constexpr const char *kExitCodes =
    "\nExit status: 0 success, 1 failure (the reason is printed on one line), 2 usage error.";

// A command's own --help: what it does, an example, the exit codes.
void teach(CLI::App *cmd, const char *text, const char *example) {
    cmd->footer(std::string(text) + "\n\nExample: " + example + kExitCodes);
}

// --bpffs DIR, or the pin root named by --config FILE.
void add_pin_root_options(CLI::App *cmd, InspectOptions &opts, std::string &config) {
    cmd->add_option("--bpffs", opts.bpffs, "Pin root to read (default /sys/fs/bpf/ppinject)");
    cmd->add_option("--config", config, "Take the pin root from this config file instead");
}

// Applies --config to `opts`; false (message printed) when the file is unusable.
bool resolve_pin_root(InspectOptions &opts, const std::string &config) {
    if (config.empty()) {
        return true;
    }
    try {
        opts.bpffs = ppinject::load_config(config).global.bpffs;
        return true;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return false;
    }
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{
        "ppinject: the real client address for services behind a relay, with PROXY protocol "
        "v1/v2 and SPP headers injected in the kernel (TC eBPF for UDP)."};
    app.set_version_flag("--version", std::string("ppinject ") + PPINJECT_VERSION);
    app.require_subcommand(1);
    app.footer(
        "Examples:\n"
        "  ppinject check --config /etc/ppinject/ppinject.toml\n"
        "  sudo ppinject run --config /etc/ppinject/ppinject.toml\n"
        "  sudo ppinject status --json\n"
        "Run 'ppinject COMMAND --help' for each command.");

    RunOptions run_opts;
    auto *run_cmd = app.add_subcommand(
        "run", "Attach the data path from a config file and serve until SIGINT/SIGTERM");
    const char *run_text =
        "Load the BPF programs, pin their maps under the config's bpffs directory, fill the "
        "services map and attach tc ingress (and egress for SPP) on every interface a UDP "
        "service names; then wait. SIGHUP re-reads the file and applies the difference; "
        "SIGINT/SIGTERM detach and unpin everything. Needs root. A run killed with SIGKILL "
        "leaves the data path working; 'ppinject detach' removes it, a new run adopts it.";
    run_cmd->add_option("--config", run_opts.config, "TOML configuration file")->required();
    run_cmd->add_flag("--verbose", run_opts.verbose, "Also print libbpf's debug messages");
    teach(run_cmd, run_text, "sudo ppinject run --config /etc/ppinject/ppinject.toml");

    CheckOptions check_opts;
    auto *check_cmd =
        app.add_subcommand("check", "Validate a config file and print the resolved services");
    const char *check_text =
        "Validate a configuration file without touching the kernel and print the resolved "
        "services (ids, listen prefixes and port ranges, header modes, interfaces, backends). "
        "An error is printed as 'FILE:LINE: reason'.";
    check_cmd->add_option("--config", check_opts.config, "TOML configuration file")->required();
    check_cmd->add_flag("--json", check_opts.json, "Print the resolved configuration as JSON");
    teach(check_cmd, check_text, "ppinject check --config ppinject.toml");

    InspectOptions status_opts, flows_opts, detach_opts;
    std::string status_cfg, flows_cfg, detach_cfg;
    auto *status_cmd = app.add_subcommand(
        "status", "Show services, counters and attachments from the pinned maps");
    const char *status_text =
        "Show every service with its listen specs and counters (summed over CPUs), the "
        "interfaces ppinject is attached to and the UDP flow table size, read from the pinned "
        "maps: works while 'run' is running, or after it was killed.";
    add_pin_root_options(status_cmd, status_opts, status_cfg);
    status_cmd->add_flag("--json", status_opts.json, "Print JSON (the same counter names)");
    teach(status_cmd, status_text, "sudo ppinject status --json");

    auto *flows_cmd = app.add_subcommand("flows", "List the UDP flow table");
    const char *flows_text =
        "List the UDP flow table (udp_flows): client, service address, service name, age, "
        "idle time, packets and bytes, most recently active first.";
    add_pin_root_options(flows_cmd, flows_opts, flows_cfg);
    flows_cmd->add_flag("--json", flows_opts.json, "Print JSON");
    teach(flows_cmd, flows_text, "sudo ppinject flows --bpffs /sys/fs/bpf/ppinject");

    auto *detach_cmd =
        app.add_subcommand("detach", "Remove everything a run left behind (after a crash)");
    const char *detach_text =
        "Remove everything a run left behind, typically after it was killed: its tc filters "
        "(recorded in the pinned attachments map, and any other filter of ppinject's on this "
        "network namespace's interfaces), the clsact qdiscs it created, and its pins.";
    add_pin_root_options(detach_cmd, detach_opts, detach_cfg);
    teach(detach_cmd, detach_text, "sudo ppinject detach --config /etc/ppinject/ppinject.toml");

    DecodeOptions decode_opts;
    auto *decode_cmd =
        app.add_subcommand("decode", "Decode a PROXY v1/v2 or SPP header read from stdin");
    const char *decode_text =
        "Read one PROXY v1, PROXY v2 or SPP header from standard input and print its fields "
        "(addresses, ports, TLVs). Bytes after the header are counted, not decoded.";
    decode_cmd->add_flag("--hex", decode_opts.hex,
                         "Input is hex text (whitespace, 0x prefixes and ':' are ignored)");
    decode_cmd->add_flag("--json", decode_opts.json, "Print JSON");
    teach(decode_cmd, decode_text,
          "printf 'PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\\r\\n' | ppinject decode");

    auto *reload_cmd =
        app.add_subcommand("reload", "Ask the running daemon to re-read its config (SIGHUP)");
    const char *reload_text =
        "Ask the running 'ppinject run' to re-read its configuration (SIGHUP).";
    teach(reload_cmd, reload_text, "sudo ppinject reload");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }

    if (run_cmd->parsed()) {
        return run(run_opts);
    }
    if (check_cmd->parsed()) {
        return check(check_opts);
    }
    if (status_cmd->parsed()) {
        return resolve_pin_root(status_opts, status_cfg) ? status(status_opts) : 1;
    }
    if (flows_cmd->parsed()) {
        return resolve_pin_root(flows_opts, flows_cfg) ? flows(flows_opts) : 1;
    }
    if (detach_cmd->parsed()) {
        return resolve_pin_root(detach_opts, detach_cfg) ? detach(detach_opts) : 1;
    }
    if (decode_cmd->parsed()) {
        return decode(decode_opts);
    }
    std::fprintf(stderr,
                 "ppinject reload: not implemented in this build yet (send SIGHUP to the "
                 "running 'ppinject run')\n");
    return 2;
}
