#include "loader/privileges.hpp"

#include <linux/capability.h>

#include <fstream>
#include <map>

namespace ppinject {
namespace {

const std::map<std::string, int> kCapNumbers = {
    {"CAP_NET_ADMIN", CAP_NET_ADMIN},
    {"CAP_SYS_ADMIN", CAP_SYS_ADMIN},
    {"CAP_BPF", 39},  // named in linux/capability.h since 5.8 headers
    {"CAP_PERFMON", 38},
};

std::uint64_t effective_capabilities() {
    std::ifstream status("/proc/self/status");
    std::string key, value;
    while (status >> key >> value) {
        if (key == "CapEff:") {
            return std::stoull(value, nullptr, 16);
        }
    }
    return 0;
}

}  // namespace

std::vector<std::string> missing_capabilities(const std::vector<std::string> &wanted) {
    std::uint64_t eff = effective_capabilities();
    std::vector<std::string> out;
    for (const auto &name : wanted) {
        int bit = kCapNumbers.at(name);
        bool have = (eff >> bit) & 1;
        // Before CAP_BPF (kernels < 5.8) CAP_SYS_ADMIN stood for it.
        if (!have && name == "CAP_BPF") {
            have = (eff >> CAP_SYS_ADMIN) & 1;
        }
        if (!have) {
            out.push_back(name);
        }
    }
    return out;
}

std::string capability_error(const std::vector<std::string> &wanted) {
    auto missing = missing_capabilities(wanted);
    if (missing.empty()) {
        return "";
    }
    std::string out = "needs ";
    for (std::size_t i = 0; i < missing.size(); i++) {
        out += (i ? ", " : "") + missing[i];
    }
    return out + " (run as root)";
}

}  // namespace ppinject
