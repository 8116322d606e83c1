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
# Tests and demo: namespaces, tc, nftables, offload switches and the real peers. The
# PROXY receivers are third-party decoders the TCP tests check ppinject against: nginx
# with the stream module (in bookworm `nginx` is the binary and `nginx-light` only a
# metapackage adding the http echo module; `listen ... proxy_protocol` in `stream {}`
# needs libnginx-mod-stream) and HAProxy (`bind ... accept-proxy`). Tests run private
# instances; the packaged services must stay stopped. strace shows that the daemon reads
# no payload in sockmap mode. The scale-out test runs BIRD 2 (bird2) as the routers' and
# fronts' BGP speaker, and its health checker (tools/bgp/ppinject-bgp-health) asks
# /healthz with curl; bird2's own service must stay stopped too.
test_pkgs=(
  iproute2 ethtool nftables procps kmod util-linux socat strace openssl
  nginx libnginx-mod-stream haproxy bird2 curl
)
# VM tests (make vmtest): QEMU, a static busybox for the initramfs init, cpio to pack it,
# dpkg-deb/apt-get (always present on Debian) fetch and unpack the guest kernel package.
vm_pkgs=(
  qemu-system-x86 busybox-static cpio gzip xz-utils zstd binutils
)
# Benchmarks (make bench): gnuplot draws the chart; iperf3 is the reference the bench's own
# load generator is compared with on the direct path (so the sink is shown not to be the
# bottleneck); conntrack empties the front's connection tracking table between UDP runs.
bench_pkgs=(gnuplot-nox iperf3 conntrack)
# Debian package (make deb): debhelper and dpkg-dev build it, pandoc turns the man page
# sources (tools/man/*.md) into roff, lintian checks the result; the package test reads
# the pages with man-db's `man -l` and checks the unit with systemd's `systemd-analyze`.
deb_pkgs=(debhelper dpkg-dev pandoc lintian man-db systemd)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get and mounting bpffs need it)" >&2
  exit 1
fi

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}" "${vm_pkgs[@]}" "${bench_pkgs[@]}" "${deb_pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packaged daemons (nginx, haproxy, bird) must not start on install: tests start their own,
  # and a system nginx would hold port 80 on the host. invoke-rc.d (and, under systemd,
  # deb-systemd-invoke) asks /usr/sbin/policy-rc.d; exit 101 means "action forbidden".
  # An existing policy that would allow the start is moved aside and put back afterwards.
  policy=/usr/sbin/policy-rc.d
  saved_policy=$policy.ppinject-saved
  made_policy=0
  if [ -e "$policy" ]; then
    rc=0
    "$policy" nginx start >/dev/null 2>&1 || rc=$?
    if [ "$rc" -ne 101 ]; then
      mv "$policy" "$saved_policy"
    fi
  fi
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  restore_policy() {
    if [ "$made_policy" = 1 ]; then
      rm -f "$policy"
      if [ -e "$saved_policy" ]; then mv "$saved_policy" "$policy"; fi
    fi
  }
  trap restore_policy EXIT
  # Receiver daemons already running belong to someone else and are left alone; only one
  # that appears during this install (its packaged service, despite the policy) is stopped.
  before=$(pgrep -x 'nginx|haproxy|bird' || true)
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for pidfile in /run/nginx.pid /run/haproxy.pid /run/bird/bird.pid; do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && ! grep -qx "$pid" <<<"$before"; then
      echo "install-deps: stopping the service the install started ($pidfile, pid $pid)"
      kill -TERM "$pid"
    fi
  done
fi

# libbpf pins maps and the tools read them under /sys/fs/bpf.
if ! grep -qs '^bpf /sys/fs/bpf ' /proc/mounts; then
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
fi
