"""Short commands, the long-running processes the bench starts, and CPU accounting."""
import os
import signal
import subprocess
import sys
import time


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


class Processes:
    """The processes the bench started, by key, each with its output in a log file; they
    are stopped by the PIDs we started."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = {}  # key -> Popen
        self.logs = {}

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

    def stop_all(self):
        for key in list(self.procs):
            try:
                self.stop(key)
            except Exception as e:  # keep cleaning
                log(f"stopping {key}: {e}")

    def pid(self, key):
        return self.procs[key].pid if key in self.procs else None

    def send_signal(self, key, sig):
        self.procs[key].send_signal(sig)

    def wait(self, key, timeout):
        self.procs[key].wait(timeout=timeout)


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
