#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "cli/commands.hpp"
#include "loader/datapath.hpp"
#include "sys/error.hpp"

namespace ppinject::cli {

int reload(const ReloadOptions &opts) {
    long pid = pin_root_owner(opts.bpffs);
    if (pid <= 0) {
        std::fprintf(stderr, "ppinject reload: no 'ppinject run' owns %s\n", opts.bpffs.c_str());
        return 1;
    }
    if (kill(static_cast<pid_t>(pid), SIGHUP) != 0) {
        int err = -errno;
        std::fprintf(stderr, "ppinject reload: %s\n",
                     error_text("signal pid " + std::to_string(pid), err).c_str());
        return 1;
    }
    std::printf("ppinject reload: sent SIGHUP to pid %ld; its log says 'reloaded' or why not\n",
                pid);
    return 0;
}

}  // namespace ppinject::cli
