"""The bench's hosts: client, front and backend namespaces joined by veth pairs, and the
front's DNAT for UDP.

    ppb-client                 ppb-front                              ppb-backend
    c0 192.0.2.2    -------->  f0 192.0.2.1    f1 198.51.100.1  ----> b0 198.51.100.2
    c2 203.0.113.2  -------->  f2 203.0.113.1
                               UDP: nftables DNAT 192.0.2.1:9601-9603 (ppinject's tc
                               programs on f0) and 203.0.113.1:9600 (f2, no tc at all)
                               -> 198.51.100.2:9500
"""
import os
import subprocess

from .procs import BenchError, sh

NS_CLIENT, NS_FRONT, NS_BACKEND = "ppb-client", "ppb-front", "ppb-backend"
FRONT, BACKEND = "192.0.2.1", "198.51.100.2"
PLAIN_FRONT = "203.0.113.1"  # the front's address on f2, where no tc program runs
LO = "127.0.0.1"
UDP_SINK = 9500  # the UDP sink's port in the backend, where the DNAT rules send


def up(tmp, congestion):
    """Builds the hosts; returns the TCP congestion control their sockets start with."""
    for ns in (NS_CLIENT, NS_FRONT, NS_BACKEND):
        if os.path.exists(f"/run/netns/{ns}"):
            raise BenchError(f"namespace {ns} exists (another bench running, or a leftover: "
                             f"ip netns del {ns})")
    for ns in (NS_CLIENT, NS_FRONT, NS_BACKEND):
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "set", "lo", "up"], ns=ns)
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
    host_cc = sh(["sysctl", "-n", "net.ipv4.tcp_congestion_control"], ns=NS_FRONT).strip()
    sh(["ip", "link", "add", "c0", "netns", NS_CLIENT, "type", "veth", "peer", "name", "f0",
        "netns", NS_FRONT])
    sh(["ip", "link", "add", "c2", "netns", NS_CLIENT, "type", "veth", "peer", "name", "f2",
        "netns", NS_FRONT])
    sh(["ip", "link", "add", "f1", "netns", NS_FRONT, "type", "veth", "peer", "name", "b0",
        "netns", NS_BACKEND])
    for ns, dev, addr in ((NS_CLIENT, "c0", "192.0.2.2/24"), (NS_FRONT, "f0", "192.0.2.1/24"),
                          (NS_CLIENT, "c2", "203.0.113.2/24"),
                          (NS_FRONT, "f2", f"{PLAIN_FRONT}/24"),
                          (NS_FRONT, "f1", "198.51.100.1/24"),
                          (NS_BACKEND, "b0", "198.51.100.2/24")):
        sh(["ip", "addr", "add", addr, "dev", dev], ns=ns)
        sh(["ip", "link", "set", dev, "up"], ns=ns)
    sh(["ip", "route", "add", "default", "via", FRONT], ns=NS_CLIENT)
    sh(["ip", "route", "add", "default", "via", "198.51.100.1"], ns=NS_BACKEND)
    sh(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=NS_FRONT)
    nft = (
        "table ip ppbench {\n"
        "  chain pre { type nat hook prerouting priority dstnat;\n"
        f"    iifname \"f0\" ip daddr {FRONT} udp dport 9601-9603 dnat to {BACKEND}:{UDP_SINK}\n"
        f"    iifname \"f2\" ip daddr {PLAIN_FRONT} udp dport 9600 dnat to {BACKEND}:{UDP_SINK}\n"
        "  }\n"
        "  chain post { type nat hook postrouting priority srcnat;\n"
        "    oifname \"f1\" ip protocol udp masquerade\n"
        "  }\n"
        "}\n")
    nft_path = os.path.join(tmp, "nat.nft")
    with open(nft_path, "w") as f:
        f.write(nft)
    sh(["nft", "-f", nft_path], ns=NS_FRONT)
    return host_cc


def down():
    """Removes the hosts (their veths and nftables table go with them); never raises."""
    for ns in (NS_CLIENT, NS_FRONT, NS_BACKEND):
        if os.path.exists(f"/run/netns/{ns}"):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
