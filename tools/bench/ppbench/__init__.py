"""make bench, by concern; tools/bench/run.py puts the pieces together.

procs      commands, the processes the bench starts, CPU accounting
topology   the namespaces (tools/topology.sh) and the front's DNAT for UDP
peers      what runs in them: sinks, ppinject, HAProxy, nginx, and the cases that reach each
bench      one run's state: paths, options, processes, results; cleanup
rounds     interleaved rounds and the ratios paired within them
scenarios  one function per scenario
report     tables, chart, run metadata, result files
"""

GIB = 1 << 30
MIB = 1 << 20
