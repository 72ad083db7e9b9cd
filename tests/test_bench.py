"""What the benchmarks compute: the wire ceiling against hand-computed values, the split of a
recorded line into frames and turnaround / gap, and the /proc readings."""

from __future__ import annotations

import os

import pytest

from bench.bus_bench import frames, split
from bench.procstat import CpuMeter, cpu_seconds, rss_bytes
from gateway.bus_timing import ceiling_per_s, read_transaction_us


def test_ceiling_against_hand_computed_values() -> None:
    # 19200 baud, 8 registers: (8 + 5 + 16) = 29 characters x 11 bits / 19200 = 16,614.6 us,
    # plus 2 x t3.5 (3.5 x 11 / 19200 = 2,005.2 us, rounded up: 2,006): 20,626 us.
    assert read_transaction_us(19200, 8) == 16614 + 2 * 2006
    assert ceiling_per_s(19200, 8) == pytest.approx(1e6 / 20626)
    # 115200 baud, 32 registers: 77 x 11 / 115200 = 7,352.4 us, t3.5 fixed at 1,750 us.
    assert read_transaction_us(115200, 32) == 7352 + 3500
    assert ceiling_per_s(115200, 32) == pytest.approx(92.15, abs=0.01)


def test_line_record_splits_into_turnaround_and_gap() -> None:
    c = 11 / 19200  # one character
    record: list[tuple[str, float, float]] = []

    def burst(source: str, start: float, n: int) -> float:
        for i in range(n):
            record.append((source, start + i * c, start + (i + 1) * c))
        return start + n * c

    t = 0.0
    for _ in range(3):  # request, 2 ms turnaround, response, 1 ms gateway gap
        end = burst("gateway", t, 8)
        end = burst("node", end + 0.002, 21)
        t = end + 0.001
    fs = frames(record, c)
    assert [f.source for f in fs] == ["gateway", "node"] * 3
    assert (fs[0].source, fs[0].start, fs[0].nbytes) == ("gateway", 0.0, 8)
    assert fs[0].end == pytest.approx(8 * c)
    sp = split(fs)
    assert sp is not None and sp.transactions == 2
    assert sp.turnaround_s == pytest.approx(0.002) and sp.gap_s == pytest.approx(0.001)
    assert sp.cycle_s == pytest.approx(29 * c + 0.003)
    # A silence longer than 1.5 characters inside one sender's bytes starts a new frame.
    assert len(frames([("a", 0, c), ("a", 2.6 * c, 3.6 * c)], c)) == 2


def test_proc_readings_of_this_process() -> None:
    assert 1 << 20 < rss_bytes(os.getpid()) < 1 << 33
    meter = CpuMeter(os.getpid())
    before = cpu_seconds(os.getpid())
    sum(range(2_000_000))  # burn some CPU
    assert cpu_seconds(os.getpid()) > before
    assert meter.percent() > 0
