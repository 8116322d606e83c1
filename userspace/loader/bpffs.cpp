#include "loader/bpffs.hpp"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <stdexcept>

#include "sys/error.hpp"

namespace ppinject {
namespace {

// The deepest existing directory at or above `path`.
std::filesystem::path existing_ancestor(std::filesystem::path p) {
    std::error_code ec;
    while (!p.empty() && !std::filesystem::exists(p, ec)) {
        p = p.parent_path();
    }
    return p.empty() ? "/" : p;
}

}  // namespace

bool on_bpffs(const std::string &path) {
    struct statfs st {};
    return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

void prepare_pin_root(const std::string &dir) {
    std::filesystem::path root(dir);
    if (!root.is_absolute()) {
        throw std::runtime_error("pin root " + dir + " is not an absolute path");
    }
    if (!on_bpffs(existing_ancestor(root))) {
        std::filesystem::path mnt = "/sys/fs/bpf";
        auto rel = root.lexically_relative(mnt);
        bool below_default = !rel.empty() && *rel.begin() != "..";
        if (!below_default) {
            mnt = root;
        }
        std::error_code ec;
        std::filesystem::create_directories(mnt, ec);
        if (ec) {
            throw std::runtime_error("create " + mnt.string() + ": " + ec.message());
        }
        if (mount("bpf", mnt.c_str(), "bpf", 0, "mode=0700") != 0) {
            int err = -errno;
            throw std::runtime_error(error_text(
                "no BPF filesystem at " + dir + " and mounting one at " + mnt.string() + " failed",
                err));
        }
    }
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        int err = -errno;
        throw std::runtime_error(error_text("create pin directory " + dir, err));
    }
    if (chmod(dir.c_str(), 0700) != 0) {  // root only, also when an older run made it
        int err = -errno;
        throw std::runtime_error(error_text("chmod 0700 " + dir, err));
    }
    if (!on_bpffs(dir)) {
        throw std::runtime_error("pin directory " + dir + " is not on a BPF filesystem");
    }
}

void remove_pin_root(const std::string &dir) {
    rmdir(dir.c_str());
}

}  // namespace ppinject
