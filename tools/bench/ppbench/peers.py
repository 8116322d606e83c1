"""What runs in the bench's hosts, and the cases that reach each: the sinks (ppbench_load
server), ppinject's TCP and UDP services, HAProxy send-proxy-v2 and nginx proxy_protocol,
their configs, and the address each case's client dials."""
import contextlib
import json
import os

from .procs import sh
from .topology import (BACKEND, DNAT_TCP, FRONT, INLINE_TCP, LO, NS_BACKEND, NS_FRONT,
                       PLAIN_FRONT, UDP_SINK, XDP_FRONT)

# What every nginx and HAProxy of the project shares (the tests' receivers too).
PEERS_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "..", "..", "peers"))

# TCP ports: the sinks in the backend, and what each case's client dials.
SINK_PLAIN, SINK_PROXY = 9000, 9001
HAPROXY, NGINX = "haproxy send-proxy-v2", "nginx proxy_protocol"
TCP_CASES = [  # name, address the client dials, proxy process key
    ("direct", f"{BACKEND}:{SINK_PLAIN}", None),
    ("ppinject sockmap", f"{FRONT}:9101", "ppinject-tcp"),
    ("ppinject splice", f"{FRONT}:9102", "ppinject-tcp"),
    ("ppinject copy", f"{FRONT}:9103", "ppinject-tcp"),
    (HAPROXY, f"{FRONT}:9201", "haproxy"),
    (NGINX, f"{FRONT}:9301", "nginx"),
]
# Bulk only: the default mode with tcp_congestion = "cubic" on the daemon's own sockets,
# everything else (client, sinks, HAProxy, nginx) with the namespaces' congestion control.
SPLICE_CUBIC = ("ppinject splice, tcp_congestion cubic", f"{FRONT}:9104", "ppinject-tcp")
TCP_BULK_CASES = TCP_CASES[:4] + [SPLICE_CUBIC] + TCP_CASES[4:]
# Inline TCP (over the veths only, inside inline_attached()): "dnat" is plain forwarding
# through the front's nftables DNAT, in by f2 where no tc program runs (the limit, and the
# base of the inline ratios); "inline" is the same DNAT in by f0, where ppinject's inline
# programs write the v2 header into the stream for the PROXY sink. No process of ours
# relays either: their CPU is the machine's.
DNAT, INLINE = "dnat", "ppinject inline"
INLINE_CASES = [
    (DNAT, f"{PLAIN_FRONT}:{DNAT_TCP}", None),
    (INLINE, f"{FRONT}:{INLINE_TCP}", None),
]


def tcp_lo_cases(host_cc):
    """On loopback in the front namespace, the default mode against the peers (the modes
    are compared over the veths): port + 10, sinks on 127.0.0.1. There the default mode's
    legs use cubic (their peers are on a loopback address), and port 9114 names the
    namespaces' own congestion control instead (tcp_congestion = <it>), to show what that
    would give."""
    out = []
    for n, a, p in TCP_BULK_CASES:
        if n in ("ppinject sockmap", "ppinject copy"):
            continue
        if n == SPLICE_CUBIC[0]:
            n = f"ppinject splice, tcp_congestion {host_cc} (the namespaces')"
        out.append((n, f"{LO}:{SINK_PLAIN if p is None else int(a.rsplit(':', 1)[1]) + 10}", p))
    return out


UDP_CASES = [  # name, address the client sends to, proxy process key
    ("no injector (DNAT only)", f"{PLAIN_FRONT}:9600", None),
    ("ppinject first", f"{FRONT}:9601", "ppinject-udp"),
    ("ppinject every", f"{FRONT}:9602", "ppinject-udp"),
    ("ppinject spp", f"{FRONT}:9603", "ppinject-udp"),
    ("nginx udp proxy_protocol", f"{PLAIN_FRONT}:9604", "nginx"),
    # attach = "xdp" on f3 (native: veth); 9610 is DNAT only with the XDP program there.
    ("xdp attached, no service (DNAT only)", f"{XDP_FRONT}:9610", "ppinject-udp"),
    ("ppinject xdp first", f"{XDP_FRONT}:9611", "ppinject-udp"),
    ("ppinject xdp every", f"{XDP_FRONT}:9612", "ppinject-udp"),
    ("ppinject xdp spp", f"{XDP_FRONT}:9613", "ppinject-udp"),
]

# ppinject's pin roots under /sys/fs/bpf, one per run, each run's config in ROOT.toml;
# cleanup detaches what a run left in them.
PIN_ROOTS = ("ppbench-tcp", "ppbench-udp", "ppbench-inline")


def start_sinks(bench):
    """A plain and a PROXY-stripping sink in the backend (veths) and on loopback."""
    for where, ns, addr in (("sink", NS_BACKEND, BACKEND), ("sink-lo", NS_FRONT, LO)):
        for kind, port, extra in (("plain", SINK_PLAIN, []), ("proxy", SINK_PROXY, ["--proxy"])):
            bench.procs.spawn(f"{where}-{kind}",
                              [bench.load, "server", "--listen", f"{addr}:{port}"] + extra
                              + ["--seconds", "600"], ns=ns)
        for kind, port in (("plain", SINK_PLAIN), ("proxy", SINK_PROXY)):
            bench.procs.wait_tcp_listen(f"{where}-{kind}", ns, port)


def start_ppinject_tcp(bench):
    services = ""
    for at, to, lo in ((FRONT, BACKEND, ""), (LO, LO, "lo-")):
        named = bench.host_cc if lo else "cubic"  # port 9104/9114 (see tcp_lo_cases)
        for port, mode, extra in ((9101, "sockmap", ""), (9102, "splice", ""),
                                  (9103, "copy", ""),
                                  (9104, "splice", f'tcp_congestion = "{named}"\n')):
            if lo and mode != "splice":
                continue
            name = f"bench-{lo}{mode}" + (f"-{named}" if extra else "")
            services += (f'\n[[service]]\nname = "{name}"\nprotocol = "tcp"\n'
                         f'listen = "{at}:{port + (10 if lo else 0)}"\n'
                         f'backends = ["{to}:{SINK_PROXY}"]\n'
                         f'header = "v2"\nrelay = "{mode}"\n{extra}')
    cfg = bench.write("ppbench-tcp.toml",
                      '[global]\nbpffs = "/sys/fs/bpf/ppbench-tcp"\n' + services)
    bench.procs.spawn("ppinject-tcp", ["nsenter", f"--net=/run/netns/{NS_FRONT}", bench.ppinject,
                                       "run", "--config", cfg])
    bench.procs.wait_log("ppinject-tcp", "running")


def start_ppinject_udp(bench):
    cfg = bench.write("ppbench-udp.toml", f"""[global]
bpffs = "/sys/fs/bpf/ppbench-udp"
udp_flow_timeout = "1s"  # 10x a flow's gap in a run, under the gap between runs: every run's flows are new
udp_max_flows = 65536

[[service]]
name = "bench-first"
protocol = "udp"
listen = "{FRONT}:9601"
interfaces = ["f0"]
header = "v2"
udp_header = "first"

[[service]]
name = "bench-every"
protocol = "udp"
listen = "{FRONT}:9602"
interfaces = ["f0"]
header = "v2"
udp_header = "every"

[[service]]
name = "bench-spp"
protocol = "udp"
listen = "{FRONT}:9603"
interfaces = ["f0"]
header = "spp"

[[service]]
name = "bench-xdp-first"
protocol = "udp"
listen = "{XDP_FRONT}:9611"
interfaces = ["f3"]
attach = "xdp"
header = "v2"
udp_header = "first"

[[service]]
name = "bench-xdp-every"
protocol = "udp"
listen = "{XDP_FRONT}:9612"
interfaces = ["f3"]
attach = "xdp"
header = "v2"
udp_header = "every"

[[service]]
name = "bench-xdp-spp"
protocol = "udp"
listen = "{XDP_FRONT}:9613"
interfaces = ["f3"]
attach = "xdp"
header = "spp"
""")
    bench.procs.spawn("ppinject-udp", ["nsenter", f"--net=/run/netns/{NS_FRONT}", bench.ppinject,
                                       "run", "--config", cfg])
    bench.procs.wait_log("ppinject-udp", "running")


@contextlib.contextmanager
def inline_attached(bench):
    """ppinject with an inline v2 service on f0 for the DNAT'd 192.0.2.1:9401, for one
    scenario: attached only while the scenario's veth cases run, so that the UDP scenario's
    run (whose programs share f0's clsact qdisc) never overlaps it. The relay's, HAProxy's
    and nginx's cases in those scenarios cross f0 too, and pay the programs' lookup."""
    cfg = bench.write("ppbench-inline.toml", f"""[global]
bpffs = "/sys/fs/bpf/ppbench-inline"

[[service]]
name = "bench-inline"
protocol = "tcp"
mode = "inline"
interfaces = ["f0"]
listen = "{FRONT}:{INLINE_TCP}"
header = "v2"
""")
    bench.procs.spawn("ppinject-inline", ["nsenter", f"--net=/run/netns/{NS_FRONT}",
                                          bench.ppinject, "run", "--config", cfg])
    try:
        bench.procs.wait_log("ppinject-inline", "running")
        yield
    finally:
        bench.procs.stop("ppinject-inline")


def inline_counters(bench):
    """The inline service's counters (ppinject status --json) while it is attached, and
    the connection states left in its table (inline_conns_left)."""
    doc = json.loads(sh([bench.ppinject, "status", "--json", "--bpffs",
                         "/sys/fs/bpf/ppbench-inline"]))
    out = dict(next(s for s in doc["services"] if s["name"] == "bench-inline")["counters"])
    out["inline_conns_left"] = doc["inline_conns"]["count"]
    return out


def sockmap_counters(bench):
    """The sockmap service's TCP counters (ppinject status --json), summed over both ways."""
    out = sh([bench.ppinject, "status", "--json", "--bpffs", "/sys/fs/bpf/ppbench-tcp"])
    svc = next(s for s in json.loads(out)["services"] if s["name"] == "bench-sockmap")
    c = svc["counters"]
    return {"relayed": c["tcp_bytes_to_backend"] + c["tcp_bytes_to_client"],
            "held": c["tcp_bytes_held"], "cut": c["tcp_overlap_cut"]}


def start_haproxy(bench):
    # After tools/peers/haproxy.cfg: one thread, maxconn 8000, the timeouts.
    cfg = bench.write("haproxy.cfg", f"""listen bench
    bind {FRONT}:9201
    server sink {BACKEND}:{SINK_PROXY} send-proxy-v2
listen bench-lo
    bind {LO}:9211
    server sink {LO}:{SINK_PROXY} send-proxy-v2
""")
    shared = os.path.join(PEERS_DIR, "haproxy.cfg")
    bench.procs.spawn("haproxy", ["/usr/sbin/haproxy", "-f", shared, "-f", cfg, "-db"],
                      ns=NS_FRONT)
    bench.procs.wait_tcp_listen("haproxy", NS_FRONT, 9201)


def start_nginx(bench):
    d = bench.tmp
    # A master and one worker (tools/peers/nginx.conf: worker_processes 1): the proxy CPU
    # figures count both.
    cfg = bench.write("nginx.conf", f"""include {PEERS_DIR}/nginx.conf;
master_process on;
error_log {d}/nginx-error.log warn;
stream {{
    server {{
        listen {FRONT}:9301;
        proxy_pass {BACKEND}:{SINK_PROXY};
        proxy_protocol on;
        proxy_half_close on;
        proxy_timeout 60s;
    }}
    server {{
        listen {LO}:9311;
        proxy_pass {LO}:{SINK_PROXY};
        proxy_protocol on;
        proxy_half_close on;
        proxy_timeout 60s;
    }}
    server {{
        listen {PLAIN_FRONT}:9604 udp;
        proxy_pass {BACKEND}:{UDP_SINK};
        proxy_protocol on;
        proxy_responses 0;
        proxy_timeout 60s;
    }}
}}
""")
    bench.procs.spawn("nginx", ["/usr/sbin/nginx", "-p", d + "/", "-c", cfg, "-e",
                                f"{d}/nginx-error.log"], ns=NS_FRONT)
    bench.procs.wait_tcp_listen("nginx", NS_FRONT, 9301)


def start_tcp_peers(bench):
    start_sinks(bench)
    start_ppinject_tcp(bench)
    start_haproxy(bench)


# The peers a scenario may need (scenarios.scenario(needs=...)), in the order they start.
START = (("tcp", start_tcp_peers), ("nginx", start_nginx))
