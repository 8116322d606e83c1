// One function per ppinject subcommand. main.cpp builds the CLI11 parser and calls
// these; each returns the process exit status: 0 ok, 1 failure (bad input, bad config,
// runtime error; the reason already printed as one line to stderr), 2 usage error.
#pragma once

#include <string>

namespace ppinject::cli {

struct DecodeOptions {
    bool hex = false;   // stdin is hex text (whitespace, "0x" and ':' ignored)
    bool json = false;  // print JSON instead of the readable form
};
int decode(const DecodeOptions &opts);

struct CheckOptions {
    std::string config;
    bool json = false;
};
int check(const CheckOptions &opts);

struct RunOptions {
    std::string config;
    bool verbose = false;  // libbpf debug output too
};
int run(const RunOptions &opts);

// status, flows, conns and detach work on the pin root alone.
struct InspectOptions {
    std::string bpffs = "/sys/fs/bpf/ppinject";
    bool json = false;
    bool check = false;  // status: only the health check (observe/host_health.hpp), exit 0/1
};
int status(const InspectOptions &opts);
int flows(const InspectOptions &opts);
int conns(const InspectOptions &opts);
int detach(const InspectOptions &opts);

// reload: makes the `ppinject run` that owns the pin root (it holds a flock on the
// directory, so /proc/locks names its pid) re-read its configuration, by SIGHUP.
struct ReloadOptions {
    std::string bpffs = "/sys/fs/bpf/ppinject";
};
int reload(const ReloadOptions &opts);

}  // namespace ppinject::cli
