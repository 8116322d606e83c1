"""The scenarios, one function each, registered with @scenario in the order they run; a
new scenario is one more function here (tools/bench/README.md describes each)."""
import collections
import json
import signal
import time

from . import GIB, MIB, peers
from .peers import (DNAT, HAPROXY, INLINE_CASES, NGINX, TCP_BULK_CASES, TCP_CASES, UDP_CASES,
                    tcp_lo_cases)
from .procs import BenchError, CpuWindow, log, sh
from .rounds import ratio, rounds
from .topology import BACKEND, LO, NS_BACKEND, NS_CLIENT, NS_FRONT, UDP_SINK

# name: what --only selects; run(bench) adds to bench.results; needs: the names (in
# peers.START) of the peers it needs running.
Scenario = collections.namedtuple("Scenario", "name run needs")
SCENARIOS = []


def scenario(name, needs=()):
    def register(run):
        SCENARIOS.append(Scenario(name, run, frozenset(needs)))
        return run
    return register


TCP_PEERS = ("tcp", "nginx")  # the sinks, ppinject, HAProxy; nginx (TCP and UDP)


@scenario("bpf")
def bpf(bench):
    out = sh([bench.bpf_bench, "20000"], timeout=60)
    rows = json.loads(out)
    empty = {}  # hook -> its empty program's row, which comes first of the hook's rows
    for r in rows:
        base = empty.setdefault(r.get("hook", "tc"), r)
        r["single_above_empty_ns"] = r["single_mean_ns"] - base["single_mean_ns"]
        r["repeat_above_empty_ns"] = (r["repeat_ns"] - base["repeat_ns"]
                                      if r["repeat_ns"] >= 0 else None)
    bench.results["bpf"] = {"rows": rows}


def bulk_run(bench, direction, name, addr, proc, size, cap, streams=1, ns=NS_CLIENT):
    with CpuWindow(bench.procs.pid(proc)) as w:
        r = bench.client(["bulk", "--connect", addr, "--dir", direction, "--bytes", str(size),
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


def inline_ratios(rows, metric, cpu, group):
    """The inline cases' ratios to plain forwarding through the same DNAT front: `metric`
    (x_dnat) and machine CPU per unit of work (cpu_x_dnat), paired by round."""
    ratio(rows, metric, group, base=DNAT, field="x_dnat")
    ratio(rows, cpu, group, base=DNAT, field="cpu_x_dnat")


def with_inline(bench, scenario, run):
    """Runs `run` (a scenario's rounds over the veths, inline cases among them) with
    ppinject's inline service attached, and notes what the service counted meanwhile."""
    with peers.inline_attached(bench):
        out = run()
        counters = peers.inline_counters(bench)
    keep = ("inline_conns_new", "inline_headers", "inline_header_resent", "inline_refused",
            "inline_no_state", "inline_gso_dropped", "inline_mss_clamped", "inline_conns_left")
    bench.results.setdefault("inline_counters", {})[scenario] = {
        k: counters.get(k) for k in keep}
    return out


def bulk(bench, loopback):
    """One stream each way per case, over the veths (client -> front -> backend, the
    inline cases with them) or, with `loopback`, on 127.0.0.1 inside the front
    namespace."""
    size = GIB // 2 if bench.quick else GIB
    cap = 12
    key, ns = ("tcp_bulk_loopback", NS_FRONT) if loopback else ("tcp_bulk", NS_CLIENT)
    sink_ns, sink = (NS_FRONT, LO) if loopback else (NS_BACKEND, BACKEND)
    cases = [(d, *c) for d in ("up", "down")
             for c in (tcp_lo_cases(bench.host_cc) if loopback
                       else TCP_BULK_CASES + INLINE_CASES)]
    before = None if loopback else peers.sockmap_counters(bench)

    def run():
        return rounds(bench, key, cases, lambda c: bulk_run(bench, *c, size, cap, ns=ns),
                      "gbit_s", 1 if bench.quick else 3, 80, also=("machine_cpu_s_per_gib",))
    rows, n = run() if loopback else with_inline(bench, key, run)
    after = None if loopback else peers.sockmap_counters(bench)
    # The bench's own sink next to iperf3, on the direct path: is the sink the limit?
    for rev, label in ((False, "client->backend"), (True, "backend->client")):
        bench.procs.spawn("iperf3", ["iperf3", "-s", "-B", sink, "-p", "9050", "-1"], ns=sink_ns)
        bench.procs.wait_tcp_listen("iperf3", sink_ns, 9050)
        with CpuWindow(None) as w:
            out = sh(["iperf3", "-c", sink, "-p", "9050", "-n", str(size), "-J"]
                     + (["-R"] if rev else []), ns=ns, timeout=cap + 10)
        bench.procs.wait("iperf3", timeout=10)
        bench.procs.stop("iperf3")
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
    if not loopback:
        inline_ratios(rows, "gbit_s", "machine_cpu_s_per_gib", ("direction",))
    bench.results[key] = {"bytes_per_run": size, "time_cap_s": cap, "rounds": n,
                          "rows": rows}
    if after:
        bench.results[key]["sockmap_bytes"] = {k: after[k] - before[k] for k in after}


@scenario("tcp_bulk", needs=TCP_PEERS)
def tcp_bulk(bench):
    bulk(bench, loopback=False)


@scenario("tcp_bulk_lo", needs=TCP_PEERS)
def tcp_bulk_lo(bench):
    bulk(bench, loopback=True)


@scenario("tcp_conc", needs=TCP_PEERS)
def tcp_conc(bench):
    size = 256 * MIB if bench.quick else 512 * MIB
    cap = 8
    cases = [(s, *c) for s in (1, 16, 256) for c in TCP_CASES + INLINE_CASES]
    rows, n = with_inline(bench, "tcp_concurrency", lambda: rounds(
        bench, "tcp_concurrency", cases,
        lambda c: bulk_run(bench, "up", c[1], c[2], c[3], size, cap, streams=c[0]),
        "gbit_s", 1, 40, also=("machine_cpu_s_per_gib",)))
    ratio(rows, "gbit_s", ("streams",))
    inline_ratios(rows, "gbit_s", "machine_cpu_s_per_gib", ("streams",))
    bench.results["tcp_concurrency"] = {"bytes_per_run": size, "direction": "client->backend",
                                        "time_cap_s": cap, "rounds": n, "rows": rows}


def sink_counts(bench):
    """The UDP sink's counts so far: SIGUSR1 makes it print one more JSON line."""
    before = bench.procs.log_of("udp-sink").count("\n")
    bench.procs.send_signal("udp-sink", signal.SIGUSR1)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        text = bench.procs.log_of("udp-sink")
        if text.count("\n") > before and text.endswith("\n"):
            return json.loads(text.splitlines()[-1])
        time.sleep(0.02)
    raise BenchError(f"udp-sink did not report its counts: "
                     f"{bench.procs.log_of('udp-sink')[-300:]}")


def udp_run(bench, size, name, addr, proc, secs, flows):
    before = sink_counts(bench)
    with CpuWindow(bench.procs.pid(proc)) as w:
        s = bench.client(["udp-send", "--connect", addr, "--size", str(size),
                          "--flows", str(flows), "--seconds", str(secs), "--cpu", "0"],
                         timeout=secs + 10)
        time.sleep(0.1)  # datagrams still queued on the path
        after = sink_counts(bench)
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


@scenario("udp", needs=("nginx",))
def udp(bench):
    secs, flows = (0.25 if bench.quick else 0.5), 1000
    cases = [(size, *c) for size in (64, 1200) for c in UDP_CASES]
    # One sink for the whole scenario, pinned to the CPU the sender does not use;
    # ppinject stays attached to f0 (tc) and f3 (XDP) throughout (the baseline and nginx
    # come in by f2).
    bench.procs.spawn("udp-sink", [bench.load, "udp-sink", "--listen", f"{BACKEND}:{UDP_SINK}",
                                   "--seconds", "200", "--cpu", "1"], ns=NS_BACKEND)
    bench.procs.wait_log("udp-sink", "counting")
    peers.start_ppinject_udp(bench)
    rows, n = rounds(bench, "udp", cases, lambda c: udp_run(bench, *c, secs, flows), "dgram_s",
                     1 if bench.quick else 5, 75)  # 18 runs a round: ~13 s (5, not 10: the
                     # inline TCP cases need the time in the 270 s budget)
    bench.procs.stop("ppinject-udp")
    bench.procs.stop("udp-sink")
    ratio(rows, "dgram_s", ("payload",), base=UDP_CASES[0][0])
    ratio(rows, "dgram_s", ("payload",), base=UDP_CASES[4][0], field="x_nginx")
    bench.results["udp"] = {"seconds": secs, "flows": flows, "rounds": n, "rows": rows}


def rate_run(bench, name, addr, proc, secs, ns=NS_CLIENT):
    with CpuWindow(bench.procs.pid(proc)) as w:
        r = bench.client(["rate", "--connect", addr, "--parallel", "16", "--seconds", str(secs)],
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


def rate(bench, loopback):
    secs = 1.5
    key, ns = ("tcp_rate_loopback", NS_FRONT) if loopback else ("tcp_rate", NS_CLIENT)
    names = [c[0] for c in TCP_CASES]
    cases = ([c for c in tcp_lo_cases(bench.host_cc) if c[0] in names] if loopback
             else TCP_CASES + INLINE_CASES)

    def run():
        return rounds(bench, key, cases, lambda c: rate_run(bench, *c, secs, ns=ns), "conn_s",
                      1 if bench.quick else 3, 45 if loopback else 70,
                      also=("machine_cpu_us_per_conn",))
    rows, n = run() if loopback else with_inline(bench, key, run)
    ratio(rows, "conn_s", ())
    if not loopback:
        inline_ratios(rows, "conn_s", "machine_cpu_us_per_conn", ())
    ratio(rows, "conn_s", (), base=HAPROXY, field="x_haproxy")
    ratio(rows, "conn_s", (), base=NGINX, field="x_nginx")
    bench.results[key] = {"seconds": secs, "parallel": 16, "rounds": n, "rows": rows}


@scenario("tcp_rate", needs=TCP_PEERS)
def tcp_rate(bench):
    rate(bench, loopback=False)


@scenario("tcp_rate_lo", needs=TCP_PEERS)
def tcp_rate_lo(bench):
    rate(bench, loopback=True)
