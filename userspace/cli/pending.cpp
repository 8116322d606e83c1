// Subcommands this build parses but does not provide yet. Each prints one line and exits
// 2; replace a body here (or move the function to its own file) when it is built.
#include <cstdio>

#include "cli/commands.hpp"

namespace ppinject::cli {

int reload(const ReloadOptions &) {
    std::fprintf(stderr,
                 "ppinject reload: not implemented in this build yet (send SIGHUP to the running "
                 "'ppinject run')\n");
    return 2;
}

}  // namespace ppinject::cli
