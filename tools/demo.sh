#!/usr/bin/env bash
# make demo: decode sample PROXY v1, v2 and SPP headers with the CLI.
# (The namespace demo with real TCP and UDP backends grows here with the data paths.)
set -euo pipefail
build=${1:-build}
ppinject="$build/ppinject"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "PROXY v1, as nginx or HAProxy would receive it"
printf 'PROXY TCP4 192.0.2.10 203.0.113.5 42300 443\r\nGET / HTTP/1.1\r\n' | "$ppinject" decode

step "PROXY v2 (28 bytes, INET, DGRAM): what the UDP data path puts in front of a datagram"
echo '0d0a0d0a000d0a515549540a 21 12 000c c000020a cb007105 a53c 0035' | "$ppinject" decode --hex

step "SPP (38 bytes): Cloudflare's Simple Proxy Protocol, on every datagram"
echo '56ec 00000000000000000000ffffc000020a 00000000000000000000ffffcb007105 a53c 0035' |
  "$ppinject" decode --hex --json

step "A forged header is refused with its reason"
echo '0d0a0d0a000d0a515549540a 21 11 0008 c000020a cb007105' | "$ppinject" decode --hex || true
