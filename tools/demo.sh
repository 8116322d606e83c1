#!/usr/bin/env bash
# make demo: ppinject between a client and backends, in network namespaces.
#
#   ppd-client                ppd-front (ppinject)                  ppd-backend
#   c0 192.0.2.2  --------->  f0 192.0.2.1   f1 198.51.100.1  --->  b0 198.51.100.2
#      2001:db8:1::2             2001:db8:1::1  2001:db8:2::1          2001:db8:2::2
#                             UDP: tc on f0, then nftables DNAT + masquerade
#                             TCP: ppinject's acceptor connects to nginx
#                             203.0.113.0/24 is local: sk_lookup steers it to ppinject
#
# The backends' sockets see the front (198.51.100.1) as the peer of everything; the header
# ppinject wrote tells them the client's own address. tools/topology.sh builds the hosts,
# tools/peers/nginx.conf is what nginx shares with the bench's and the tests'.
set -euo pipefail
build=${1:-build}
ppinject=$(realpath "$build/ppinject")
tools=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
work=$(mktemp -d /tmp/ppinject-demo.XXXXXX)
pids=()

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$tools/topology.sh" down ppd || true
  rm -rf "$work"
}
trap cleanup EXIT

step "Namespaces: client, front (ppinject), backend"
"$tools/topology.sh" down ppd  # what an interrupted run left
# Every address of 203.0.113.0/24 is delivered locally on the front; ppinject's sk_lookup
# program hands connections for them to its acceptor, whatever address was dialled.
"$tools/topology.sh" up ppd --ipv6 --local 203.0.113.0/24
ip netns exec ppd-front nft -f - <<'NFT'
table inet demo {
  chain pre {
    type nat hook prerouting priority dstnat;
    iifname "f0" ip daddr 192.0.2.1 udp dport { 5353, 5354 } dnat ip to 198.51.100.2
    iifname "f0" ip6 daddr 2001:db8:1::1 udp dport { 5353, 5354 } dnat ip6 to 2001:db8:2::2
  }
  chain post { type nat hook postrouting priority srcnat; oifname "f1" masquerade; }
}
NFT
echo "client 192.0.2.2 / 2001:db8:1::2  ->  front 192.0.2.1 / 2001:db8:1::1  ->  backend 198.51.100.2 / 2001:db8:2::2"

cat >"$work/ppinject.toml" <<TOML
[global]
bpffs = "/sys/fs/bpf/ppinject-demo"
udp_flow_timeout = "30s"

[[service]]
name = "dns-v2"
protocol = "udp"
listen = ["192.0.2.1:5353", "[2001:db8:1::1]:5353"]
interfaces = ["f0"]
header = "v2"

[[service]]
name = "game-spp"
protocol = "udp"
listen = ["192.0.2.1:5354", "[2001:db8:1::1]:5354"]
interfaces = ["f0"]
header = "spp"

[[service]]
name = "web-v1"
protocol = "tcp"
listen = ["192.0.2.1:8080", "[2001:db8:1::1]:8080"]
backends = ["198.51.100.2:8080"]
header = "v1"

[[service]]
name = "web-v2"
protocol = "tcp"
listen = "203.0.113.0/24:443"
transparent = true
backends = ["[2001:db8:2::2]:8080"]
header = "v2"
TOML

step "ppinject check"
"$ppinject" check --config "$work/ppinject.toml"

step "ppinject run (in the front namespace)"
nsenter --net=/run/netns/ppd-front "$ppinject" run --config "$work/ppinject.toml" \
  2>"$work/run.log" &
pids+=($!)
for _ in $(seq 100); do grep -q running "$work/run.log" && break; sleep 0.05; done
cat "$work/run.log"

# Backend: every datagram goes to `ppinject decode`, which prints the header it starts with.
for port in 5353 5354; do
  ip netns exec ppd-backend socat -u UDP6-RECVFROM:$port,ipv6only=0,fork \
    SYSTEM:"{ $ppinject decode 2>/dev/null || echo '(no header: a later datagram of a live flow)'; echo; } >>$work/backend-$port.txt" &
  pids+=($!)
done
sleep 0.3

step "Client sends from its own address; the backend decodes the header (PROXY v2, first datagram of each flow)"
# One datagram at a time: the backend's socat hands each to its own `ppinject decode`.
ip netns exec ppd-client sh -c 'echo -n "hello over IPv4" | socat -u - UDP4-SENDTO:192.0.2.1:5353,sourceport=40001'
sleep 0.3
ip netns exec ppd-client sh -c 'echo -n "hello over IPv6" | socat -u - UDP6-SENDTO:[2001:db8:1::1]:5353,sourceport=40002'
sleep 0.3
ip netns exec ppd-client sh -c 'echo -n "same flow, no header" | socat -u - UDP4-SENDTO:192.0.2.1:5353,sourceport=40001'
sleep 0.5
cat "$work/backend-5353.txt"

step "SPP: a header on every datagram"
ip netns exec ppd-client sh -c 'echo -n "spp one" | socat -u - UDP4-SENDTO:192.0.2.1:5354,sourceport=40003'
sleep 0.3
cat "$work/backend-5354.txt"

step "TCP: nginx (stream, listen ... proxy_protocol) behind ppinject"
# nginx answers each connection with what it decoded from the PROXY header, and logs it.
cat >"$work/nginx.conf" <<NGINX
include $tools/peers/nginx.conf;
master_process off;
error_log $work/nginx-error.log;
stream {
  log_format seen 'nginx: client \$proxy_protocol_addr port \$proxy_protocol_port, dialled \$proxy_protocol_server_addr:\$proxy_protocol_server_port, socket peer \$remote_addr';
  access_log $work/nginx-access.log seen;
  server {
    listen 198.51.100.2:8080 proxy_protocol;
    listen [2001:db8:2::2]:8080 proxy_protocol;
    return "nginx decoded client \$proxy_protocol_addr port \$proxy_protocol_port (its socket peer is \$remote_addr)\n";
  }
}
NGINX
ip netns exec ppd-backend nginx -p "$work/" -c "$work/nginx.conf" -e "$work/nginx-error.log" &
pids+=($!)
for _ in $(seq 100); do
  ip netns exec ppd-backend ss -ltn | grep -q 198.51.100.2:8080 && break
  sleep 0.05
done
echo "client 192.0.2.2 -> 192.0.2.1:8080 (PROXY v1):"
ip netns exec ppd-client socat -u TCP4:192.0.2.1:8080,sourceport=41001 -
echo "client 2001:db8:1::2 -> [2001:db8:1::1]:8080 (PROXY v1, TCP6):"
ip netns exec ppd-client socat -u TCP6:[2001:db8:1::1]:8080,sourceport=41002 -
echo "client 192.0.2.2 -> 203.0.113.77:443, steered by sk_lookup (PROXY v2 to nginx over IPv6):"
ip netns exec ppd-client socat -u TCP4:203.0.113.77:443,sourceport=41003 -
sleep 0.2
cat "$work/nginx-access.log"

step "ppinject status (from the pinned maps)"
"$ppinject" status --bpffs /sys/fs/bpf/ppinject-demo

step "ppinject flows"
"$ppinject" flows --bpffs /sys/fs/bpf/ppinject-demo

step "Stop: SIGTERM detaches and unpins"
kill -TERM "${pids[0]}"
wait "${pids[0]}" || true
tail -n 4 "$work/run.log"
echo "tc filters left on f0: $(ip netns exec ppd-front tc filter show dev f0 ingress | wc -l)"
