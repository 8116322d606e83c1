"""The bench's hosts: tools/topology.sh's client, front and backend under the prefix ppb,
with the second client link (c2/f2), plus what only the bench sets in them.

    ppb-client                 ppb-front                              ppb-backend
    c0 192.0.2.2    -------->  f0 192.0.2.1    f1 198.51.100.1  ----> b0 198.51.100.2
    c2 203.0.113.2  -------->  f2 203.0.113.1
    c3 203.0.113.130 ------->  f3 203.0.113.129
                               UDP: nftables DNAT 192.0.2.1:9601-9603 (ppinject's tc
                               programs on f0), 203.0.113.129:9610-9613 (its XDP program
                               on f3; 9610 is no service) and 203.0.113.1:9600 (f2, no tc
                               at all) -> 198.51.100.2:9500
                               TCP: 203.0.113.1:9400 (f2) -> 198.51.100.2:9000 and
                               192.0.2.1:9401 (f0, ppinject inline) -> 198.51.100.2:9001
"""
import os

from .procs import BenchError, log, sh

PREFIX = "ppb"
NS_CLIENT, NS_FRONT, NS_BACKEND = f"{PREFIX}-client", f"{PREFIX}-front", f"{PREFIX}-backend"
# Addresses tools/topology.sh gives them.
FRONT, BACKEND = "192.0.2.1", "198.51.100.2"
PLAIN_FRONT = "203.0.113.1"  # the front's address on f2, where no tc program runs
XDP_FRONT = "203.0.113.129"  # the front's address on f3, where ppinject runs at XDP
LO = "127.0.0.1"
UDP_SINK = 9500  # the UDP sink's port in the backend, where the DNAT rules send
# Inline TCP: the ports the front DNATs to the backend's sinks (9000 plain, 9001 PROXY):
# DNAT_TCP on f2 (no tc program: plain forwarding), INLINE_TCP on f0 (ppinject's inline
# programs there).
DNAT_TCP, INLINE_TCP = 9400, 9401

TOPOLOGY_SH = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                           "..", "..", "topology.sh"))


def up(tmp, congestion):
    """Builds the hosts; returns the TCP congestion control their sockets start with."""
    sh([TOPOLOGY_SH, "up", PREFIX, "--second-link", "--third-link"])
    for ns in (NS_CLIENT, NS_FRONT, NS_BACKEND):
        # Many short connections: reuse TIME_WAIT ports for new outgoing connections.
        sh(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1",
            "net.ipv4.ip_local_port_range=10000 60999"], ns=ns)
        # A new namespace starts with the host's congestion control; --tcp-congestion
        # changes it for every case alike, inside the bench's namespaces only.
        if congestion:
            try:
                sh(["sysctl", "-qw", f"net.ipv4.tcp_congestion_control={congestion}"], ns=ns)
            except BenchError as e:
                raise BenchError(f"{e} (a namespace may only choose from the host's "
                                 "net.ipv4.tcp_allowed_congestion_control)") from None
    nft = (
        "table ip ppbench {\n"
        "  chain pre { type nat hook prerouting priority dstnat;\n"
        f"    iifname \"f0\" ip daddr {FRONT} udp dport 9601-9603 dnat to {BACKEND}:{UDP_SINK}\n"
        f"    iifname \"f2\" ip daddr {PLAIN_FRONT} udp dport 9600 dnat to {BACKEND}:{UDP_SINK}\n"
        f"    iifname \"f3\" ip daddr {XDP_FRONT} udp dport 9610-9613 dnat to {BACKEND}:{UDP_SINK}\n"
        # TCP, no masquerade: the backend routes its replies back through the front.
        f"    iifname \"f2\" ip daddr {PLAIN_FRONT} tcp dport {DNAT_TCP} dnat to {BACKEND}:9000\n"
        f"    iifname \"f0\" ip daddr {FRONT} tcp dport {INLINE_TCP} dnat to {BACKEND}:9001\n"
        "  }\n"
        "  chain post { type nat hook postrouting priority srcnat;\n"
        "    oifname \"f1\" ip protocol udp masquerade\n"
        "  }\n"
        "}\n")
    nft_path = os.path.join(tmp, "nat.nft")
    with open(nft_path, "w") as f:
        f.write(nft)
    sh(["nft", "-f", nft_path], ns=NS_FRONT)
    return sh(["sysctl", "-n", "net.ipv4.tcp_congestion_control"], ns=NS_FRONT).strip()


def down():
    """Removes the hosts (their veths and nftables table go with them); never raises."""
    try:
        sh([TOPOLOGY_SH, "down", PREFIX])
    except Exception as e:  # keep cleaning
        log(f"removing the namespaces: {e}")
