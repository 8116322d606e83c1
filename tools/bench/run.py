#!/usr/bin/env python3
"""make bench: ppinject beside a direct connection, HAProxy and nginx, in one run.

    ppb-client                 ppb-front                              ppb-backend
    c0 192.0.2.2    -------->  f0 192.0.2.1    f1 198.51.100.1  ----> b0 198.51.100.2
    c2 203.0.113.2  -------->  f2 203.0.113.1
                               ppinject / haproxy / nginx (TCP) listen on 192.0.2.1
                               UDP: nftables DNAT 192.0.2.1:9601-9603 (ppinject's tc
                               programs on f0) and 203.0.113.1:9600 (f2, no tc at all)
                               -> 198.51.100.2:9500; nginx's UDP relay on 203.0.113.1:9604

Three network namespaces joined by veth. "direct" is the client connecting to the
backend's own address, routed (forwarded) by the front, so every case crosses the same
two veth pairs. The TCP bulk and connection-rate scenarios run a second time on loopback
inside the front namespace (client, proxies and sinks on 127.0.0.1), the setting the
issue's own HAProxy and nginx figures were taken in. The UDP baseline enters the front by
its own veth pair (c2/f2), which has no clsact qdisc, so it runs beside ppinject's cases
without stopping ppinject between runs. Everything the run creates (namespaces,
processes, pins, temp files) is removed at the end, also on error or Ctrl-C; processes
are stopped by the PIDs we started. Results: build/bench/results.json, results.md and
results.png.

Usage: run.py BUILD_DIR [--quick]
              [--only tcp_bulk,tcp_bulk_lo,tcp_rate,tcp_rate_lo,tcp_conc,udp,bpf]
              [--tcp-congestion NAME]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

NS_CLIENT, NS_FRONT, NS_BACKEND = "ppb-client", "ppb-front", "ppb-backend"
FRONT, BACKEND = "192.0.2.1", "198.51.100.2"
PLAIN_FRONT = "203.0.113.1"  # the front's address on f2, where no tc program runs
GIB = 1 << 30
MIB = 1 << 20

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
# On loopback in the front namespace, the default mode against the peers (the modes are
# compared over the veths): port + 10, sinks on 127.0.0.1. There the default mode's legs
# use cubic (their peers are on a loopback address), and port 9114 names the namespaces'
# own congestion control instead (tcp_congestion = <it>), to show what that would give.
LO = "127.0.0.1"


def tcp_lo_cases(host_cc):
    out = []
    for n, a, p in TCP_BULK_CASES:
        if n in ("ppinject sockmap", "ppinject copy"):
            continue
        if n == SPLICE_CUBIC[0]:
            n = f"ppinject splice, tcp_congestion {host_cc} (the namespaces')"
        out.append((n, f"{LO}:{SINK_PLAIN if p is None else int(a.rsplit(':', 1)[1]) + 10}", p))
    return out

UDP_SINK = 9500
UDP_CASES = [  # name, address the client sends to, proxy process key
    ("no injector (DNAT only)", f"{PLAIN_FRONT}:9600", None),
    ("ppinject first", f"{FRONT}:9601", "ppinject-udp"),
    ("ppinject every", f"{FRONT}:9602", "ppinject-udp"),
    ("ppinject spp", f"{FRONT}:9603", "ppinject-udp"),
    ("nginx udp proxy_protocol", f"{PLAIN_FRONT}:9604", "nginx"),
]
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


class BenchError(Exception):
    pass


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(cmd, check=True, ns=None, capture=True, timeout=30):
    """Run a short command (optionally inside a namespace); return stdout."""
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise BenchError(f"{' '.join(cmd)}: exit {r.returncode}: {(r.stderr or '').strip()}")
    return r.stdout if capture else ""


# --- CPU accounting ----------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_cpu_s():
    """Busy CPU seconds of the whole machine, all cores (user, nice, system, irq,
    softirq, steal: kernel workers and softirq included)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def process_tree_cpu_s(pid):
    """utime + stime of a process (all its threads) and its descendants."""
    if pid is None:
        return 0.0
    children = {}
    stats = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rfind(")") + 2:].split()
        ppid = int(fields[1])
        stats[int(d)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        children.setdefault(ppid, []).append(int(d))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total


class CpuWindow:
    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.m0, self.p0, self.t0 = machine_cpu_s(), process_tree_cpu_s(self.pid), time.monotonic()
        return self

    def __exit__(self, *exc):
        self.machine = machine_cpu_s() - self.m0
        self.proc = process_tree_cpu_s(self.pid) - self.p0 if self.pid else None
        self.wall = time.monotonic() - self.t0
        return False


# --- The bench ---------------------------------------------------------------------------


class Bench:
    def __init__(self, build, quick, congestion=None):
        self.build = os.path.abspath(build)
        self.quick = quick
        self.congestion = congestion
        self.host_cc = None  # the namespaces' congestion control, known after setup()
        self.load = os.path.join(self.build, "ppbench_load")
        self.ppinject = os.path.join(self.build, "ppinject")
        self.out = os.path.join(self.build, "bench")
        os.makedirs(self.out, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="ppbench.")
        self.procs = {}  # key -> Popen
        self.logs = {}
        self.results = {}
        self.notes = []
        self.start = time.monotonic()

    # -- processes --
    def spawn(self, key, cmd, ns=None):
        if ns and cmd[0] != "nsenter":
            cmd = ["ip", "netns", "exec", ns] + cmd
        path = os.path.join(self.tmp, f"{key}.log")
        f = open(path, "w")
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs[key] = p
        self.logs[key] = path
        return p

    def log_of(self, key):
        try:
            with open(self.logs[key]) as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, key, text, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log_of(key):
                return
            if self.procs[key].poll() is not None:
                break
            time.sleep(0.05)
        raise BenchError(f"{key} did not start ({text!r} not seen): {self.log_of(key)[-500:]}")

    def wait_tcp_listen(self, key, ns, port, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if sh(["ss", "-Hltn", f"sport = :{port}"], ns=ns).strip():
                return
            if self.procs[key].poll() is not None:
                break
            time.sleep(0.05)
        raise BenchError(f"{key} is not listening on port {port}: {self.log_of(key)[-500:]}")

    def stop(self, key):
        p = self.procs.pop(key, None)
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)

    def pid(self, key):
        return self.procs[key].pid if key in self.procs else None

    # -- topology --
    def setup(self):
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
            if self.congestion:
                try:
                    sh(["sysctl", "-qw", f"net.ipv4.tcp_congestion_control={self.congestion}"],
                       ns=ns)
                except BenchError as e:
                    raise BenchError(f"{e} (a namespace may only choose from the host's "
                                     "net.ipv4.tcp_allowed_congestion_control)") from None
        self.host_cc = sh(["sysctl", "-n", "net.ipv4.tcp_congestion_control"], ns=NS_FRONT).strip()
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
        nft_path = os.path.join(self.tmp, "nat.nft")
        with open(nft_path, "w") as f:
            f.write(nft)
        sh(["nft", "-f", nft_path], ns=NS_FRONT)

    def cleanup(self):
        for key in list(self.procs):
            try:
                self.stop(key)
            except Exception as e:  # keep cleaning
                log(f"stopping {key}: {e}")
        for ns in (NS_CLIENT, NS_FRONT, NS_BACKEND):
            if os.path.exists(f"/run/netns/{ns}"):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for root in ("ppbench-tcp", "ppbench-udp"):
            path = f"/sys/fs/bpf/{root}"
            if os.path.exists(path):
                subprocess.run([self.ppinject, "detach", "--config",
                                os.path.join(self.tmp, f"{root}.toml")], capture_output=True)
                shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- servers --
    def start_sinks(self):
        """A plain and a PROXY-stripping sink in the backend (veths) and on loopback."""
        for where, ns, addr in (("sink", NS_BACKEND, BACKEND), ("sink-lo", NS_FRONT, LO)):
            for kind, port, extra in (("plain", SINK_PLAIN, []), ("proxy", SINK_PROXY, ["--proxy"])):
                self.spawn(f"{where}-{kind}", [self.load, "server", "--listen", f"{addr}:{port}"]
                           + extra + ["--seconds", "600"], ns=ns)
            for kind, port in (("plain", SINK_PLAIN), ("proxy", SINK_PROXY)):
                self.wait_tcp_listen(f"{where}-{kind}", ns, port)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_ppinject_tcp(self):
        services = ""
        for at, to, lo in ((FRONT, BACKEND, ""), (LO, LO, "lo-")):
            named = self.host_cc if lo else "cubic"  # port 9104/9114 (see tcp_lo_cases)
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
        cfg = self.write("ppbench-tcp.toml",
                         '[global]\nbpffs = "/sys/fs/bpf/ppbench-tcp"\n' + services)
        self.spawn("ppinject-tcp", ["nsenter", f"--net=/run/netns/{NS_FRONT}", self.ppinject,
                                    "run", "--config", cfg])
        self.wait_log("ppinject-tcp", "running")

    def start_ppinject_udp(self):
        cfg = self.write("ppbench-udp.toml", f"""[global]
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
""")
        self.spawn("ppinject-udp", ["nsenter", f"--net=/run/netns/{NS_FRONT}", self.ppinject,
                                    "run", "--config", cfg])
        self.wait_log("ppinject-udp", "running")

    def start_haproxy(self):
        cfg = self.write("haproxy.cfg", f"""global
    nbthread 1
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen bench
    bind {FRONT}:9201
    server sink {BACKEND}:{SINK_PROXY} send-proxy-v2
listen bench-lo
    bind {LO}:9211
    server sink {LO}:{SINK_PROXY} send-proxy-v2
""")
        self.spawn("haproxy", ["/usr/sbin/haproxy", "-f", cfg, "-db"], ns=NS_FRONT)
        self.wait_tcp_listen("haproxy", NS_FRONT, 9201)

    def start_nginx(self):
        d = self.tmp
        cfg = self.write("nginx.conf", f"""load_module {NGINX_STREAM_MODULE};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{
    worker_connections 8192;
}}
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
        self.spawn("nginx", ["/usr/sbin/nginx", "-p", d + "/", "-c", cfg, "-e",
                             f"{d}/nginx-error.log"], ns=NS_FRONT)
        self.wait_tcp_listen("nginx", NS_FRONT, 9301)

    def budget_left(self):
        return 270 - (time.monotonic() - self.start)

    # -- clients --
    def client(self, args, timeout, ns=NS_CLIENT):
        r = subprocess.run(["ip", "netns", "exec", ns, self.load] + args,
                           capture_output=True, text=True, timeout=timeout)
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError:
            raise BenchError(f"ppbench_load {' '.join(args)}: {r.stderr.strip() or r.stdout}")

    # -- scenarios --
    def rounds(self, scenario, cases, run_one, metric, max_rounds, allowance):
        """Runs every case once per round, rounds interleaved (so a burst of load from
        elsewhere on the machine hits all cases alike), while the scenario's time allowance
        lasts (at least one round). Keeps, per case, the run with the median `metric`
        (lower median), its spread, and every run's value by round (for ratio()). A run is
        skipped when the whole bench's budget is nearly spent."""
        runs = {}
        t0 = time.monotonic()
        done = 0
        for rnd in range(max_rounds):
            if rnd > 0 and time.monotonic() - t0 > allowance * rnd / max_rounds:
                break
            for case in cases:
                if self.budget_left() < 25:
                    self.notes.append(f"{scenario}: a run was skipped, the 5-minute budget ran out")
                    break
                row = run_one(case)
                row["round"] = rnd
                runs.setdefault(json.dumps(case_key(row)), []).append(row)
            done = rnd + 1
        rows = []
        for key, rs in runs.items():
            rs.sort(key=lambda r: r[metric] if r[metric] is not None else -1)
            pick = dict(rs[(len(rs) - 1) // 2])
            vals = [r[metric] for r in rs if r[metric] is not None]
            pick["runs"] = len(rs)
            pick["min"], pick["max"] = (min(vals), max(vals)) if vals else (None, None)
            pick["all_runs"] = [r[metric] for r in rs]
            pick["all_rounds"] = [r["round"] for r in rs]
            pick["incomplete_runs"] = sum(1 for r in rs if r.get("complete") is False)
            rows.append(pick)
        return rows, done

    def bulk_run(self, direction, name, addr, proc, size, cap, streams=1, ns=NS_CLIENT):
        with CpuWindow(self.pid(proc)) as w:
            r = self.client(["bulk", "--connect", addr, "--dir", direction, "--bytes", str(size),
                             "--streams", str(streams), "--seconds", str(cap)], timeout=cap + 20,
                            ns=ns)
        gib = r["bytes"] / GIB
        row = {
            "direction": "client->backend" if direction == "up" else "backend->client",
            "streams": streams, "case": name, "bytes": r["bytes"],
            "streams_ok": r["streams_ok"], "complete": r["streams_ok"] == streams,
            "seconds": r["seconds"], "gbit_s": r["bytes"] * 8 / r["seconds"] / 1e9,
            "proxy_cpu_s_per_gib": (w.proc / gib) if w.proc is not None and gib else None,
            "machine_cpu_s_per_gib": w.machine / gib if gib else None,
        }
        log(f"tcp bulk {'loopback ' if ns == NS_FRONT else ''}{row['direction']} x{streams} "
            f"{name}: {row['gbit_s']:.2f} Gbit/s"
            + ("" if row["complete"] else f" INCOMPLETE ({r['streams_ok']}/{streams} streams)"))
        return row

    def sockmap_counters(self):
        """The sockmap service's TCP counters (ppinject status --json), summed over both ways."""
        out = sh([self.ppinject, "status", "--json", "--bpffs", "/sys/fs/bpf/ppbench-tcp"])
        svc = next(s for s in json.loads(out)["services"] if s["name"] == "bench-sockmap")
        c = svc["counters"]
        return {"relayed": c["tcp_bytes_to_backend"] + c["tcp_bytes_to_client"],
                "held": c["tcp_bytes_held"], "cut": c["tcp_overlap_cut"]}

    def tcp_bulk(self, loopback=False):
        """One stream each way per case, over the veths (client -> front -> backend) or, with
        `loopback`, on 127.0.0.1 inside the front namespace."""
        size = GIB // 2 if self.quick else GIB
        cap = 12
        key, ns = ("tcp_bulk_loopback", NS_FRONT) if loopback else ("tcp_bulk", NS_CLIENT)
        sink_ns, sink = (NS_FRONT, LO) if loopback else (NS_BACKEND, BACKEND)
        cases = [(d, *c) for d in ("up", "down")
                 for c in (tcp_lo_cases(self.host_cc) if loopback else TCP_BULK_CASES)]
        before = None if loopback else self.sockmap_counters()
        rows, n = self.rounds(key, cases, lambda c: self.bulk_run(*c, size, cap, ns=ns),
                              "gbit_s", 1 if self.quick else 3, 75)
        after = None if loopback else self.sockmap_counters()
        # The bench's own sink next to iperf3, on the direct path: is the sink the limit?
        for rev, label in ((False, "client->backend"), (True, "backend->client")):
            self.spawn("iperf3", ["iperf3", "-s", "-B", sink, "-p", "9050", "-1"], ns=sink_ns)
            self.wait_tcp_listen("iperf3", sink_ns, 9050)
            with CpuWindow(None) as w:
                out = sh(["iperf3", "-c", sink, "-p", "9050", "-n", str(size), "-J"]
                         + (["-R"] if rev else []), ns=ns, timeout=cap + 10)
            self.procs["iperf3"].wait(timeout=10)
            self.stop("iperf3")
            j = json.loads(out)
            bps = j["end"]["sum_received"]["bits_per_second"]
            b = j["end"]["sum_received"]["bytes"]
            rows.append({"direction": label, "streams": 1, "case": "iperf3 direct (reference)",
                         "bytes": b, "complete": True, "seconds": b * 8 / bps, "gbit_s": bps / 1e9,
                         "proxy_cpu_s_per_gib": None, "machine_cpu_s_per_gib": w.machine / (b / GIB),
                         "runs": 1, "min": bps / 1e9, "max": bps / 1e9, "all_runs": [bps / 1e9]})
        ratio(rows, "gbit_s", ("direction",))
        ratio(rows, "gbit_s", ("direction",), base=HAPROXY, field="x_haproxy")
        ratio(rows, "gbit_s", ("direction",), base=NGINX, field="x_nginx")
        self.results[key] = {"bytes_per_run": size, "time_cap_s": cap, "rounds": n,
                             "rows": rows}
        if after:
            self.results[key]["sockmap_bytes"] = {k: after[k] - before[k] for k in after}

    def rate_run(self, name, addr, proc, secs, ns=NS_CLIENT):
        with CpuWindow(self.pid(proc)) as w:
            r = self.client(["rate", "--connect", addr, "--parallel", "16", "--seconds", str(secs)],
                            timeout=secs + 20, ns=ns)
        n = max(r["connections"], 1)
        row = {
            "case": name, "connections": r["connections"], "errors": r["errors"],
            "seconds": r["seconds"], "conn_s": r["connections"] / r["seconds"],
            "proxy_cpu_us_per_conn": w.proc / n * 1e6 if w.proc is not None else None,
            "machine_cpu_us_per_conn": w.machine / n * 1e6,
        }
        log(f"tcp rate {'loopback ' if ns == NS_FRONT else ''}{name}: {row['conn_s']:.0f} conn/s, "
            f"{r['errors']} errors")
        time.sleep(0.5)  # let closing sockets settle between cases
        # The front tracks connections (its nat table, for UDP): every run leaves 10-40
        # thousand entries in TIME_WAIT for 120 s, and the loopback rounds after the veth
        # ones filled the table (nf_conntrack_max), which dropped their SYNs.
        sh(["conntrack", "-F"], ns=NS_FRONT, check=False)
        return row

    def tcp_rate(self, loopback=False):
        secs = 1.5
        key, ns = ("tcp_rate_loopback", NS_FRONT) if loopback else ("tcp_rate", NS_CLIENT)
        names = [c[0] for c in TCP_CASES]
        cases = [c for c in tcp_lo_cases(self.host_cc) if c[0] in names] if loopback else TCP_CASES
        rows, n = self.rounds(key, cases, lambda c: self.rate_run(*c, secs, ns=ns), "conn_s",
                              1 if self.quick else (3 if loopback else 4), 45 if loopback else 55)
        ratio(rows, "conn_s", ())
        ratio(rows, "conn_s", (), base=HAPROXY, field="x_haproxy")
        ratio(rows, "conn_s", (), base=NGINX, field="x_nginx")
        self.results[key] = {"seconds": secs, "parallel": 16, "rounds": n, "rows": rows}

    def tcp_concurrency(self):
        size = 256 * MIB if self.quick else 512 * MIB
        cap = 8
        cases = [(s, *c) for s in (1, 16, 256) for c in TCP_CASES]
        rows, n = self.rounds(
            "tcp_concurrency", cases,
            lambda c: self.bulk_run("up", c[1], c[2], c[3], size, cap, streams=c[0]),
            "gbit_s", 1, 40)
        ratio(rows, "gbit_s", ("streams",))
        self.results["tcp_concurrency"] = {"bytes_per_run": size, "direction": "client->backend",
                                           "time_cap_s": cap, "rounds": n, "rows": rows}

    def sink_counts(self):
        """The UDP sink's counts so far: SIGUSR1 makes it print one more JSON line."""
        before = self.log_of("udp-sink").count("\n")
        self.procs["udp-sink"].send_signal(signal.SIGUSR1)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            text = self.log_of("udp-sink")
            if text.count("\n") > before and text.endswith("\n"):
                return json.loads(text.splitlines()[-1])
            time.sleep(0.02)
        raise BenchError(f"udp-sink did not report its counts: {self.log_of('udp-sink')[-300:]}")

    def udp_run(self, size, name, addr, proc, secs, flows):
        before = self.sink_counts()
        with CpuWindow(self.pid(proc)) as w:
            s = self.client(["udp-send", "--connect", addr, "--size", str(size),
                             "--flows", str(flows), "--seconds", str(secs), "--cpu", "0"],
                            timeout=secs + 10)
            time.sleep(0.1)  # datagrams still queued on the path
            after = self.sink_counts()
        # Start every run from an empty conntrack table: nginx's relay opens an upstream
        # socket per datagram (proxy_responses 0), and the expiry of those tens of
        # thousands of entries 30 s later would slow whichever run is on then.
        sh(["conntrack", "-F"], ns=NS_FRONT, check=False)
        got = {k: after[k] - before[k] for k in after}
        recv = got["datagrams"]
        row = {
            "payload": size, "case": name, "sent": s["sent"], "not_sent": s["not_sent"],
            "received": recv, "with_v1": got["with_v1"], "with_v2": got["with_v2"],
            "with_spp": got["with_spp"], "seconds": s["seconds"], "dgram_s": recv / s["seconds"],
            "sent_s": s["sent"] / s["seconds"],
            "loss": 1 - recv / s["sent"] if s["sent"] else None,
            "proxy_cpu_s_per_mdgram": (w.proc / (recv / 1e6)) if w.proc is not None and recv else None,
            "machine_cpu_s_per_mdgram": w.machine / (recv / 1e6) if recv else None,
        }
        log(f"udp {size} B {name}: {row['dgram_s']:.0f} dgram/s received, {s['sent']} sent, "
            f"{recv} received ({got['with_v1']} v1, {got['with_v2']} v2, {got['with_spp']} spp)")
        return row

    def udp(self):
        secs, flows = (0.25 if self.quick else 0.5), 1000
        cases = [(size, *c) for size in (64, 1200) for c in UDP_CASES]
        # One sink for the whole scenario, pinned to the CPU the sender does not use;
        # ppinject stays attached to f0 throughout (the baseline and nginx come in by f2).
        self.spawn("udp-sink", [self.load, "udp-sink", "--listen", f"{BACKEND}:{UDP_SINK}",
                                "--seconds", "200", "--cpu", "1"], ns=NS_BACKEND)
        self.wait_log("udp-sink", "counting")
        self.start_ppinject_udp()
        rows, n = self.rounds("udp", cases, lambda c: self.udp_run(*c, secs, flows), "dgram_s",
                              1 if self.quick else 10, 70)
        self.stop("ppinject-udp")
        self.stop("udp-sink")
        ratio(rows, "dgram_s", ("payload",), base=UDP_CASES[0][0])
        ratio(rows, "dgram_s", ("payload",), base=UDP_CASES[4][0], field="x_nginx")
        self.results["udp"] = {"seconds": secs, "flows": flows, "rounds": n, "rows": rows}

    def bpf(self):
        out = sh([os.path.join(self.build, "bpf_bench"), "20000"], timeout=60)
        rows = json.loads(out)
        base = rows[0]
        for r in rows:
            r["single_above_empty_ns"] = r["single_mean_ns"] - base["single_mean_ns"]
            r["repeat_above_empty_ns"] = (r["repeat_ns"] - base["repeat_ns"]
                                          if r["repeat_ns"] >= 0 else None)
        self.results["bpf"] = {"rows": rows}


def case_key(row):
    return [row.get(k) for k in ("direction", "streams", "payload", "case")]


def ratio(rows, key, group, base="direct", field="ratio"):
    """Sets row[field], each row's ratio to the `base` case of its group: the median, over
    the rounds both ran in, of the row's run over the base's run of the same round. Pairing
    runs that ran seconds apart cancels the slow swings of a shared machine, which a ratio
    of two medians would not. Rows not run in rounds (references) use the base's median."""
    for r in rows:
        b = [x for x in rows if x["case"] == base and all(x[g] == r[g] for g in group)]
        if not b or not b[0][key]:
            r[field] = None
            continue
        if "all_rounds" not in r:
            r[field] = r[key] / b[0][key]
            continue
        base_by_round = dict(zip(b[0]["all_rounds"], b[0]["all_runs"]))
        pairs = [v / base_by_round[n] for n, v in zip(r["all_rounds"], r["all_runs"])
                 if v is not None and base_by_round.get(n)]
        r[field] = statistics.median(pairs) if pairs else None
        r[field + "_runs"] = pairs


# --- Output ------------------------------------------------------------------------------


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def spread(r, spec):
    if r.get("runs", 1) < 2:
        return "-"
    return f"{format(r['min'], spec)}-{format(r['max'], spec)}"


def incomplete(r):
    n = r.get("incomplete_runs", 0)
    return f" **({n}/{r['runs']} runs incomplete)**" if n else ""


def render(results):
    parts = ["Ratios (ratio, x HAProxy, x nginx) are medians over the rounds of one run's "
             "result over the other case's in the same round.\n"]
    for key, where in (("tcp_bulk", "client -> front -> backend over veths"),
                       ("tcp_bulk_loopback", "loopback inside the front namespace")):
        if key not in results:
            continue
        t = results[key]
        gap = "" if parts[-1].endswith("\n") else "\n"  # one blank line between sections
        parts.append(f"{gap}### TCP bulk, {where} "
                     f"({t['bytes_per_run'] // MIB} MiB per run, one stream, median of "
                     f"{t['rounds']} interleaved runs)\n")
        parts.append(table(
            ["direction", "case", "Gbit/s", "range", "ratio", "x HAProxy", "x nginx",
             "proxy CPU s/GiB", "machine CPU s/GiB"],
            [[r["direction"], r["case"] + incomplete(r), fmt(r["gbit_s"], ".2f"),
              spread(r, ".1f"), fmt(r["ratio"], ".2f"), fmt(r.get("x_haproxy"), ".2f"),
              fmt(r.get("x_nginx"), ".2f"), fmt(r["proxy_cpu_s_per_gib"], ".2f"),
              fmt(r["machine_cpu_s_per_gib"], ".2f")] for r in t["rows"]]))
        if "sockmap_bytes" not in t:
            continue
        sm = t["sockmap_bytes"]
        parts.append(f"\nsockmap, all its runs: {sm['relayed'] / GIB:.2f} GiB relayed, "
                     f"{sm['held'] / GIB:.2f} GiB of it held back for a slow reader and copied "
                     f"by the daemon (tcp_bytes_held), {sm['cut']} bytes of retransmissions "
                     f"cut (tcp_overlap_cut).")
    for key, where in (("tcp_rate", "over veths"), ("tcp_rate_loopback", "on loopback")):
        if key not in results:
            continue
        t = results[key]
        parts.append(f"\n### TCP connection rate {where} ({t['seconds']} s per run, "
                     f"{t['parallel']} client threads; connect, 1 byte each way, close; median of "
                     f"{t['rounds']})\n")
        parts.append(table(
            ["case", "conn/s", "range", "ratio", "x HAProxy", "x nginx", "errors",
             "proxy CPU us/conn", "machine CPU us/conn"],
            [[r["case"], fmt(r["conn_s"], ".0f"), spread(r, ".0f"), fmt(r["ratio"], ".2f"),
              fmt(r.get("x_haproxy"), ".2f"), fmt(r.get("x_nginx"), ".2f"),
              r["errors"], fmt(r["proxy_cpu_us_per_conn"], ".1f"),
              fmt(r["machine_cpu_us_per_conn"], ".1f")] for r in t["rows"]]))
    if "tcp_concurrency" in results:
        t = results["tcp_concurrency"]
        parts.append(f"\n### TCP concurrency ({t['bytes_per_run'] // MIB} MiB per run in all, "
                     f"client->backend, {t['rounds']} run each)\n")
        parts.append(table(
            ["streams", "case", "Gbit/s", "ratio", "proxy CPU s/GiB", "machine CPU s/GiB"],
            [[r["streams"], r["case"] + incomplete(r), fmt(r["gbit_s"], ".2f"),
              fmt(r["ratio"], ".2f"), fmt(r["proxy_cpu_s_per_gib"], ".2f"),
              fmt(r["machine_cpu_s_per_gib"], ".2f")] for r in t["rows"]]))
    if "udp" in results:
        t = results["udp"]
        parts.append(f"\n### UDP through the front ({t['seconds']} s per run, {t['flows']} "
                     f"flows, sender as fast as it can, median of {t['rounds']})\n")
        parts.append(table(
            ["payload", "case", "received dgram/s", "range", "ratio", "x nginx", "loss",
             "headers seen", "proxy CPU s/Mdgram", "machine CPU s/Mdgram"],
            [[f"{r['payload']} B", r["case"], fmt(r["dgram_s"], ".0f"), spread(r, ".0f"),
              fmt(r["ratio"], ".2f"), fmt(r.get("x_nginx"), ".2f"),
              fmt(r["loss"] * 100 if r["loss"] is not None else None, ".1f") + "%",
              f"{r['with_v1'] + r['with_v2'] + r['with_spp']} of {r['received']}",
              fmt(r["proxy_cpu_s_per_mdgram"], ".2f"), fmt(r["machine_cpu_s_per_mdgram"], ".2f")]
             for r in t["rows"]]))
    if "bpf" in results:
        rows = results["bpf"]["rows"]
        parts.append(f"\n### BPF programs alone (BPF_PROG_TEST_RUN, ns per packet; "
                     f"repeat = 1: mean over {rows[0]['single_runs']} single runs)\n")
        parts.append(table(
            ["program / packet", "repeat=100000 ns", "above empty", "repeat=1 mean ns",
             "repeat=1 p50 ns", "above empty (repeat=1)"],
            [[r["case"], fmt(r["repeat_ns"] if r["repeat_ns"] >= 0 else None, ".0f"),
              fmt(r["repeat_above_empty_ns"], ".0f"), fmt(r["single_mean_ns"], ".0f"),
              fmt(r["single_p50_ns"], ".0f"), fmt(r["single_above_empty_ns"], ".0f")]
             for r in rows]))
    return "\n".join(parts) + "\n"


def chart(results, out_dir, tmp):
    """One PNG, up to four panels, drawn by gnuplot."""
    panels = []

    def data(name, rows, label_of, value_of):
        path = os.path.join(tmp, name + ".dat")
        with open(path, "w") as f:
            for r in rows:
                f.write(f"\"{label_of(r)}\" {value_of(r):.4f}\n")
        return path

    for key, where in (("tcp_bulk", "veths"), ("tcp_bulk_loopback", "loopback")):
        if key not in results:
            continue
        rows = [r for r in results[key]["rows"] if "iperf3" not in r["case"]]
        up = data(key + "_up", [r for r in rows if r["direction"] == "client->backend"],
                  lambda r: r["case"], lambda r: r["gbit_s"])
        down = data(key + "_down", [r for r in rows if r["direction"] == "backend->client"],
                    lambda r: r["case"], lambda r: r["gbit_s"])
        panels.append((f"TCP bulk on {where}, Gbit/s",
                       f"'{up}' using 2:xtic(1) title 'client->backend', "
                       f"'{down}' using 2 title 'backend->client'"))
    for key, where in (("tcp_rate", "veths"), ("tcp_rate_loopback", "loopback")):
        if key in results:  # a panel each: histogram bars pair up by row, not by case
            p = data(key, results[key]["rows"], lambda r: r["case"], lambda r: r["conn_s"])
            panels.append((f"TCP connections/s on {where}", f"'{p}' using 2:xtic(1) title 'conn/s'"))
    if "tcp_concurrency" in results:
        rows = results["tcp_concurrency"]["rows"]
        files = []
        for i, s in enumerate((1, 16, 256)):
            p = data(f"conc{s}", [r for r in rows if r["streams"] == s], lambda r: r["case"],
                     lambda r: r["gbit_s"])
            files.append(f"'{p}' using 2{':xtic(1)' if i == 0 else ''} title '{s} streams'")
        panels.append(("TCP concurrency, Gbit/s (client->backend)", ", ".join(files)))
    if "udp" in results:
        rows = results["udp"]["rows"]
        a = data("udp64", [r for r in rows if r["payload"] == 64], lambda r: r["case"],
                 lambda r: r["dgram_s"] / 1e6)
        b = data("udp1200", [r for r in rows if r["payload"] == 1200], lambda r: r["case"],
                 lambda r: r["dgram_s"] / 1e6)
        panels.append(("UDP, million datagrams/s received",
                       f"'{a}' using 2:xtic(1) title '64 B', '{b}' using 2 title '1200 B'"))
    if not panels or not shutil.which("gnuplot"):
        return None
    png = os.path.join(out_dir, "results.png")
    script = [
        f"set terminal pngcairo size 1400,{420 * ((len(panels) + 1) // 2)} font 'sans,9'",
        f"set output '{png}'",
        "set termoption noenhanced", "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.8 border -1", "set boxwidth 0.9", "set grid ytics",
        "set xtics rotate by -25", "set yrange [0:*]", "set key top right",
        f"set multiplot layout {(len(panels) + 1) // 2},2 title 'ppinject make bench "
        f"{datetime.date.today()}'",
    ]
    for title, plot in panels:
        script += [f"set title '{title}'", f"plot {plot}"]
    script.append("unset multiplot")
    path = os.path.join(tmp, "chart.gp")
    with open(path, "w") as f:
        f.write("\n".join(script) + "\n")
    subprocess.run(["gnuplot", path], check=True, capture_output=True, timeout=30)
    return png


def meta():
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    with open("/proc/sys/net/core/default_qdisc") as f:
        qdisc = f.read().strip()
    versions = {}
    for name, cmd in (("haproxy", ["/usr/sbin/haproxy", "-v"]), ("nginx", ["/usr/sbin/nginx", "-v"])):
        r = subprocess.run(cmd, capture_output=True, text=True)
        versions[name] = (r.stdout + r.stderr).splitlines()[0] if (r.stdout + r.stderr) else "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "loadavg_before": load, "versions": versions,
            "default_qdisc": qdisc}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true", help="smaller transfers, shorter runs")
    ap.add_argument("--only", default="tcp_bulk,tcp_bulk_lo,tcp_rate,tcp_rate_lo,tcp_conc,udp,bpf")
    ap.add_argument("--tcp-congestion", metavar="NAME",
                    help="TCP congestion control in the bench's namespaces (default: the "
                    "host's, net.ipv4.tcp_congestion_control), e.g. cubic or bbr")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench: must run as root (namespaces, BPF)", file=sys.stderr)
        return 1
    only = set(args.only.split(","))
    bench = Bench(args.build, args.quick, args.tcp_congestion)
    for tool in (bench.load, bench.ppinject, os.path.join(bench.build, "bpf_bench")):
        if not os.access(tool, os.X_OK):
            print(f"bench: {tool} missing: run make build", file=sys.stderr)
            return 1
    # SIGINT, SIGTERM and SIGHUP all clean up (SIGINT explicitly: a shell starting us in
    # the background would have left it ignored).
    def on_signal(sig, frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    info = meta()
    # What the rest of the machine (other users' builds and tests) burns while the bench
    # idles: machine CPU figures below include it.
    m0 = machine_cpu_s()
    time.sleep(1)
    info["background_cpu_cores_before"] = round(machine_cpu_s() - m0, 2)
    log(f"load average before: {' '.join(info['loadavg_before'])} ({info['cpus']} CPUs)")
    status = 0
    try:
        bench.setup()
        info["tcp_congestion"] = bench.host_cc
        if only & {"tcp_bulk", "tcp_bulk_lo", "tcp_rate", "tcp_rate_lo", "tcp_conc"}:
            bench.start_sinks()
            bench.start_ppinject_tcp()
            bench.start_haproxy()
        if only & {"tcp_bulk", "tcp_bulk_lo", "tcp_rate", "tcp_rate_lo", "tcp_conc", "udp"}:
            bench.start_nginx()
        steps = [("bpf", bench.bpf), ("tcp_bulk", bench.tcp_bulk),
                 ("tcp_bulk_lo", lambda: bench.tcp_bulk(loopback=True)),
                 ("tcp_conc", bench.tcp_concurrency),
                 ("udp", bench.udp), ("tcp_rate", bench.tcp_rate),
                 ("tcp_rate_lo", lambda: bench.tcp_rate(loopback=True))]
        for name, fn in steps:
            if name not in only:
                continue
            if bench.budget_left() < 20:
                bench.notes.append(f"{name} skipped: the 5-minute budget ran out")
                log(bench.notes[-1])
                continue
            fn()
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("bench: interrupted; cleaning up", file=sys.stderr)
        status = 130
    finally:
        try:
            png = None
            if bench.results:
                with open("/proc/loadavg") as f:
                    info["loadavg_after"] = f.read().split()[:3]
                m0 = machine_cpu_s()
                time.sleep(1)
                info["background_cpu_cores_after"] = round(machine_cpu_s() - m0, 2)
                info["runtime_s"] = round(time.monotonic() - bench.start, 1)
                info["notes"] = bench.notes
                doc = {"meta": info, "results": bench.results}
                with open(os.path.join(bench.out, "results.json"), "w") as f:
                    json.dump(doc, f, indent=2)
                text = render(bench.results)
                head = (f"ppinject bench {info['date']}, kernel {info['kernel']}, {info['cpus']} "
                        f"CPUs ({info['cpu_model']}), load average before "
                        f"{' '.join(info['loadavg_before'])}, after "
                        f"{' '.join(info['loadavg_after'])}; background CPU (busy cores while the bench "
                        f"idled) {info['background_cpu_cores_before']} before, "
                        f"{info['background_cpu_cores_after']} after; runtime {info['runtime_s']} s; "
                        f"TCP congestion control {info.get('tcp_congestion', '?')}, default qdisc "
                        f"{info['default_qdisc']}\n"
                        f"{info['versions']['haproxy']}; {info['versions']['nginx']}\n\n")
                with open(os.path.join(bench.out, "results.md"), "w") as f:
                    f.write(head + text)
                print(head + text)
                try:
                    png = chart(bench.results, bench.out, bench.tmp)
                except (subprocess.SubprocessError, OSError) as e:
                    log(f"chart not drawn: {e}")
                log(f"wrote {bench.out}/results.json, results.md" + (", results.png" if png else ""))
        finally:
            bench.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
