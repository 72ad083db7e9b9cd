"""Bus efficiency: polled Modbus transactions per second on the virtual RS-485 bus, against the
wire-time ceiling of ../shared/DOMAIN.md.

The line is hil_tests.bus.VirtualBus with real baud pacing (11 bits a character, half duplex).
The master is the gateway's own transaction code, gateway.modbus_bus.Bus (its pymodbus client,
configured as the gateway configures it: retries 0, the baud-derived response timeout, the bus
lock, the wire-time accounting), calling one read after another. The slave is, per row:

- `firmware`: the real node firmware on an emulated board (hil_tests/emulator, its own process);
  1 register (STATUS, 0x0010) and 8 registers (the status block 0x0010-0x0017). A node cannot
  serve 32: its longest contiguous range is the 13 configuration registers at 0x0040
  (protocol/registers.py), and any read crossing a gap gets exception 02.
- `crowd`: hil_tests/crowd.py, a light responder built on protocol/ (not the firmware), in
  `--flat` mode so that 32 registers can be read, answering exactly t3.5 after the request
  (the earliest the spec allows): the gateway side measured alone.
- `gateway loop`: the gateway's whole poll loop (Bus.run: plan, read the status block, report
  the sample) against the firmware, 8 registers.
- `USB 16 ms`: the gateway's reads through a USB-RS485 adapter that holds received bytes for
  its default 16 ms latency timer (FTDI; the virtual bus's latency fault), 8 registers.

Ceiling: T = (8 + 5 + 2N) x 11 / baud + 2 x t3.5 (gateway/bus_timing.py). The line itself is
recorded byte by byte (a VirtualBus that logs every byte it puts on the line), so each row also
shows where a transaction's time goes: the characters, the node's turnaround (last request
byte to first response byte) and the gateway's gap (last response byte to the next request),
each against the t3.5 the ceiling counts for it. A ratio above 1 means a silence shorter than
t3.5: the spec asks for at least t3.5 between frames; the ceiling assumes exactly that.

Run: `python -m bench.bus_bench` (about a minute: 2 s a point), `--full` (10 s a point).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.bus_timing import ceiling_per_s, read_transaction_us, response_timeout_s
from gateway.modbus_bus import Bus
from gateway.model import Sample, Silent
from hil_tests.bus.virtual_bus import VirtualBus, _Byte, _Device
from hil_tests.crowd import CrowdProcess
from hil_tests.emulator.process import EmulatorProcess
from protocol import registers as r
from protocol.timing import BITS_PER_CHAR, t35_us

BAUDS = (9600, 19200, 115200)
COUNTS = (1, 8, 32)
GATEWAY = "gateway"
USB = "gateway-usb"  # the gateway behind a USB-RS485 adapter's receive latency
USB_LATENCY_MS = 16.0
UNIT = 1


# --- the line, byte by byte ---------------------------------------------------------------


class RecordingBus(VirtualBus):
    """A VirtualBus that keeps (source, start, end) of every byte it puts on the line."""

    def __init__(self, baud: int, **kw: object) -> None:
        super().__init__(baud, **kw)  # type: ignore[arg-type]
        self.record: list[tuple[str, float, float]] = []
        self.recording = False

    def _on_line(self, source: _Device, byte: _Byte, sources: list[_Device]) -> None:
        if self.recording:
            self.record.append((source.name, byte.start, byte.end))
        super()._on_line(source, byte, sources)

    def __enter__(self) -> RecordingBus:
        self.start()
        return self

    def take(self) -> list[tuple[str, float, float]]:
        with self._lock:
            out, self.record = self.record, []
        return out


@dataclass(frozen=True)
class Frame:
    source: str
    start: float  # first bit of the first byte on the line
    end: float  # last bit of the last byte
    nbytes: int


def frames(record: Sequence[tuple[str, float, float]], char_s: float) -> list[Frame]:
    """Bytes on the line -> frames: a new frame when the sender changes or after a silence of
    more than 1.5 character times (spec 2.5.1.1, t1.5)."""
    out: list[Frame] = []
    for source, start, end in record:
        last = out[-1] if out else None
        if last and last.source == source and start - last.end <= 1.5 * char_s:
            out[-1] = Frame(source, last.start, end, last.nbytes + 1)
        else:
            out.append(Frame(source, start, end, 1))
    return out


@dataclass(frozen=True)
class Split:
    """Medians, in seconds, of where one transaction's time goes on the line."""

    transactions: int
    turnaround_s: float  # request's last bit -> response's first bit (the node)
    gap_s: float  # response's last bit -> next request's first bit (the gateway)
    cycle_s: float  # request start -> next request start


def split(fs: Sequence[Frame], master: str = GATEWAY) -> Split | None:
    """Pair each request (a frame from `master`) with the response after it and the request
    after that; medians over the pairs. None when there are none."""
    turn, gap, cycle = [], [], []
    for a, b, c in zip(fs, fs[1:], fs[2:], strict=False):
        if a.source == master and b.source != master and c.source == master:
            turn.append(b.start - a.end)
            gap.append(c.start - b.end)
            cycle.append(c.start - a.start)
    if not turn:
        return None
    med = statistics.median
    return Split(len(turn), med(turn), med(gap), med(cycle))


# --- the master ---------------------------------------------------------------------------


async def _sink(reading: Sample | Silent) -> None:
    pass


@dataclass
class Point:
    slave: str
    baud: int
    registers: int
    rate: float  # transactions/s answered
    timeouts: int
    errors: int
    split: Split | None
    load: float

    @property
    def ceiling(self) -> float:
        return ceiling_per_s(self.baud, self.registers)


async def _reads(
    line: RecordingBus, path: Path, baud: int, address: int, count: int, seconds: float
) -> tuple[float, int, int]:
    """One read after another through gateway.modbus_bus.Bus for `seconds`: (answered/s,
    timeouts, errors)."""
    bus = Bus(
        "bench",
        [("node", UNIT)],
        _sink,
        port=str(path),
        baud=baud,
        parity="N",  # a pty refuses parity settings
        timeout_s=response_timeout_s(baud, count),  # as Bus derives it, for this read length
        offline_after=1 << 30,
    )
    device = bus.devices[0]
    async with bus:
        await bus._open()
        for _ in range(3):  # warm up: the port, the node's link loop at its busy pace
            await bus._read(device, address, count)
        answered, timeouts, errors = (
            device.stats.answers,
            device.stats.timeouts,
            device.stats.errors,
        )
        line.take()
        line.recording = True
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            await bus._read(device, address, count)
        line.recording = False
        s = device.stats
        return (s.answers - answered) / elapsed, s.timeouts - timeouts, s.errors - errors


async def _loop(line: RecordingBus, path: Path, baud: int, seconds: float) -> tuple[float, int]:
    """The gateway's poll loop (Bus.run) on one node, status block only: (samples/s, silent)."""
    counts = {"sample": 0, "silent": 0}

    async def count(reading: Sample | Silent) -> None:
        counts["sample" if isinstance(reading, Sample) else "silent"] += 1

    bus = Bus(
        "bench", [("node", UNIT)], count, port=str(path), baud=baud, parity="N",
        measure_every=1000, status_every_s=0.0,
    )  # fmt: skip
    async with bus:
        task = asyncio.create_task(bus.run())
        await asyncio.sleep(0.5)  # opened, identity and counters read in the first cycle
        line.take()
        line.recording = True
        before = dict(counts)
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - start
        line.recording = False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return (counts["sample"] - before["sample"]) / elapsed, counts["silent"] - before["silent"]


def _load() -> float:
    return os.getloadavg()[0]


def run_baud(baud: int, seconds: float, tmp: Path, counts: Sequence[int] = COUNTS) -> list[Point]:
    points: list[Point] = []
    char_s = BITS_PER_CHAR / baud
    with RecordingBus(baud) as line:
        node_path = line.attach("node")
        gw = line.attach(GATEWAY)
        node = EmulatorProcess(tmp / f"fs{baud}", node_path, address=UNIT, baud=baud)
        node.start()
        try:
            node.wait_event("uart")
            for count in (c for c in counts if c <= r.STATUS_BLOCK_LEN):
                rate, to, err = asyncio.run(_reads(line, gw, baud, r.STATUS, count, seconds))
                sp = split(frames(line.take(), char_s))
                points.append(Point("firmware", baud, count, rate, to, err, sp, _load()))
            if r.STATUS_BLOCK_LEN in counts:
                rate, silent = asyncio.run(_loop(line, gw, baud, seconds))
                sp = split(frames(line.take(), char_s))
                points.append(
                    Point("firmware, gateway loop", baud, 8, rate, silent, 0, sp, _load())
                )
                # The same through a USB adapter at its default 16 ms latency timer (FTDI).
                usb = line.attach(USB, latency_ms=USB_LATENCY_MS)
                rate, to, err = asyncio.run(_reads(line, usb, baud, r.STATUS, 8, seconds))
                sp = split(frames(line.take(), char_s), USB)
                points.append(Point("firmware, USB 16 ms", baud, 8, rate, to, err, sp, _load()))
        finally:
            node.stop()
    with RecordingBus(baud) as line:
        crowd_path = line.attach("crowd")
        gw = line.attach(GATEWAY)
        with CrowdProcess(crowd_path, [UNIT], turnaround_s=t35_us(baud) / 1e6, flat=True):
            for count in counts:
                rate, to, err = asyncio.run(_reads(line, gw, baud, 0, count, seconds))
                sp = split(frames(line.take(), char_s))
                points.append(Point("crowd (t3.5)", baud, count, rate, to, err, sp, _load()))
    return points


def report(points: Sequence[Point]) -> None:
    print(
        f"  {'baud':>6} {'regs':>4}  {'slave':<24}{'tx/s':>7} {'ceiling':>8} {'ratio':>6}"
        f"  {'turnaround':>10} {'gw gap':>7} {'t3.5':>6} {'chars':>6}  {'lost':>4}  load"
    )
    for p in points:
        sp = p.split
        t35 = t35_us(p.baud) / 1000
        chars = (read_transaction_us(p.baud, p.registers) - 2 * t35_us(p.baud)) / 1000
        turn = f"{sp.turnaround_s * 1000:8.2f}ms" if sp else f"{'-':>10}"
        gap = f"{sp.gap_s * 1000:5.2f}ms" if sp else f"{'-':>7}"
        print(
            f"  {p.baud:>6} {p.registers:>4}  {p.slave:<24}{p.rate:7.1f} {p.ceiling:8.1f} "
            f"{p.rate / p.ceiling:6.2f}  {turn} {gap} {t35:4.2f}ms {chars:4.1f}ms  "
            f"{p.timeouts + p.errors:>4}  {p.load:.2f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.bus_bench", description=__doc__.split("\n")[0]
    )
    p.add_argument("--full", action="store_true", help="10 s a point instead of 2")
    p.add_argument("--baud", type=int, action="append", help="only this baud (repeatable)")
    a = p.parse_args(argv)
    seconds = 10.0 if a.full else 2.0
    # The bus relay (a thread, so the line can be recorded) shares this process with the master's
    # event loop: at CPython's default 5 ms GIL switch interval its hand-offs would land in the
    # figures as bus time. A real line has no such coupling.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # timeouts are counted instead
    print(
        "bus efficiency: gateway.modbus_bus.Bus (pymodbus) on hil_tests VirtualBus, "
        f"{seconds:g} s a point; load at start {_load():.2f}"
    )
    print("  (ratio = tx/s / ceiling; ceiling = (13 + 2N) x 11 / baud + 2 x t3.5 per read; "
          "turnaround and gw gap: medians on the line)")  # fmt: skip
    points: list[Point] = []
    with tempfile.TemporaryDirectory(prefix="firelane-busbench-") as tmp:
        for baud in a.baud or BAUDS:
            batch = run_baud(baud, seconds, Path(tmp))
            report(batch)
            points += batch
    sys.setswitchinterval(switch)


if __name__ == "__main__":
    main()
