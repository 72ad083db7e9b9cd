"""End-to-end alarm latency, p50 and p99: from a node's smoke input crossing its alarm threshold
to the alarm event at an MQTT subscriber, polled and pushed, against the round-robin bound and
the 10 s of EN 54-2 (../shared/DOMAIN.md).

What is real and what is not, per run (printed with every row):

- real: the gateway process (`firelane gateway run`, its config from hil_tests/gateway_kit.py),
  mosquitto on loopback (tests/gateway/mosquitto.py), the virtual RS-485 bus with baud pacing
  (`python -m hil_tests.bus`, its own process), and R emulated nodes running the real firmware
  (hil_tests/emulator, one process each). The alarms are raised on these R nodes only: the
  smoke input set to 3.5 %/m through the control socket (threshold 2.4 %/m).
- crowd: the other N - R nodes of the bus are ONE light process (hil_tests/crowd.py) answering
  Modbus for all their addresses with an idle node's registers and the firmware's turnaround
  (measured by bench.bus_bench), so the gateway's poll cycle has the length of an N-node line;
  in push mode it sends their heartbeats instead. An emulated node costs ~7 % of a core idle
  and 10-14 % polled on this machine (`--cost` measures it): 64 of them do not fit 2 cores.

Each real node loops on its own: random pause, smoke on (t0), the alarm at the subscriber (t1),
smoke off, its restore at the subscriber; latency = t1 - t0. The nodes run concurrently, so
several alarms can be in flight at once (a fire spreading); in push mode their frames contend
for the line, as they would.

Bounds: firmware detection is 2-3 s (smoke is read at 1 Hz and must stay above the threshold
for 2 s: three readings); the round-robin bound adds one poll cycle (the gateway's own measured
cycle, from its status file), the push bound one frame and one retransmission (250 ms).

Run: `python -m bench.latency_bench` (32 nodes at 19200 baud, polled and pushed, ~3 min);
`--full` (8, 32 and 64 nodes at 19200 and 115200, both modes, more samples: ~30 min);
`--cost` (what one emulated node costs in CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from bench.procstat import CpuMeter
from gateway.bus_timing import read_transaction_us
from hil_tests.crowd import UID_PREFIX, CrowdProcess
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.gateway_kit import GATEWAY, PREFIX, start_gateway, stop_gateway, write_config
from tests.gateway.mosquitto import Mosquitto

SMOKE_FIRE = 3.5  # %/m, above the 2.40 %/m alarm threshold
DETECT_MIN_S, DETECT_MAX_S = 2.0, 3.0  # docs/firmware.md: 2 s above, read at 1 Hz
EN54_S = 10.0
STATUS_EVERY_S = 0.05  # the fastest the config allows: the line is kept busy
HEARTBEAT_S = 10  # push mode: each node's heartbeat (supervision 30 s)
RETRANSMIT_S = 0.25  # push mode: the first resend (docs/firmware.md)
# The firmware's median turnaround on the virtual bus (bench.bus_bench): the crowd answers so.
TURNAROUND_S = {9600: 0.0025, 19200: 0.0017, 115200: 0.0008}


@dataclass
class Config:
    nodes: int
    baud: int
    mode: str  # "poll" or "push"
    real: int
    samples: int  # at least this many alarms, over all real nodes


@dataclass
class Result:
    cfg: Config
    latencies: list[float] = field(default_factory=list)
    cycle_s: float | None = None
    load: list[float] = field(default_factory=list)
    gateway_cpu: float = 0.0
    missed: int = 0

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[max(0, math.ceil(q * len(xs)) - 1)]


class Bench:
    """One configuration: bus, broker, nodes, crowd, gateway; then the alarm loops."""

    def __init__(self, cfg: Config, tmp: Path) -> None:
        self.cfg = cfg
        self.tmp = tmp
        self.stack = contextlib.ExitStack()
        self.real = list(range(1, cfg.real + 1))
        self.crowd = list(range(cfg.real + 1, cfg.nodes + 1))

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def _bus(self) -> dict[str, str]:
        names = ["gateway", *(f"node{a}" for a in self.real)] + (["crowd"] if self.crowd else [])
        proc = subprocess.Popen(
            [sys.executable, "-m", "hil_tests.bus", "--baud", str(self.cfg.baud),
             "--devices", ",".join(names), "--dir", str(self.tmp / "bus")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.stack.callback(_stop, proc)
        assert proc.stdout is not None
        devices: dict[str, str] = json.loads(proc.stdout.readline())["devices"]
        self.bus_pid = proc.pid
        return devices

    def start(self) -> None:
        cfg = self.cfg
        devices = self._bus()
        self.broker = self.stack.enter_context(Mosquitto(self.tmp / "broker"))
        self.nodes: dict[int, EmulatorProcess] = {}
        for a in self.real:
            fs = self.tmp / f"fs{a}"
            fs.mkdir()
            if cfg.mode == "push":
                settings = {"address": a, "baud": cfg.baud, "link_mode": "push"}
                (fs / "config.json").write_text(json.dumps(settings | {"heartbeat_s": 10}))
            node = EmulatorProcess(fs, devices[f"node{a}"], address=a, baud=cfg.baud)
            node.start(wait=False)
            self.stack.callback(node.stop)
            self.nodes[a] = node
        for node in self.nodes.values():
            node.wait_event("uart", 30.0)
        if self.crowd:
            crowd = CrowdProcess(
                devices["crowd"],
                self.crowd,
                turnaround_s=TURNAROUND_S.get(cfg.baud, 0.001),
                heartbeat_s=HEARTBEAT_S if cfg.mode == "push" else None,
                baud=cfg.baud,
            )
            self.stack.enter_context(crowd)
            self.crowd_pid = crowd.pid
        config = self._config(Path(devices["gateway"]))
        self.gateway = start_gateway(self.tmp, config)
        self.stack.callback(stop_gateway, self.gateway)

    def _config(self, serial: Path) -> Path:
        cfg = self.cfg
        members = [(f"node-{a}", a, f"H{a}", "Z") for a in range(1, cfg.nodes + 1)]
        return write_config(
            self.tmp,
            self.broker.port,
            serial,
            members,
            baud=cfg.baud,
            kind="rtu" if cfg.mode == "poll" else "push",
            status_every_s=STATUS_EVERY_S,
            node_ids={f"node-{a}": UID_PREFIX | a for a in range(1, cfg.nodes + 1)},
        )

    async def run(self) -> Result:
        result = Result(self.cfg)
        arrived: dict[tuple[str, str], asyncio.Event] = {}
        when: dict[tuple[str, str], float] = {}
        seen: set[str] = set()
        all_seen = asyncio.Event()

        async with aiomqtt.Client("127.0.0.1", self.broker.port) as client:
            await client.subscribe(f"{PREFIX}/{GATEWAY}/#", qos=1)

            async def listen() -> None:
                async for m in client.messages:
                    now = time.monotonic()
                    topic = str(m.topic)
                    if topic.endswith("/state"):
                        seen.add(topic.split("/")[-2])
                        if all(f"node-{a}" in seen for a in self.real):
                            all_seen.set()
                    if topic != f"{PREFIX}/{GATEWAY}/event":
                        continue
                    assert isinstance(m.payload, bytes | bytearray)
                    doc = json.loads(m.payload)
                    if doc.get("source") != "smoke" or doc["kind"] not in ("alarm", "restore"):
                        continue
                    k = (doc["node"], doc["kind"])
                    when[k] = now
                    if k in arrived:
                        arrived[k].set()

            listener = asyncio.create_task(listen())
            try:
                async with asyncio.timeout(60):
                    await all_seen.wait()
                await asyncio.sleep(4.0)  # the nodes' power-up self-test (3 s) is over
                gw_cpu = CpuMeter(self.gateway.pid)
                per_node = -(-self.cfg.samples // len(self.real))
                await asyncio.gather(
                    *(self._node_loop(a, per_node, result, arrived, when) for a in self.real)
                )
                result.gateway_cpu = gw_cpu.percent()
                result.load.append(os.getloadavg()[0])
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
        result.cycle_s = self._cycle_s()
        return result

    async def _node_loop(
        self,
        a: int,
        samples: int,
        result: Result,
        arrived: dict[tuple[str, str], asyncio.Event],
        when: dict[tuple[str, str], float],
    ) -> None:
        rng = random.Random(a)
        name = f"node-{a}"
        with self.nodes[a].control() as ctl:
            for _ in range(samples):
                await asyncio.sleep(rng.uniform(0.0, 2.0))  # any phase of sampling and cycle
                alarm, restore = asyncio.Event(), asyncio.Event()
                arrived[(name, "alarm")], arrived[(name, "restore")] = alarm, restore
                t0 = time.monotonic()
                await asyncio.to_thread(ctl.set, smoke_pct=SMOKE_FIRE)
                try:
                    async with asyncio.timeout(30):
                        await alarm.wait()
                    result.latencies.append(when[(name, "alarm")] - t0)
                except TimeoutError:
                    result.missed += 1
                await asyncio.to_thread(ctl.set, smoke_pct=0.0)
                async with asyncio.timeout(60):
                    await restore.wait()
                result.load.append(os.getloadavg()[0])

    def _cycle_s(self) -> float | None:
        """The gateway's own last poll cycle (its status file, written every 5 s)."""
        path = self.tmp / "gateway.status.json"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        for bus in doc.get("buses", []):
            ms = bus.get("cycle_ms")
            if ms:
                return float(ms) / 1000
        return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def bound_s(r: Result) -> float:
    """Round-robin (poll) or one frame plus one resend (push), after detection."""
    if r.cfg.mode == "poll":
        cycle = r.cycle_s
        if cycle is None:
            cycle = max(STATUS_EVERY_S, r.cfg.nodes * read_transaction_us(r.cfg.baud, 8) / 1e6)
        return DETECT_MAX_S + cycle
    frame = 40 * 11 / r.cfg.baud  # an event frame and its ACK, with margin
    return DETECT_MAX_S + frame + RETRANSMIT_S


def measure(cfg: Config) -> Result:
    with tempfile.TemporaryDirectory(prefix="firelane-latency-") as tmp, Bench(cfg, Path(tmp)) as b:
        b.start()
        return asyncio.run(b.run())


def report(r: Result) -> None:
    c = r.cfg
    n = len(r.latencies)
    real = f"{c.real} real + {c.nodes - c.real} crowd" if c.nodes > c.real else f"{c.real} real"
    if not n:
        print(f"  {c.nodes:>3} {c.baud:>6} {c.mode:<5} no alarm arrived ({r.missed} missed)")
        return
    cyc = f"{r.cycle_s * 1000:6.0f}ms" if r.cycle_s else f"{'-':>8}"
    print(
        f"  {c.nodes:>3} {c.baud:>6} {c.mode:<5} {real:<18} {n:>4} "
        f"{statistics.median(r.latencies):6.2f}s {r.pct(0.99):6.2f}s {max(r.latencies):6.2f}s"
        f"  {cyc} {bound_s(r):6.2f}s {EN54_S:5.1f}s  {r.missed:>3}  "
        f"{r.gateway_cpu:5.1f}%  {min(r.load):.1f}-{max(r.load):.1f}"
    )


HEADER = (
    f"  {'N':>3} {'baud':>6} {'mode':<5} {'nodes':<18} {'n':>4} {'p50':>7} {'p99':>7} "
    f"{'max':>7}  {'cycle':>8} {'bound':>7} {'EN54':>6}  {'lost':>3}  {'gw cpu':>6}  load"
)


def cost(seconds: float = 8.0) -> None:
    """CPU of one emulated node: idle, and polled by the gateway's Bus on a 4-node line."""
    from bench.resources_bench import emulated_node_cost

    for baud in (19200, 115200):
        idle, polled = emulated_node_cost(baud, seconds)
        print(
            f"  one emulated node at {baud} baud: {idle:.1f} % of a core idle, {polled:.1f} % "
            f"polled (median of 4; load {os.getloadavg()[0]:.1f})"
        )


def main(argv: Sequence[str] | None = None) -> None:
    doc = __doc__.split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m bench.latency_bench", description=doc)
    p.add_argument("--full", action="store_true", help="the whole grid, more samples")
    p.add_argument("--nodes", type=int, action="append", help="bus population (repeatable)")
    p.add_argument("--baud", type=int, action="append", help="baud (repeatable)")
    p.add_argument("--mode", choices=("poll", "push"), action="append")
    p.add_argument("--real", type=int, default=4, help="real emulated nodes (default 4)")
    p.add_argument("--samples", type=int, default=None, help="alarms per configuration")
    p.add_argument("--cost", action="store_true", help="measure one emulated node's CPU, only")
    a = p.parse_args(argv)
    if a.cost:
        cost()
        return
    nodes = a.nodes or ([8, 32, 64] if a.full else [32])
    bauds = a.baud or ([19200, 115200] if a.full else [19200])
    modes = a.mode or ["poll", "push"]
    samples = a.samples or (40 if a.full else 12)
    print(
        "alarm latency, smoke input -> MQTT subscriber: real gateway, mosquitto, virtual bus, "
        f"{a.real} real emulated nodes (the alarms), crowd for the rest (hil_tests/crowd.py); "
        f"polled with status_every_s = {STATUS_EVERY_S}; load at start {os.getloadavg()[0]:.2f}"
    )
    print(
        f"  bound = detection {DETECT_MIN_S:g}-{DETECT_MAX_S:g} s + one poll cycle (poll) or a "
        "frame and one resend (push); p99 of n samples is their ceil(0.99 n)-th"
    )
    print(HEADER)
    for mode in modes:
        for baud in bauds:
            for n in nodes:
                cfg = Config(n, baud, mode, min(a.real, n), samples)
                report(measure(cfg))


if __name__ == "__main__":
    main()
