"""The bus against the real node firmware on the emulated board (hil_tests/emulator): identity
and status read as a node serves them, commands written through the bus's lock between polls,
and what a command does when it cannot be delivered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.link import LinkError
from gateway.modbus_bus import Bus
from gateway.model import Sample
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.node_helpers import UNIT, emulated_node
from protocol import codes
from protocol import registers as r
from tests.gateway.test_bus_line import Readings, polling

# The emulated board runs MicroPython code on CPython in its own process, on a machine shared
# with the test: its replies take longer than a real node's. The bus's derived timeout
# (46.6 ms at 19200 baud) is for real nodes; here it gets room.
EMULATOR_TIMEOUT_S = 0.5


def test_commands_reach_an_emulated_node_between_polls(tmp_path: Path) -> None:
    with emulated_node(tmp_path) as node:
        asyncio.run(_commands(node))


async def _commands(node: EmulatorProcess) -> None:
    readings = Readings()
    bus = Bus(
        "line1",
        [("hall", UNIT), ("ghost", UNIT + 1)],  # nobody answers at 18
        readings,
        port=str(node.serial),
        parity="N",
        timeout_s=EMULATOR_TIMEOUT_S,
        offline_backoff_max_s=60.0,
    )
    hall = bus.devices[0]

    def hall_samples() -> list[Sample]:
        return [s for s in readings.of("hall") if isinstance(s, Sample)]

    def settled() -> bool:  # the power-up self-test is over (docs/firmware.md)
        s = hall_samples()
        return bool(s) and s[-1].event_seq >= 1 and not s[-1].status & r.ST_TEST

    async with polling(bus) as task:
        await readings.wait(settled, 15.0, "the node's power-up self-test over")
        assert hall.identity is not None and hall.identity.node_id == 0x1A000000 | UNIT
        assert hall.identity.problem() is None and hall.counters is not None
        seq = hall_samples()[-1].event_seq

        await bus.command(UNIT, codes.CMD_SELF_TEST)
        await readings.wait(
            lambda: any(s.status & r.ST_TEST for s in hall_samples()[-3:]),
            5.0,
            "the self-test running",
        )
        await readings.wait(
            lambda: (
                hall_samples()[-1].event_seq == seq + 1
                and not hall_samples()[-1].status & r.ST_TEST
            ),
            10.0,
            "the self-test's result event",
        )
        assert not hall_samples()[-1].faults, "the self-test failed on a healthy board"

        with pytest.raises(LinkError, match=r"command identify to node ghost .*no reply"):
            await bus.command(UNIT + 1, codes.CMD_IDENTIFY)
        with pytest.raises(ValueError, match="no node at address 30"):
            await bus.command(30, codes.CMD_IDENTIFY)
        with pytest.raises(ValueError, match="command 9"):
            await bus.command(UNIT, 9)

        await asyncio.to_thread(node.stop)  # the node's line goes away
        await readings.wait(lambda: not bus.port_open, 5.0, "the port lost")
        with pytest.raises(LinkError, match=r"not sent: port .* is not open"):
            await bus.command(UNIT, codes.CMD_IDENTIFY)
        assert not task.done()
