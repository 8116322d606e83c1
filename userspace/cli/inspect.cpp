// status, flows, conns and detach: they work on the pins alone, from any process.
#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "loader/privileges.hpp"
#include "observe/host_health.hpp"
#include "observe/inspect.hpp"
#include "loader/pins.hpp"

namespace ppinject::cli {

// Prints "ppinject CMD: needs ..." and returns false when capabilities are missing.
bool allowed(const char *cmd, const std::vector<std::string> &caps) {
    std::string why = capability_error(caps);
    if (!why.empty()) {
        std::fprintf(stderr, "ppinject %s: %s\n", cmd, why.c_str());
    }
    return why.empty();
}

int status(const InspectOptions &opts) {
    if (!allowed("status", kReadCaps)) {
        return 1;
    }
    if (opts.check) {
        HostHealth h = check_host_health(opts.bpffs);
        std::cout << (opts.json ? to_json(h).dump(2) : h.summary()) << "\n";
        return h.ok() ? 0 : 1;
    }
    try {
        Snapshot s = read_snapshot(opts.bpffs);
        std::cout << (opts.json ? to_json(s).dump(2) + "\n" : render_text(s));
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "ppinject status: %s\n", e.what());
        return 1;
    }
}

namespace {

// Prints one pinned table read by `read` (read_flows, read_conns), as text or JSON.
template <typename Read>
int print_table(const char *cmd, const InspectOptions &opts, Read read) {
    if (!allowed(cmd, kReadCaps)) {
        return 1;
    }
    try {
        auto t = read(opts.bpffs);
        std::cout << (opts.json ? to_json(t).dump(2) + "\n" : render_text(t));
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "ppinject %s: %s\n", cmd, e.what());
        return 1;
    }
}

}  // namespace

int flows(const InspectOptions &opts) {
    return print_table("flows", opts, read_flows);
}

int conns(const InspectOptions &opts) {
    return print_table("conns", opts, read_conns);
}

int detach(const InspectOptions &opts) {
    if (!allowed("detach", kDetachCaps)) {
        return 1;
    }
    int steps = 0;
    int errors = detach_all(opts.bpffs, [&](const std::string &line) {
        std::fprintf(stderr, "ppinject detach: %s\n", line.c_str());
        steps++;
    });
    if (steps == 0) {
        std::fprintf(stderr, "ppinject detach: nothing of ppinject's found (pin root %s)\n",
                     opts.bpffs.c_str());
    }
    return errors == 0 ? 0 : 1;
}

}  // namespace ppinject::cli
