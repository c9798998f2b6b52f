#!/usr/bin/env python3
"""The machine's load during one benchmark round, for scripts/bench.sh (issue 18, item 4).

A round is only worth comparing with its partner if nothing else used the CPU meanwhile: on a
2-core machine, a compiler or a test suite running beside wrk moves a figure by tens of percent.
This reads every process's CPU time from /proc before and after a round and reports what was used
by processes that are not part of the benchmark (the load generators, the servers, PostgreSQL,
Redis, and kernel threads, which carry the loopback traffic).

    bench-load.py snapshot FILE                 # CPU seconds per process, now, into FILE
    bench-load.py foreign BEFORE AFTER SECONDS  # prints: cores used by other processes, and
                                                # the three biggest of them ("name=cores,...")
"""

import json
import os
import sys

# Process names (as /proc/PID/stat gives them: at most 15 characters) that belong to the
# benchmark itself.
BENCHMARK = {
    "flashsale-serve",  # flashsale-server, truncated by the kernel
    "flashsale",
    "wrk",
    "oha",
    "pgbench",
    "postgres",
    "redis-server",
    "bash",
    "python3",
    "curl",
    "awk",
    "psql",
}


def snapshot():
    """{pid: [name, cpu_seconds, is_kernel_thread]} for every process readable now."""
    ticks = os.sysconf("SC_CLK_TCK")
    processes = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # The name is in parentheses and may hold spaces; the fields after it are fixed.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        kernel_thread = ppid == 2 or pid == "2"
        processes[pid] = [name, (utime + stime) / ticks, kernel_thread]
    return processes


def foreign(before, after, seconds):
    used = {}
    for pid, (name, cpu, kernel_thread) in after.items():
        if kernel_thread or name in BENCHMARK:
            continue
        # A process that started during the round counts from zero.
        start = before.get(pid, [name, 0.0, False])[1]
        if cpu - start > 0:
            used[name] = used.get(name, 0.0) + (cpu - start)
    total = sum(used.values()) / seconds
    top = sorted(used.items(), key=lambda kv: -kv[1])[:3]
    return total, ",".join(f"{n}={c / seconds:.2f}" for n, c in top if c / seconds >= 0.01)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "snapshot":
        with open(sys.argv[2], "w") as f:
            json.dump(snapshot(), f)
    elif len(sys.argv) == 5 and sys.argv[1] == "foreign":
        with open(sys.argv[2]) as f:
            before = json.load(f)
        with open(sys.argv[3]) as f:
            after = json.load(f)
        total, top = foreign(before, after, float(sys.argv[4]))
        print(f"{total:.3f}\t{top or '-'}")
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
