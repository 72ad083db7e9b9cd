"""The Modbus bus against pymodbus servers: several nodes on one RS-485 line made of ptys and
paced at 19200 baud (virtual_line.py), one dead, one answering garbage; a node in alarm; the
port pulled out and put back; Modbus TCP through a converter that restarts.

Waits are on the readings the bus reports, each with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import statistics
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.bus_timing import read_transaction_us
from gateway.modbus_bus import Bus
from gateway.model import Sample, Silent
from protocol import registers as r
from tests.gateway.virtual_line import NodeLine, VirtualLine

BAUD = 19200
T8_S = read_transaction_us(BAUD, 8) / 1e6  # a status or counters read on the wire: 20.6 ms
T6_S = read_transaction_us(BAUD, 6) / 1e6  # an identity read: 18.3 ms
LIVE = [("hall", 1), ("kitchen", 2), ("stairs", 3)]
GARBLED = ("shed", 7)
DEAD = ("attic", 9)


class Readings:
    """on_reading for a Bus: keeps everything, and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.items: list[Sample | Silent] = []
        self._changed = asyncio.Event()

    async def __call__(self, reading: Sample | Silent) -> None:
        self.items.append(reading)
        self._changed.set()

    def of(self, node: str, kind: type[Sample] | type[Silent] = Sample) -> list[Any]:
        return [x for x in self.items if x.node == node and isinstance(x, kind)]

    async def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            tail = self.items[-6:]
            raise AssertionError(f"{what}: not within {timeout} s; last readings: {tail}") from None


@asynccontextmanager
async def polling(bus: Bus) -> AsyncIterator[asyncio.Task[None]]:
    async with bus:
        task = asyncio.create_task(bus.run(), name=bus.task_name)
        try:
            yield task
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


@asynccontextmanager
async def rs485(
    tmp: Path, addresses: list[int], **faults: Any
) -> AsyncIterator[tuple[VirtualLine, NodeLine]]:
    line = VirtualLine(tmp / "ttyRS485", BAUD)
    nodes = NodeLine(line.far, addresses, **faults)
    await nodes.start()
    try:
        yield line, nodes
    finally:
        await nodes.stop()
        line.close()


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_live_nodes_keep_their_cycle_past_a_dead_and_a_garbling_node(tmp_path: Path) -> None:
    run(_dead_and_garbling(tmp_path))


async def _dead_and_garbling(tmp: Path) -> None:
    addresses = [a for _, a in LIVE] + [GARBLED[1], DEAD[1]]
    async with rs485(tmp, addresses, dead=[DEAD[1]], garbled=[GARBLED[1]]) as (line, nodes):
        readings = Readings()
        bus = Bus(
            "line1",
            [*LIVE, GARBLED, DEAD],
            readings,
            port=str(line.path),
            baud=BAUD,
            parity="N",  # a pty cannot do 8E1 (tests/gateway/virtual_line.py)
            measure_every=5,
            offline_after=2,
            offline_backoff_max_s=2.0,
            rand=lambda: 1.0,  # back-off at its ceiling: 0.5, 1, 2, 2 ... s
        )
        async with polling(bus):
            loop = asyncio.get_running_loop()
            start = loop.time()
            await readings.wait(lambda: len(readings.of("hall")) >= 80, 30.0, "80 hall readings")
            elapsed = loop.time() - start
            snap = bus.snapshot()
            util = bus.utilisation()
        devs = {d.name: d for d in bus.devices}
        cycles = bus.cycles

    # The live nodes: read every cycle, never offline, values decoded. The server shares this
    # event loop with the bus and the line, so a reply can miss the 47 ms timeout now and then
    # (a late reply is then skipped by the next read); a real node has the USB margin to spare.
    for name, address in LIVE:
        samples, silent = readings.of(name), readings.of(name, Silent)
        assert len(silent) <= max(1, cycles // 50), f"{name} silent too often: {snap}"
        assert abs(len(samples) + len(silent) - cycles) <= 1, (name, len(samples), cycles)
        assert samples[0].smoke_pct_m == pytest.approx((12 + address) / 100)
        assert samples[0].temperature_c == -5.5 and samples[0].supply_v == 12.0
        ident = devs[name].identity
        assert ident is not None and ident.node_id == 0x1A000000 | address, ident
        counters = devs[name].counters
        assert counters is not None and counters.uptime_s == 3600 + address
        # Status every cycle; identity and counters (two more reads) at the first and then
        # every 5th cycle, spread over the nodes by their position (phase).
        phase = devs[name].phase
        measured = sum(1 for c in range(cycles) if c == 0 or (c + phase) % 5 == 0)
        expected = cycles + 2 * measured
        assert expected <= nodes.requests[address] <= expected + 3, (nodes.requests, cycles)

    # The dead node: offline after 2 timeouts, then retried on its back-off only.
    dead = devs[DEAD[0]]
    assert dead.offline and dead.stats.errors == 0 and dead.stats.answers == 0
    retries = 0
    t, step = 0.0, 0.5
    while t + step < elapsed:  # the back-off schedule with rand = 1
        t, step, retries = t + step, min(step * 2, 2.0), retries + 1
    assert 2 + 1 <= dead.stats.polls <= 2 + retries + 1, (dead.stats, elapsed)
    assert dead.stats.timeouts == dead.stats.polls
    assert dead.stats.polls < cycles / 5, (dead.stats.polls, cycles)
    assert len(readings.of(DEAD[0], Silent)) == dead.stats.polls
    assert "no reply within 47 ms" in dead.stats.last_error

    # The garbling node: its replies are counted as errors, not as timeouts; offline too.
    shed = devs[GARBLED[0]]
    assert shed.offline and shed.stats.timeouts == 0 and shed.stats.errors == shed.stats.polls
    assert 3 <= shed.stats.polls < cycles / 5
    assert "not a reply" in shed.stats.last_error
    assert not readings.of(GARBLED[0])

    # The cycle: hall is read first in every cycle, so the gap between two hall readings is
    # one cycle. Its wire time: 3 status reads, plus identity and counters for the nodes
    # measuring in that cycle; an offline retry adds at most one timeout to it.
    hall = [s.at for s in readings.of("hall")]
    gaps = [b - a for a, b in itertools.pairwise(hall)][2:]  # from the 3rd cycle on
    phases = [devs[n].phase for n, _ in LIVE]

    def wire(cycle: int) -> float:
        measuring = sum(1 for p in phases if (cycle + p) % 5 == 0)
        return 3 * T8_S + measuring * (T6_S + T8_S)

    ratios = [gap / wire(k + 2) for k, gap in enumerate(gaps)]
    plain = [gap for k, gap in enumerate(gaps) if wire(k + 2) == 3 * T8_S]
    extra = max(gap - wire(k + 2) for k, gap in enumerate(gaps))
    print(
        f"\ncycle of 3 status reads: median {statistics.median(plain) * 1000:.1f} ms "
        f"(wire {3 * T8_S * 1000:.1f} ms); cycle / wire time median "
        f"{statistics.median(ratios):.2f}, worst extra {extra * 1000:.0f} ms (timeout "
        f"{bus.timeout_s * 1000:.1f} ms); utilisation {util:.2f}; {cycles} cycles in "
        f"{elapsed:.1f} s; dead polled {dead.stats.polls}x, garbled {shed.stats.polls}x"
    )
    assert 0.95 <= statistics.median(ratios) <= 1.25, ratios  # at the wire's pace
    assert extra <= bus.timeout_s + 0.1, gaps  # one retry at most, nothing stalls
    assert util >= 0.75, snap


def test_a_node_in_alarm_is_read_every_cycle_even_when_it_stops_answering(
    tmp_path: Path,
) -> None:
    run(_alarm_node(tmp_path))


async def _alarm_node(tmp: Path) -> None:
    async with rs485(tmp, [1, 2]) as (line, nodes):
        readings = Readings()
        bus = Bus(
            "line1",
            LIVE[:2],
            readings,
            port=str(line.path),
            baud=BAUD,
            parity="N",
            offline_backoff_max_s=30.0,
        )
        kitchen = bus.devices[1]
        async with polling(bus):
            nodes.regs[2][r.STATUS] = r.ST_ALARM | r.ST_SOUNDING
            nodes.regs[2][r.ALARM_SOURCES] = 1 << 1
            await readings.wait(
                lambda: any(s.status & r.ST_ALARM for s in readings.of("kitchen")),
                5.0,
                "the kitchen alarm",
            )
            nodes.dead.add(2)  # the fire takes the node or its cable
            await readings.wait(lambda: kitchen.offline, 5.0, "the kitchen offline")
            polls, hall = kitchen.stats.polls, len(readings.of("hall"))
            await readings.wait(lambda: len(readings.of("hall")) >= hall + 20, 10.0, "20 cycles")
            # Without the alarm its back-off (0.5 s, then longer) would allow 1 or 2 tries.
            assert kitchen.stats.polls - polls >= 19, (kitchen.stats, bus.cycles)
            nodes.dead.discard(2)
            back = len(readings.of("kitchen"))
            cycles = bus.cycles
            await readings.wait(lambda: len(readings.of("kitchen")) > back, 5.0, "kitchen back")
            assert bus.cycles - cycles <= 2, "the first answer waited for a back-off"
            assert not kitchen.offline


def test_port_that_disappears_is_reopened_without_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.modbus_bus")
    run(_port_loss(tmp_path))
    said = [rec.getMessage() for rec in caplog.records if rec.name == "gateway.modbus_bus"]
    assert len(said) == 2 and "lost" in said[0] and "open again" in said[1], said


async def _port_loss(tmp: Path) -> None:
    async with rs485(tmp, [1, 2]) as (line, _nodes):
        readings = Readings()
        bus = Bus(
            "line1",
            LIVE[:2],
            readings,
            port=str(line.path),
            baud=BAUD,
            parity="N",
            reopen_backoff_max_s=0.4,
        )
        async with polling(bus) as task:
            await readings.wait(lambda: len(readings.of("kitchen")) >= 5, 5.0, "polling")
            assert bus.snapshot()["open"]
            mark = len(readings.items)
            line.unplug()  # the USB adapter is pulled out
            # Silent for each node when the loss is seen, and again on each failed reopen.
            await readings.wait(
                lambda: all(
                    sum(1 for x in readings.items[mark:] if x == Silent(n, x.at)) >= 2
                    for n, _ in LIVE[:2]
                ),
                5.0,
                "both nodes silent twice",
            )
            assert not bus.snapshot()["open"] and bus.port_losses == 1
            assert not any(isinstance(x, Sample) for x in readings.items[mark:])
            line.plug()  # back, as a new pty at the same path
            mark = len(readings.items)
            await readings.wait(
                lambda: all(
                    any(isinstance(x, Sample) and x.node == n for x in readings.items[mark:])
                    for n, _ in LIVE[:2]
                ),
                5.0,
                "polling again after the port came back",
            )
            assert not task.done() and bus.port_losses == 1 and bus.snapshot()["open"]
            assert all(not d.offline for d in bus.devices)


@pytest.mark.parametrize("framer", ["socket", "rtu"])  # Modbus TCP, and RTU frames over TCP
def test_modbus_tcp_converter_that_restarts(framer: str) -> None:
    run(_tcp(framer))


async def _tcp(framer: str) -> None:
    kind = FramerType.SOCKET if framer == "socket" else FramerType.RTU

    def devices() -> list[SimDevice]:
        return [
            SimDevice(
                id=a,
                simdata=[SimData(r.STATUS, count=8, values=a, datatype=DataType.REGISTERS)],
            )
            for a in (1, 2)
        ]

    server = ModbusTcpServer(devices(), address=("127.0.0.1", 0), framer=kind)
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    readings = Readings()
    bus = Bus(
        "converter",
        LIVE[:2],
        readings,
        kind="tcp",
        host="127.0.0.1",
        tcp_port=port,
        framer=framer,
        measure_every=1_000_000,  # only the status block is served here
        reopen_backoff_max_s=0.3,
    )
    try:
        async with polling(bus) as task:
            await readings.wait(lambda: len(readings.of("kitchen")) >= 5, 5.0, "polling over TCP")
            assert readings.of("hall")[0].status == 1 and readings.of("kitchen")[0].status == 2
            await server.shutdown()  # type: ignore[no-untyped-call]
            mark = len(readings.items)
            await readings.wait(
                lambda: (
                    {x.node for x in readings.items[mark:] if isinstance(x, Silent)}
                    == {"hall", "kitchen"}
                ),
                5.0,
                "both nodes silent while the converter is down",
            )
            server = ModbusTcpServer(devices(), address=("127.0.0.1", port), framer=kind)
            await server.serve_forever(background=True)
            mark = len(readings.items)
            await readings.wait(
                lambda: sum(isinstance(x, Sample) for x in readings.items[mark:]) >= 4,
                5.0,
                "polling again once the converter is back",
            )
            assert not task.done() and bus.port_losses == 1
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


def test_a_failing_on_reading_is_counted_and_polling_goes_on(tmp_path: Path) -> None:
    run(_failing_callback(tmp_path))


async def _failing_callback(tmp: Path) -> None:
    readings = Readings()
    calls = 0

    async def flaky(reading: Sample | Silent) -> None:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise RuntimeError("a bug in the app")
        await readings(reading)

    async with rs485(tmp, [1]) as (line, _nodes):
        bus = Bus("line1", LIVE[:1], flaky, port=str(line.path), baud=BAUD, parity="N")
        async with polling(bus):
            await readings.wait(lambda: len(readings.of("hall")) >= 5, 5.0, "polling on")
        assert bus.callback_errors >= 5


def test_bad_bus_parameters_are_refused_before_any_io() -> None:
    async def sink(reading: Sample | Silent) -> None:
        pass

    with pytest.raises(ValueError, match="PushReceiver"):
        Bus("b", [], sink, kind="push", port="/dev/ttyUSB0")
    with pytest.raises(ValueError, match="hall and attic share address 1"):
        Bus("b", [("hall", 1), ("attic", 1)], sink, port="/dev/ttyUSB0")
    with pytest.raises(ValueError, match="needs the converter's host"):
        Bus("b", [], sink, kind="tcp")
    with pytest.raises(ValueError, match=r"1\.\.247"):
        Bus("b", [("hall", 248)], sink, port="/dev/ttyUSB0")


def test_a_lost_answer_to_silence_is_retried_but_a_self_test_is_sent_once(
    tmp_path: Path,
) -> None:
    run(_lost_command_answers(tmp_path))


async def _lost_command_answers(tmp: Path) -> None:
    from gateway.link import LinkError
    from gateway.modbus_bus import COMMAND_TRIES
    from protocol import codes

    async with rs485(tmp, [1]) as (line, nodes):
        readings = Readings()
        bus = Bus("line1", LIVE[:1], readings, port=str(line.path), baud=BAUD, parity="N")
        async with polling(bus):
            await readings.wait(lambda: bool(readings.of("hall")), 5.0, "the port open")
            served = nodes.requests[1]
            nodes.lose_replies[1] = 1  # one noisy frame eats the node's answer
            await bus.command(1, codes.CMD_SILENCE)  # idempotent: confirmed on the 2nd try
            assert nodes.lose_replies[1] == 0
            nodes.lose_replies[1] = COMMAND_TRIES  # every try lost: reported, not hidden
            with pytest.raises(LinkError, match=rf"tried {COMMAND_TRIES}x.*may or may not"):
                await bus.command(1, codes.CMD_RESET_ALARM)
            nodes.lose_replies[1] = 1
            with pytest.raises(LinkError, match="tried 1x"):
                await bus.command(1, codes.CMD_SELF_TEST)  # never twice: one write only
            assert nodes.lose_replies[1] == 0
            assert nodes.requests[1] - served >= 1 + 1 + COMMAND_TRIES + 1


def test_the_next_request_waits_for_t35_of_silence_after_a_transaction() -> None:
    # Modbus over Serial Line 2.5.1.1: frames are separated by t3.5; pymodbus alone would
    # send the next request ~0.6 ms after a reply (bench/bus_bench.py, "gw gap").
    import time

    from protocol.timing import t35_us

    async def gap(kind: str) -> float:
        bus = Bus("b", LIVE[:1], Readings(), kind=kind, port="/dev/null", host="h", baud=9600)
        bus._line_used()
        start = time.monotonic()
        await bus._line_quiet()
        return time.monotonic() - start

    t35_s = t35_us(9600) / 1e6  # 4.0 ms
    assert asyncio.run(gap("rtu")) >= t35_s - 0.001  # asyncio may wake a tick early
    assert asyncio.run(gap("tcp")) < t35_s / 2  # a TCP converter times its own serial side
