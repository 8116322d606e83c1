// ppinject: the command line. Parsing only; each subcommand is a function in commands.hpp
// (implemented in its own file, or in pending.cpp while it is not built yet).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <sstream>
#include <string>

#include "cli/commands.hpp"
#include "config/config.hpp"

namespace {

using namespace ppinject::cli;

constexpr const char *kDefaultPinRoot = "/sys/fs/bpf/ppinject";

// `text` as lines of at most `width` columns (CLI11 does not wrap footers).
std::string wrap(const std::string &text, std::size_t width = 88) {
    std::string out, line, word;
    std::istringstream words(text);
    while (words >> word) {
        if (!line.empty() && line.size() + 1 + word.size() > width) {
            out += line + "\n";
            line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
    }
    return out + line;
}

// A command's own --help: what it does, an example, what its exit status means.
void teach(CLI::App *cmd, const std::string &text, const std::string &example,
           const std::string &exit_codes) {
    cmd->footer(wrap(text) + "\n\nExample:\n  " + example + "\n\n" +
                wrap("Exit status: " + exit_codes));
}

const std::string kUsage = "2 usage error (unknown option, missing argument).";

// --bpffs DIR, or the pin root named by --config FILE (one or the other).
void add_pin_root_options(CLI::App *cmd, std::string &bpffs, std::string &config) {
    auto *b = cmd->add_option("--bpffs", bpffs,
                              std::string("Pin root directory (default ") + kDefaultPinRoot + ")");
    b->type_name("DIR");
    cmd->add_option("--config", config,
                    "Take the pin root from this config file's [global] bpffs instead")
        ->type_name("FILE")
        ->excludes(b);
}

// Applies --config to `bpffs`; false (the config's one-line error printed) when the file is
// unusable.
bool resolve_pin_root(std::string &bpffs, const std::string &config) {
    if (config.empty()) {
        return true;
    }
    try {
        bpffs = ppinject::load_config(config).global.bpffs;
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
        "v1/v2 and SPP headers injected in the kernel (TC eBPF for UDP; sk_lookup, an acceptor "
        "and a sockmap for TCP)."};
    app.set_version_flag("--version", std::string("ppinject ") + PPINJECT_VERSION,
                         "Print the version and exit");
    app.require_subcommand(1);
    app.footer(
        "Examples:\n"
        "  ppinject check --config /etc/ppinject/ppinject.toml\n"
        "  sudo ppinject run --config /etc/ppinject/ppinject.toml\n"
        "  sudo ppinject status --json\n"
        "Run 'ppinject COMMAND --help' for each command.\n\n"
        "Exit status: 0 success, 1 failure (the reason printed on one line), 2 usage error or "
        "a command this build does not provide.");

    // run
    RunOptions run_opts;
    auto *run_cmd = app.add_subcommand(
        "run", "Attach the data path from a config file and serve until SIGINT/SIGTERM");
    run_cmd->add_option("--config", run_opts.config, "TOML configuration file")
        ->required()
        ->type_name("FILE");
    run_cmd->add_flag("--verbose", run_opts.verbose, "Also print libbpf's debug messages");
    teach(run_cmd,
          "Load the BPF programs, pin their maps under the config's bpffs directory, fill the "
          "services map and attach tc ingress or XDP (attach = \"xdp\"; tc egress for SPP) on "
          "every interface a UDP "
          "service names; then wait. SIGHUP re-reads the file and applies the difference (a "
          "file that fails 'check' changes nothing); SIGINT/SIGTERM detach and unpin "
          "everything. Needs root. A run killed with SIGKILL leaves the data path working; "
          "'ppinject detach' removes it, a new run adopts it.",
          "sudo ppinject run --config /etc/ppinject/ppinject.toml",
          "0 stopped cleanly by SIGINT/SIGTERM, 1 bad config or attach failure (what was "
          "attached is rolled back), " +
              kUsage);

    // check
    CheckOptions check_opts;
    auto *check_cmd =
        app.add_subcommand("check", "Validate a config file and print the resolved services");
    check_cmd->add_option("--config", check_opts.config, "TOML configuration file")
        ->required()
        ->type_name("FILE");
    check_cmd->add_flag("--json", check_opts.json, "Print the resolved configuration as JSON");
    teach(check_cmd,
          "Validate a configuration file without touching the kernel and print the resolved "
          "services: ids, listen specs expanded to prefix and port range, header modes, "
          "interfaces, backends, timeouts, then 'config OK: N services'. An error is one line "
          "on stderr, 'FILE:LINE: reason', pointing at the offending key. See "
          "tools/ppinject.example.toml for every key.",
          "ppinject check --config /etc/ppinject/ppinject.toml",
          "0 valid, 1 invalid or unreadable (FILE:LINE: reason on stderr), " + kUsage);

    // status
    InspectOptions status_opts;
    std::string status_cfg;
    auto *status_cmd = app.add_subcommand(
        "status", "Show services, counters and attachments from the pinned maps");
    add_pin_root_options(status_cmd, status_opts.bpffs, status_cfg);
    status_cmd->add_flag("--json", status_opts.json, "Print JSON (the same counter names)");
    status_cmd->add_flag("--check", status_opts.check,
                         "Only check health: print 'ok' or the reason, exit 0 or 1");
    teach(status_cmd,
          "Show every service with its listen specs and counters (summed over CPUs), the "
          "interfaces ppinject is attached to, the UDP flow table size and the inline TCP "
          "connection table's use and capacity, read from the pinned maps: works while 'run' "
          "is running, or after it was killed. With --check, "
          "answer what GET /healthz on the metrics address answers, for a BGP speaker's or a "
          "watchdog's health script: 'ok' when a run owns the pin root and every service is "
          "served (each UDP service's interfaces exist and carry ppinject's tc programs, "
          "each relay TCP service has its listening sockets, each inline TCP service's "
          "interfaces carry its tc ingress and egress filters), else the reason on one line, "
          "such "
          "as 'udp service \"dns\": interface eth0 is gone'.",
          "sudo ppinject status --check && echo healthy",
          "0 printed (--check: healthy), 1 no ppinject state under the pin root, unreadable "
          "maps (--check: not healthy, the reason printed), " +
              kUsage);

    // flows
    InspectOptions flows_opts;
    std::string flows_cfg;
    auto *flows_cmd = app.add_subcommand("flows", "List the UDP flow table");
    add_pin_root_options(flows_cmd, flows_opts.bpffs, flows_cfg);
    flows_cmd->add_flag("--json", flows_opts.json, "Print JSON");
    teach(flows_cmd,
          "List the UDP flow table (udp_flows): client, service address, service name, age, "
          "idle time, packets and bytes, most recently active first.",
          "sudo ppinject flows --bpffs /sys/fs/bpf/ppinject",
          "0 printed, 1 no ppinject state under the pin root, " + kUsage);

    // conns
    InspectOptions conns_opts;
    std::string conns_cfg;
    auto *conns_cmd = app.add_subcommand("conns", "List the inline TCP connection table");
    add_pin_root_options(conns_cmd, conns_opts.bpffs, conns_cfg);
    conns_cmd->add_flag("--json", conns_opts.json, "Print JSON");
    teach(
        conns_cmd,
        "List the connections of mode = \"inline\" TCP services (inline_conns): client, "
        "the address it dialled (before any DNAT), service name, age, idle time, packets "
        "in (client to backend) and out, the header's length and the state: header-sent, "
        "header-acked (the backend acknowledged the whole header), fin-client, "
        "fin-backend, reset-client, reset-backend ('syn' before the header went out), most "
        "recently active "
        "first. The state lives in the kernel: this works while 'run' is running or after "
        "it was killed.",
        "sudo ppinject conns --json --config /etc/ppinject/ppinject.toml",
        "0 printed, 1 no ppinject state under the pin root (or no inline table pinned), " + kUsage);

    // detach
    InspectOptions detach_opts;
    std::string detach_cfg;
    auto *detach_cmd =
        app.add_subcommand("detach", "Remove everything a run left behind (after a crash)");
    add_pin_root_options(detach_cmd, detach_opts.bpffs, detach_cfg);
    teach(detach_cmd,
          "Remove everything a run left behind, typically after it was killed: its tc filters "
          "(recorded in the pinned attachments map, and any other filter of ppinject's on this "
          "network namespace's interfaces), the clsact qdiscs it created, and its pins. With "
          "--config the pin root is the file's [global] bpffs.",
          "sudo ppinject detach --config /etc/ppinject/ppinject.toml",
          "0 removed (or nothing to remove), 1 something could not be removed, " + kUsage);

    // decode
    DecodeOptions decode_opts;
    auto *decode_cmd =
        app.add_subcommand("decode", "Decode a PROXY v1/v2 or SPP header read from stdin");
    decode_cmd->add_flag("--hex", decode_opts.hex,
                         "Input is hex text (whitespace, 0x prefixes and ':' are ignored)");
    decode_cmd->add_flag("--json", decode_opts.json, "Print JSON");
    teach(decode_cmd,
          "Read one PROXY v1, PROXY v2 or SPP header from standard input and print its fields "
          "(addresses, ports, TLVs). Bytes after the header are counted, not decoded.",
          "printf 'PROXY TCP4 192.0.2.0 192.0.2.255 42300 443\\r\\n' | ppinject decode",
          "0 decoded, 1 no valid header (the reason on stderr), " + kUsage);

    // reload
    ReloadOptions reload_opts;
    std::string reload_cfg;
    auto *reload_cmd =
        app.add_subcommand("reload", "Ask the running daemon to re-read its config (SIGHUP)");
    add_pin_root_options(reload_cmd, reload_opts.bpffs, reload_cfg);
    teach(reload_cmd,
          "Ask the 'ppinject run' that owns the pin root to re-read its configuration file, "
          "as SIGHUP does: services added, changed and removed, interfaces attached and "
          "detached; live UDP flows and TCP connections of remaining services carry on. "
          "With --config the file is checked first, and a file that fails 'check' is "
          "reported here and not sent; the daemon re-reads the file it was started with and "
          "logs 'reloaded' or why nothing changed.",
          "sudo ppinject reload --config /etc/ppinject/ppinject.toml",
          "0 the daemon was signalled, 1 no running daemon owns the pin root or the file "
          "fails 'check', 2 usage error.");

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
        return resolve_pin_root(status_opts.bpffs, status_cfg) ? status(status_opts) : 1;
    }
    if (flows_cmd->parsed()) {
        return resolve_pin_root(flows_opts.bpffs, flows_cfg) ? flows(flows_opts) : 1;
    }
    if (conns_cmd->parsed()) {
        return resolve_pin_root(conns_opts.bpffs, conns_cfg) ? conns(conns_opts) : 1;
    }
    if (detach_cmd->parsed()) {
        return resolve_pin_root(detach_opts.bpffs, detach_cfg) ? detach(detach_opts) : 1;
    }
    if (decode_cmd->parsed()) {
        return decode(decode_opts);
    }
    if (reload_cmd->parsed()) {
        return resolve_pin_root(reload_opts.bpffs, reload_cfg) ? reload(reload_opts) : 1;
    }
    return 2;  // unreachable: require_subcommand(1)
}
