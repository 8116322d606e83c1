"""What a run leaves: the tables (stdout and results.md), the chart (results.png), every
figure with the run's metadata (results.json)."""
import datetime
import json
import os
import platform
import shutil
import subprocess
import time

from . import GIB, MIB
from .procs import log, machine_cpu_s


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
    parts += inline_summary(results)
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


# The targets for inline TCP: (what, the scenario's key, its metric, the ratio's
# field, the rows' filter, bound, ">=" or "<=").
INLINE_TARGETS = [
    ("bulk client->backend, Gbit/s", "tcp_bulk", "gbit_s", "x_dnat",
     {"direction": "client->backend"}, 0.95, ">="),
    ("bulk backend->client, Gbit/s", "tcp_bulk", "gbit_s", "x_dnat",
     {"direction": "backend->client"}, 0.95, ">="),
    ("machine CPU s/GiB, client->backend", "tcp_bulk", "machine_cpu_s_per_gib", "cpu_x_dnat",
     {"direction": "client->backend"}, 1.1, "<="),
    ("machine CPU s/GiB, backend->client", "tcp_bulk", "machine_cpu_s_per_gib", "cpu_x_dnat",
     {"direction": "backend->client"}, 1.1, "<="),
    ("connection rate, conn/s", "tcp_rate", "conn_s", "x_dnat", {}, 0.9, ">="),
    ("connection rate, conn/s: inline x nginx", "tcp_rate", "conn_s", "x_nginx", {}, 2.5, ">="),
    ("machine CPU us/conn", "tcp_rate", "machine_cpu_us_per_conn", "cpu_x_dnat", {}, None, None),
] + [(f"concurrency {n} streams, Gbit/s", "tcp_concurrency", "gbit_s", "x_dnat",
      {"streams": n}, None, None) for n in (1, 16, 256)] + [
    (f"concurrency {n} streams, machine CPU s/GiB", "tcp_concurrency", "machine_cpu_s_per_gib",
     "cpu_x_dnat", {"streams": n}, None, None) for n in (1, 16, 256)]


def inline_summary(results):
    """Inline TCP beside plain forwarding through the same DNAT front, the relay's default
    mode, HAProxy and nginx, with the issue's targets: one line per figure."""
    cases = ("dnat", "ppinject inline", "ppinject splice", "haproxy send-proxy-v2",
             "nginx proxy_protocol")
    lines = []
    for what, key, metric, field, where, bound, op in INLINE_TARGETS:
        if key not in results:
            continue
        rows = {r["case"]: r for r in results[key]["rows"]
                if all(r.get(k) == v for k, v in where.items())}
        if "ppinject inline" not in rows:
            continue
        spec = ".0f" if metric == "conn_s" else (".1f" if "us" in metric else ".2f")
        r = rows["ppinject inline"]
        v = r.get(field)
        met = "-"
        if bound is not None:
            met = "?" if v is None else (
                "met" if (v >= bound if op == ">=" else v <= bound) else "**not met**")
        lines.append([what] + [fmt(rows[c][metric], spec) if c in rows else "-" for c in cases]
                     + [field.replace("cpu_x_dnat", "x dnat").replace("x_", "x "),
                        fmt(v, ".2f"), f"{op} {bound}" if bound is not None else "-", met])
    if not lines:
        return []
    out = ["\n### Inline TCP against plain forwarding through the same DNAT front (veths; "
           "ratios paired by round)\n",
           table(["figure", "dnat", "inline", "splice", "HAProxy", "nginx", "ratio of inline",
                  "value", "target", "target met"], lines)]
    for scenario, c in results.get("inline_counters", {}).items():
        out.append(f"\ninline counters over {scenario}: " + ", ".join(
            f"{k} {v}" for k, v in c.items()))
    return out


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


def background_cpu():
    """What the rest of the machine (other users' builds and tests) burns while the bench
    idles, in busy cores: machine CPU figures include it."""
    m0 = machine_cpu_s()
    time.sleep(1)
    return round(machine_cpu_s() - m0, 2)


def write(bench, info):
    """Completes `info` and writes results.json, results.md and results.png to bench.out;
    prints the tables."""
    with open("/proc/loadavg") as f:
        info["loadavg_after"] = f.read().split()[:3]
    info["background_cpu_cores_after"] = background_cpu()
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
    png = None
    try:
        png = chart(bench.results, bench.out, bench.tmp)
    except (subprocess.SubprocessError, OSError) as e:
        log(f"chart not drawn: {e}")
    log(f"wrote {bench.out}/results.json, results.md" + (", results.png" if png else ""))
