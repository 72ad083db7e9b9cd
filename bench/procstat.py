"""CPU time and resident memory of a process, from /proc (Linux), for the benchmarks.

cpu = CpuMeter(pid)      # starts counting now
...
cpu.percent()            # % of one core since the last call (or since it was made)
rss_bytes(pid)
"""

from __future__ import annotations

import os
import time

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pid: int) -> int:
    """Resident set size (/proc/PID/status, VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


class CpuMeter:
    """A process's CPU use as % of one core between calls to percent()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = cpu_seconds(pid)
        self._at = time.monotonic()

    def percent(self) -> float:
        cpu, at = cpu_seconds(self.pid), time.monotonic()
        out = 100 * (cpu - self._cpu) / max(at - self._at, 1e-9)
        self._cpu, self._at = cpu, at
        return out
