#!/usr/bin/env bash
# The client, front and backend hosts that `make demo` (tools/demo.sh) and `make bench`
# (tools/bench/run.py) run in: three network namespaces joined by veth pairs, documentation
# addresses only. (The C++ namespace tests build the same hosts in tests/support/hosts.cpp.)
#
#   PREFIX-client              PREFIX-front                             PREFIX-backend
#   c0 192.0.2.2     ------->  f0 192.0.2.1      f1 198.51.100.1  ----> b0 198.51.100.2
#      2001:db8:1::2              2001:db8:1::1     2001:db8:2::1          2001:db8:2::2
#   c2 203.0.113.2   ------->  f2 203.0.113.1
#   c3 203.0.113.130 ------->  f3 203.0.113.129    (a /25 inside c2/f2's /24)
#
# Client and backend route everything through the front, which forwards.
#
# Usage: tools/topology.sh up PREFIX [--ipv6] [--second-link] [--third-link] [--local CIDR]...
#        tools/topology.sh down PREFIX
#   --ipv6         the IPv6 addresses and routes too (on c0/f0 and f1/b0)
#   --second-link  the second client link c2/f2 (IPv4 only)
#   --third-link   a third client link c3/f3 (IPv4 only, 203.0.113.128/25: the more
#                  specific route wins over c2/f2's /24)
#   --local CIDR   the front delivers every address of CIDR locally, whatever was dialled
#                  (sk_lookup sees only packets delivered locally); repeatable
# `up` refuses when a namespace PREFIX-* exists and removes what it made if it fails;
# `down` removes the namespaces, and with them their veths, routes and nftables tables.
set -euo pipefail

usage() {
	# shellcheck disable=SC2016 # the backquotes are text to match, not a command
	sed -n 's/^# \{0,1\}//; /^Usage:/,/^`down`/p' "${BASH_SOURCE[0]}" >&2
	exit 2
}
die() {
	echo "topology: $*" >&2
	exit 1
}

[ $# -ge 2 ] || usage
verb=$1 prefix=$2
shift 2
[[ $prefix =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "prefix '$prefix': lower-case letters, digits and '-' only"
namespaces=("$prefix-client" "$prefix-front" "$prefix-backend")
client=${namespaces[0]} front=${namespaces[1]} backend=${namespaces[2]}

down() {
	local ns rc=0
	for ns in "${namespaces[@]}"; do
		if [ -e "/run/netns/$ns" ]; then ip netns del "$ns" || rc=1; fi
	done
	return $rc
}

# addr NS DEV IPV4 IPV6: IPv6 (when asked for, and "-" for none) without duplicate address
# detection, which would hold the address back while the first packets are sent.
addr() {
	ip -n "$1" addr add "$3" dev "$2"
	if [ "$ipv6" = 1 ] && [ "$4" != - ]; then ip -n "$1" addr add "$4" dev "$2" nodad; fi
}

up() {
	ipv6=0
	local second=0 third=0 locals=() ns l e
	while [ $# -gt 0 ]; do
		case $1 in
		--ipv6) ipv6=1 ;;
		--second-link) second=1 ;;
		--third-link) third=1 ;;
		--local) [ $# -ge 2 ] || usage; locals+=("$2"); shift ;;
		*) usage ;;
		esac
		shift
	done
	for ns in "${namespaces[@]}"; do
		[ ! -e "/run/netns/$ns" ] ||
			die "namespace $ns exists (another run, or a leftover: $0 down $prefix)"
	done
	trap 'rc=$?; [ $rc = 0 ] || down; exit $rc' EXIT
	for ns in "${namespaces[@]}"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		# Before the veths exist: their link-local addresses skip duplicate address
		# detection too.
		[ "$ipv6" = 0 ] || ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
			net.ipv6.conf.default.accept_dad=0
	done
	# One veth pair a line: namespace, interface, IPv4, IPv6 of one end, then of the other.
	local links=(
		"$client c0 192.0.2.2/24 2001:db8:1::2/64 $front f0 192.0.2.1/24 2001:db8:1::1/64"
		"$front f1 198.51.100.1/24 2001:db8:2::1/64 $backend b0 198.51.100.2/24 2001:db8:2::2/64"
	)
	[ "$second" = 0 ] || links+=("$client c2 203.0.113.2/24 - $front f2 203.0.113.1/24 -")
	[ "$third" = 0 ] || links+=("$client c3 203.0.113.130/25 - $front f3 203.0.113.129/25 -")
	# Links up before their addresses: an IPv6 address added to a link that is still down
	# left the first neighbour solicitation for it unanswered (the first connection waited 1 s).
	for l in "${links[@]}"; do
		read -r -a e <<<"$l"
		ip link add "${e[1]}" netns "${e[0]}" type veth peer name "${e[5]}" netns "${e[4]}"
		ip -n "${e[0]}" link set "${e[1]}" up
		ip -n "${e[4]}" link set "${e[5]}" up
	done
	for l in "${links[@]}"; do
		read -r -a e <<<"$l"
		addr "${e[@]:0:4}"
		addr "${e[@]:4:4}"
	done
	ip -n "$client" route add default via 192.0.2.1
	ip -n "$backend" route add default via 198.51.100.1
	ip netns exec "$front" sysctl -qw net.ipv4.ip_forward=1
	if [ "$ipv6" = 1 ]; then
		ip -n "$client" -6 route add default via 2001:db8:1::1
		ip -n "$backend" -6 route add default via 2001:db8:2::1
		ip netns exec "$front" sysctl -qw net.ipv6.conf.all.forwarding=1
	fi
	for l in "${locals[@]}"; do ip -n "$front" route add local "$l" dev lo; done
}

case $verb in
up) up "$@" ;;
down) [ $# -eq 0 ] || usage; down ;;
*) usage ;;
esac
