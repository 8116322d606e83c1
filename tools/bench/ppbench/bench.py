"""One run of the bench: its paths and options, the processes it started, the results so
far, the time budget, and the cleanup that removes everything it made."""
import json
import os
import shutil
import subprocess
import tempfile
import time

from . import topology
from .peers import PIN_ROOTS
from .procs import BenchError, Processes

BUDGET_S = 270  # the whole bench, setup included: make bench stays under 5 minutes


class Bench:
    def __init__(self, build, quick, congestion=None):
        self.build = os.path.abspath(build)
        self.quick = quick
        self.congestion = congestion
        self.host_cc = None  # the namespaces' congestion control, known after setup()
        self.load = os.path.join(self.build, "ppbench_load")
        self.ppinject = os.path.join(self.build, "ppinject")
        self.bpf_bench = os.path.join(self.build, "bpf_bench")
        self.out = os.path.join(self.build, "bench")
        os.makedirs(self.out, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="ppbench.")
        self.procs = Processes(self.tmp)
        self.results = {}
        self.notes = []
        self.start = time.monotonic()

    def setup(self):
        self.host_cc = topology.up(self.tmp, self.congestion)

    def cleanup(self):
        self.procs.stop_all()
        topology.down()
        for root in PIN_ROOTS:
            path = f"/sys/fs/bpf/{root}"
            if os.path.exists(path):
                subprocess.run([self.ppinject, "detach", "--config",
                                os.path.join(self.tmp, f"{root}.toml")], capture_output=True)
                shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def budget_left(self):
        return BUDGET_S - (time.monotonic() - self.start)

    def client(self, args, timeout, ns=topology.NS_CLIENT):
        """One ppbench_load client run; returns the JSON it prints."""
        r = subprocess.run(["ip", "netns", "exec", ns, self.load] + args,
                           capture_output=True, text=True, timeout=timeout)
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError:
            raise BenchError(f"ppbench_load {' '.join(args)}: {r.stderr.strip() or r.stdout}")
