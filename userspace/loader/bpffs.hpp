// The pin root: a directory on a BPF filesystem where ppinject pins its maps.
#pragma once

#include <string>

namespace ppinject {

// Make `dir` usable as a pin root: when no BPF filesystem is mounted at or above it (as
// under `ip netns exec`, which remounts /sys), mount one at /sys/fs/bpf if `dir` is below
// it, else at `dir`; then create `dir`. Throws std::runtime_error with a one-line reason.
void prepare_pin_root(const std::string &dir);

// True when `path` exists and lives on a BPF filesystem.
bool on_bpffs(const std::string &path);

// Remove the pin root if it is empty (after unpinning). Errors are ignored: a directory
// that still holds someone's pins stays.
void remove_pin_root(const std::string &dir);

}  // namespace ppinject
