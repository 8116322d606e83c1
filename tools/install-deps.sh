#!/usr/bin/env bash
# Install every Debian package ppinject needs to build, test and demo, and make sure a
# BPF filesystem is mounted. Idempotent: when everything is present it only checks and
# returns in a second; `apt-get update` runs only when something is missing.
set -euo pipefail

# Build: compilers, BPF toolchain (Debian's libbpf 1.1 and the matching bpftool), and the
# C++ libraries the code uses instead of hand-rolled ones.
build_pkgs=(
  cmake make pkg-config g++ clang llvm clang-format
  libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
  libgtest-dev libtoml11-dev libcli11-dev libfmt-dev nlohmann-json3-dev
)
# Tests and demo: namespaces, tc, nftables, offload switches and the real peers.
test_pkgs=(
  iproute2 ethtool nftables procps kmod util-linux socat
)
# VM tests (make vmtest): QEMU, a static busybox for the initramfs init, cpio to pack it,
# dpkg-deb/apt-get (always present on Debian) fetch and unpack the guest kernel package.
vm_pkgs=(
  qemu-system-x86 busybox-static cpio gzip xz-utils zstd binutils
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get and mounting bpffs need it)" >&2
  exit 1
fi

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}" "${vm_pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packaged daemons (nginx, haproxy) must not start on install: tests start their own.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  trap '[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libbpf pins maps and the tools read them under /sys/fs/bpf.
if ! grep -qs '^bpf /sys/fs/bpf ' /proc/mounts; then
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
fi
