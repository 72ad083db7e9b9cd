"""The durable outbox on this machine's disk: alarms committed per second and restart time.

Every put is committed and fsynced, so these figures are the storage's fsync rate more than
Python's: an SD card on a Raspberry Pi is far slower than a server SSD. The database goes in a
temporary directory under $FIRELANE_BENCH_DIR (default: the system's temporary directory; point it
at the gateway's real storage path to measure that device). Each figure is the best of several
runs. Run with `make bench` or `python -m bench.outbox_bench`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gateway.model import Priority
from gateway.outbox import Item, Outbox

PAYLOAD = b'{"v":1,"kind":"alarm","node":"house-17-kitchen","source":"smoke","value":3.2}' * 2
RESTART_ENTRIES = 100_000


def best(fn: Callable[[], float], repeat: int = 3) -> float:
    """The best (highest) of `repeat` runs of fn, which returns a rate."""
    return max(fn() for _ in range(repeat))


def single_put_rate(path: Path, n: int = 300) -> float:
    """Alarms per second, one put (one transaction, one fsync) each."""
    with Outbox(path) as ob:
        start = time.perf_counter()
        for _ in range(n):
            ob.put(Priority.ALARM, "site/gw/alarm", PAYLOAD)
        return n / (time.perf_counter() - start)


def burst_rate(path: Path, bursts: int = 30, size: int = 100) -> float:
    """Alarms per second in put_many bursts of `size` (one fsync per burst)."""
    items: list[Item] = [(Priority.ALARM, "site/gw/alarm", PAYLOAD, None, False, False)] * size
    with Outbox(path) as ob:
        start = time.perf_counter()
        for _ in range(bursts):
            ob.put_many(items)
        return bursts * size / (time.perf_counter() - start)


def drain_rate(path: Path) -> float:
    """Entries per second through pending(100) then one ack per entry, as the uplink drains."""
    with Outbox(path) as ob:
        start, n = time.perf_counter(), 0
        while batch := ob.pending(100):
            for entry in batch:
                ob.ack(entry.seq)
            n += len(batch)
        return n / (time.perf_counter() - start)


def fill(path: Path, n: int) -> None:
    """n entries: a fifth alarms, a fifth faults, the rest telemetry, put in bursts."""
    mix = [Priority.ALARM, Priority.FAULT] + [Priority.TELEMETRY] * 3
    with Outbox(path, max_telemetry=n) as ob:
        for start in range(0, n, 1000):
            stop = min(n, start + 1000)
            ob.put_many(
                [
                    (mix[i % 5], f"site/gw/n{i % 64}", PAYLOAD, None, False, False)
                    for i in range(start, stop)
                ]
            )


def restart_times(path: Path, repeat: int = 5) -> tuple[float, float]:
    """Best seconds to open the outbox, and to get the first pending(100) after opening."""
    best_open = best_first = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        with Outbox(path, max_telemetry=RESTART_ENTRIES) as ob:
            opened = time.perf_counter()
            ob.mark_backlog()  # as the uplink does on connecting: all of it is backlog
            first = ob.pending(100)
            done = time.perf_counter()
        if len(first) != 100:
            raise RuntimeError(f"expected 100 pending entries, got {len(first)}")
        best_open = min(best_open, opened - start)
        best_first = min(best_first, done - opened)
    return best_open, best_first


def main() -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("FIRELANE_BENCH_DIR")) as tmp:
        where = Path(tmp)
        print(f"outbox (SQLite WAL, synchronous=FULL) in {where}")
        single = best(lambda: single_put_rate(where / "single.db"))
        burst = best(lambda: burst_rate(where / "burst.db"))
        print(f"  durable alarm puts, one fsync each              {single:10,.0f} alarms/s")
        print(f"  durable put_many bursts of 100                  {burst:10,.0f} alarms/s")
        print(f"  drain: pending(100), ack each (not fsynced)     "
              f"{drain_rate(where / 'burst.db'):10,.0f} entries/s")  # fmt: skip
        path = where / "restart.db"
        fill(path, RESTART_ENTRIES)
        opened, first = restart_times(path)
        size_mb = path.stat().st_size / 1e6
        print(f"  restart with {RESTART_ENTRIES:,} queued ({size_mb:.0f} MB): "
              f"open {opened * 1e3:.1f} ms, first pending(100) {first * 1e3:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
