// What a command needs from the kernel that the caller may lack, said by name before
// anything is tried: "needs CAP_BPF, CAP_NET_ADMIN (run as root)" beats a bare EPERM.
#pragma once

#include <string>
#include <vector>

namespace ppinject {

// Capabilities (by name, e.g. "CAP_BPF") from `wanted` missing in this process's effective
// set (/proc/self/status CapEff).
std::vector<std::string> missing_capabilities(const std::vector<std::string> &wanted);

// "" when none are missing, else "needs CAP_X, CAP_Y (run as root)".
std::string capability_error(const std::vector<std::string> &wanted);

// What each command needs: loading and attaching BPF, mounting bpffs and creating sockets
// (run), reading pinned maps (status, flows), removing filters and pins (detach).
inline const std::vector<std::string> kRunCaps = {"CAP_BPF", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"};
inline const std::vector<std::string> kReadCaps = {"CAP_BPF"};
inline const std::vector<std::string> kDetachCaps = {"CAP_BPF", "CAP_NET_ADMIN"};

}  // namespace ppinject
