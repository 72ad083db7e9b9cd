"""The real node firmware on an emulated board, polled by pymodbus over a pseudo-terminal.

Every register of the map is read; exceptions 02 and 03, config writes (persisted in the node's
config.json), broadcast writes and FC08 echo behave as Modbus over Serial Line says; driving the
board's inputs through its control socket makes the node alarm; resets, brownouts and power
cuts come back as the RESET_CAUSE and RESET_COUNT the firmware reports.
"""

from __future__ import annotations

import asyncio
import json
import runpy
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.diag_message import ReturnQueryDataResponse

from hil_tests.emulator.control import Control
from hil_tests.emulator.process import EmulatorProcess
from protocol import codes
from protocol import registers as r

UNIT = 17
FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
Client = AsyncModbusSerialClient


@pytest.fixture
def node(tmp_path: Path) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tmp_path / "flash", tmp_path / "ttyNODE", address=UNIT)
    emu.start()
    try:
        emu.wait_event("uart")  # the firmware listens from here on
        yield emu
    finally:
        emu.stop()


def modbus(node: EmulatorProcess, body: Callable[[Client], Awaitable[None]]) -> None:
    """Run body with a pymodbus client on the node's port, closed afterwards."""

    async def main() -> None:
        # A pty refuses pyserial's parity setting, and ignores framing anyway: 8N1 here.
        client = AsyncModbusSerialClient(
            port=str(node.serial), baudrate=19200, timeout=1.0, retries=0
        )
        try:
            assert await client.connect(), f"cannot open {node.serial}"
            await body(client)
        finally:
            client.close()

    asyncio.run(main())


async def read(client: Client, address: int, count: int = 1, fc: int = 3) -> list[int]:
    call = client.read_holding_registers if fc == 3 else client.read_input_registers
    rr = await call(address, count=count, device_id=UNIT)
    assert not rr.isError(), f"reading {count} at 0x{address:04X}: {rr}"
    return list(rr.registers)


async def exception(client: Client, request: Awaitable[Any]) -> int:
    rr = await request
    assert isinstance(rr, ExceptionResponse), f"expected an exception response, got {rr}"
    code: int = rr.exception_code
    return code


async def poll(client: Client, address: int, done: Callable[[int], bool], timeout: float) -> int:
    """Read address until done(value); bounded by timeout."""
    deadline = time.monotonic() + timeout
    while True:
        (value,) = await read(client, address)
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"0x{address:04X} = 0x{value:04X} after {timeout} s")
        await asyncio.sleep(0.05)


def rows() -> list[tuple[int, int, int]]:
    """(address, kind, default) of every register-map row."""
    t = r.TABLE
    return [(t[i], t[i + 2], t[i + 7]) for i in range(0, len(t), 8)]


def test_every_register_reads_and_identity_is_right(node: EmulatorProcess) -> None:
    version = runpy.run_path(str(FIRMWARE / "version.py"))

    async def body(client: Client) -> None:
        values: dict[int, list[int]] = {}
        for address, kind, _ in rows():
            count = 2 if kind == r.U32 else 1
            values[address] = await read(client, address, count)
            assert await read(client, address, count, fc=4) == values[address] or address in (
                r.UPTIME,
                r.STATUS,  # may change between the two reads (self-test at power-up)
                r.EVENT_SEQ,
            )
        assert values[r.DEVICE_TYPE] == [r.DEVICE_TYPE_NODE] == [1]
        assert values[r.MAP_VERSION_REG] == [r.MAP_VERSION] == [1]
        assert values[r.FW_VERSION] == [version["MAJOR"] << 8 | version["MINOR"]]
        assert values[r.FW_PATCH] == [version["PATCH"]]
        assert values[r.NODE_ID] == [0x1A00, UNIT]  # unique_id 02:f1:1a:00:00:11
        assert values[r.RESET_CAUSE] == [codes.RESET_POWER_ON]
        assert values[r.RESET_COUNT] == [1]
        assert values[r.ADDRESS] == [UNIT]
        for address, _, default in rows():
            if r.BAUD <= address <= r.LINK_MODE:
                assert values[address] == [default], f"0x{address:04X}"
        # Whole blocks in one request each, as the gateway reads them.
        assert len(await read(client, r.STATUS, r.STATUS_BLOCK_LEN)) == 8
        assert await read(client, r.ADDRESS, r.LINK_MODE - r.ADDRESS + 1) == [
            values[a][0] for a in range(r.ADDRESS, r.LINK_MODE + 1)
        ]

    modbus(node, body)


def test_exceptions_02_and_03(node: EmulatorProcess) -> None:
    async def body(client: Client) -> None:
        assert await exception(client, client.read_holding_registers(0x0030, device_id=UNIT)) == 2
        gap = client.read_holding_registers(r.MAP_VERSION_REG, count=2, device_id=UNIT)
        assert await exception(client, gap) == 2  # 0x0006 does not exist
        ro = client.write_register(r.DEVICE_TYPE, 7, device_id=UNIT)
        assert await exception(client, ro) == 2
        big = client.write_register(r.LEAKAGE_ALARM, 5000, device_id=UNIT)
        assert await exception(client, big) == 3
        half_bad = client.write_registers(r.LEAKAGE_ALARM, [400, 5000], device_id=UNIT)
        assert await exception(client, half_bad) == 3
        assert await read(client, r.LEAKAGE_ALARM) == [300]  # all or nothing

    modbus(node, body)


def test_config_write_reads_back_and_persists(node: EmulatorProcess) -> None:
    async def write_350(client: Client) -> None:
        rr = await client.write_register(r.LEAKAGE_ALARM, 350, device_id=UNIT)
        assert not rr.isError(), rr
        assert await read(client, r.LEAKAGE_ALARM) == [350]

    modbus(node, write_350)
    saved = json.loads((node.fs / "config.json").read_text())
    assert saved["leakage_alarm_ma"] == 350 and saved["address"] == UNIT
    mark = node.mark()
    with node.control() as ctl:
        ctl.reset()
    node.wait_event("uart", since=mark)

    async def after_reset(client: Client) -> None:
        assert await read(client, r.LEAKAGE_ALARM) == [350]
        assert await read(client, r.RESET_CAUSE) == [codes.RESET_HARD]

    modbus(node, after_reset)


def test_broadcast_write_applies_without_a_reply(node: EmulatorProcess) -> None:
    with node.control() as ctl:

        async def body(client: Client) -> None:
            sent = ctl.state()["uart"]["tx_bytes"]
            await client.write_register(
                r.LEAKAGE_ALARM, 420, device_id=codes.BROADCAST, no_response_expected=True
            )
            reads = 0

            def applied(value: int) -> bool:
                nonlocal reads
                reads += 1
                return value == 420

            await poll(client, r.LEAKAGE_ALARM, applied, timeout=2.0)
            # The node sent the responses to the read-backs (5 + 2 bytes each), nothing more.
            assert ctl.state()["uart"]["tx_bytes"] - sent == reads * (5 + 2)

        modbus(node, body)


def test_fc08_return_query_data_echoes(node: EmulatorProcess) -> None:
    async def body(client: Client) -> None:
        rr = await client.diag_query_data(b"\x12\x34", device_id=UNIT)
        assert isinstance(rr, ReturnQueryDataResponse), rr
        assert rr.message == b"\x12\x34"

    modbus(node, body)


def test_leakage_input_raises_the_alarm(node: EmulatorProcess) -> None:
    with node.control() as ctl:

        async def body(client: Client) -> None:
            rr = await client.write_register(r.LEAKAGE_ALARM_DELAY, 0, device_id=UNIT)
            assert not rr.isError(), rr
            ctl.set(leakage_ma=500)
            await poll(client, r.STATUS, lambda s: bool(s & r.ST_ALARM), timeout=5.0)
            (sources,) = await read(client, r.ALARM_SOURCES)
            assert sources & 1 << codes.SRC_LEAKAGE
            (leakage,) = await read(client, r.LEAKAGE)
            assert abs(leakage - 500) <= 10  # the emulated CT, sampled by the real firmware

        modbus(node, body)
        state = ctl.wait_state(lambda s: s["outputs"]["buzzer"]["transitions"] > 0, 2.0)
        assert state["reset_cause"] == "PWRON_RESET" and state["firmware"] == "running"


def test_resets_are_reported_by_cause(node: EmulatorProcess) -> None:
    """The firmware tells a brownout from a power cut by what RTC memory kept."""
    expected = [
        ("reset", codes.RESET_HARD, 2),
        ("brownout", codes.RESET_BROWNOUT, 3),
        ("power", codes.RESET_POWER_ON, 1),
    ]
    with node.control() as ctl:
        for how, cause, count in expected:
            mark = node.mark()
            if how == "reset":
                ctl.reset()
            elif how == "brownout":
                ctl.brownout()
            else:
                ctl.power(False)
                ctl.power(True)
            node.wait_event("uart", since=mark)

            async def body(client: Client, cause: int = cause, count: int = count) -> None:
                assert await read(client, r.RESET_CAUSE) == [cause]
                assert await read(client, r.RESET_COUNT) == [count]

            modbus(node, body)


def test_maintenance_mode_starts_no_app(tmp_path: Path) -> None:
    fs = tmp_path / "flash"
    fs.mkdir()
    (fs / "maintenance").write_text("")
    with EmulatorProcess(fs, tmp_path / "ttyNODE", address=UNIT) as emu:
        emu.wait_event("halt")
        with Control(emu.control_path) as ctl:
            state = ctl.state()
    assert (state["mode"], state["firmware"]) == ("maintenance", "halted")
    assert state["outputs"]["led"]["level"] == 1
    assert state["watchdog_ms"] == 0 and state["uart"] == {
        "tx_bytes": 0,
        "rx_bytes": 0,
        "rx_overflow": 0,
        "tx_de_low": 0,
    }
    assert not any(e["event"] == "uart" for e in emu.events)
