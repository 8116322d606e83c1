#!/usr/bin/env python3
"""make bench: ppinject beside a direct connection, HAProxy and nginx, in one run.

    ppb-client                 ppb-front                              ppb-backend
    c0 192.0.2.2    -------->  f0 192.0.2.1    f1 198.51.100.1  ----> b0 198.51.100.2
    c2 203.0.113.2  -------->  f2 203.0.113.1
                               ppinject / haproxy / nginx (TCP) listen on 192.0.2.1
                               UDP: nftables DNAT 192.0.2.1:9601-9603 (ppinject's tc
                               programs on f0) and 203.0.113.1:9600 (f2, no tc at all)
                               -> 198.51.100.2:9500; nginx's UDP relay on 203.0.113.1:9604
                               TCP: nftables DNAT 203.0.113.1:9400 (f2, "dnat") and
                               192.0.2.1:9401 (f0, ppinject inline) -> 198.51.100.2

Three network namespaces joined by veth (tools/topology.sh). "direct" is the client
connecting to the backend's own address, routed (forwarded) by the front, so every case
crosses the same two veth pairs. The TCP bulk and connection-rate scenarios run a second
time on loopback inside the front namespace (client, proxies and sinks on 127.0.0.1), the
setting the issue's own HAProxy and nginx figures were taken in. The UDP baseline enters
the front by its own veth pair (c2/f2), which has no clsact qdisc, so it runs beside
ppinject's cases without stopping ppinject between runs. Everything the run creates
(namespaces, processes, pins, temp files) is removed at the end, also on error or Ctrl-C;
processes are stopped by the PIDs we started. Results: build/bench/results.json,
results.md and results.png. The pieces are in ppbench/ (see its __init__.py).

Usage: run.py BUILD_DIR [--quick] [--only SCENARIO,...] [--tcp-congestion NAME]
"""
import argparse
import os
import signal
import sys

# Run as root from a source tree: leave no root-owned bytecode caches in it.
sys.dont_write_bytecode = True

from ppbench import peers, report  # noqa: E402 (imports after the line above)
from ppbench.bench import Bench  # noqa: E402
from ppbench.procs import BenchError, log  # noqa: E402
from ppbench.scenarios import SCENARIOS  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true", help="smaller transfers, shorter runs")
    names = [s.name for s in SCENARIOS]
    ap.add_argument("--only", metavar="SCENARIO,...", default=",".join(names),
                    help=f"a subset of: {' '.join(names)} (default: all)")
    ap.add_argument("--tcp-congestion", metavar="NAME",
                    help="TCP congestion control in the bench's namespaces (default: the "
                    "host's, net.ipv4.tcp_congestion_control), e.g. cubic or bbr")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench: must run as root (namespaces, BPF)", file=sys.stderr)
        return 1
    only = set(args.only.split(","))
    selected = [s for s in SCENARIOS if s.name in only]
    bench = Bench(args.build, args.quick, args.tcp_congestion)
    for tool in (bench.load, bench.ppinject, bench.bpf_bench):
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
    info = report.meta()
    info["background_cpu_cores_before"] = report.background_cpu()
    log(f"load average before: {' '.join(info['loadavg_before'])} ({info['cpus']} CPUs)")
    status = 0
    try:
        bench.setup()
        info["tcp_congestion"] = bench.host_cc
        for name, start in peers.START:
            if any(name in s.needs for s in selected):
                start(bench)
        for s in selected:
            if bench.budget_left() < 20:
                bench.notes.append(f"{s.name} skipped: the 5-minute budget ran out")
                log(bench.notes[-1])
                continue
            s.run(bench)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("bench: interrupted; cleaning up", file=sys.stderr)
        status = 130
    finally:
        try:
            if bench.results:
                report.write(bench, info)
        finally:
            bench.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
