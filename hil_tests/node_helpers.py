"""Shared pieces of the scenarios that run the real firmware on an emulated board.

- emulated_node(): an EmulatorProcess on a fresh flash directory (config.json and extra files
  written before it starts), always stopped afterwards.
- Bus: a blocking pymodbus master on the node's pty, bound to one unit (the sync client, so
  it mixes freely with the blocking Control client).
- wait_until(), wait_uptime(), wait_tone(): polling with a deadline, never a sleep used as
  synchronisation. Time windows are measured on the emulated board's own clock (uptime_ms in
  the control socket's state), so a slow machine stretches the window, not the verdict.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pymodbus.client import ModbusSerialClient
from pymodbus.pdu import ModbusPDU

from hil_tests.emulator.control import Control
from hil_tests.emulator.process import EmulatorProcess
from protocol import registers as r

UNIT = 17
POLL_S = 0.05  # the pace of a polling loop (not a synchronisation)
_TONE_POLL_S = 0.01  # fine enough to see every 250 ms tone and 500 ms gap

V = TypeVar("V")


def wait_until(probe: Callable[[], V], done: Callable[[V], bool], timeout: float, what: str) -> V:
    """Call probe() until done(its value); that value. AssertionError naming what, with the
    last value, after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s; last: {value}")
        time.sleep(POLL_S)


@contextmanager
def emulated_node(
    tmp: Path,
    *,
    address: int | None = UNIT,
    config: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
    wait_uart: bool = True,
) -> Iterator[EmulatorProcess]:
    """A node on tmp/flash with its pty at tmp/ttyNODE. config (as config.json) and files are
    written to the flash before it starts; flash files override firmware/ ones."""
    fs = tmp / "flash"
    fs.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (fs / "config.json").write_text(json.dumps(config) + "\n")
    for name, text in (files or {}).items():
        (fs / name).write_text(text)
    emu = EmulatorProcess(fs, tmp / "ttyNODE", address=address if config is None else None)
    emu.start()
    try:
        if wait_uart:
            emu.wait_event("uart")  # the firmware listens from here on
        yield emu
    finally:
        emu.stop()


def node_id(ready: dict[str, Any]) -> int:
    """The node id a node derives from its chip (board.unique_id()), from the ready event."""
    uid = bytes.fromhex(ready["uid"])
    return int.from_bytes(uid[-4:], "big")


# The emulated board's clock and outputs, through its control socket.
def uptime_ms(ctl: Control) -> int:
    ms: int = ctl.state()["uptime_ms"]
    return ms


def wait_uptime(ctl: Control, at_least_ms: int, timeout: float = 15.0) -> dict[str, Any]:
    """The board's state once its clock has reached at_least_ms since its last reset."""
    return ctl.wait_state(lambda s: s["uptime_ms"] >= at_least_ms, timeout)


def buzzer(state: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = state["outputs"]["buzzer"]
    return out


def led(state: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = state["outputs"]["led"]
    return out


@dataclass(frozen=True)
class Tone:
    """One complete buzzer tone: its length and the board's state just before and after."""

    ms: int
    before: dict[str, Any]
    after: dict[str, Any]


def wait_tone(ctl: Control, min_ms: int, timeout: float) -> Tone:
    """The first complete buzzer tone of at least min_ms.

    A tone's length is the buzzer's high_ms gained between a sample with the buzzer off and the
    next sample with it off two transitions later (exactly one tone in between), so it is the
    emulator's measurement, not this loop's timing."""
    deadline = time.monotonic() + timeout
    low: dict[str, Any] | None = None  # the last state with the buzzer off
    tones: list[int] = []
    while True:
        state = ctl.state()
        buz = buzzer(state)
        if not buz["level"]:
            if low is not None and buz["transitions"] == buzzer(low)["transitions"] + 2:
                length = buz["high_ms"] - buzzer(low)["high_ms"]
                tones.append(length)
                if length >= min_ms:
                    return Tone(length, low, state)
            low = state
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no buzzer tone of {min_ms} ms within {timeout} s; tones: {tones}; "
                f"outputs: {state['outputs']}"
            )
        time.sleep(_TONE_POLL_S)


# Modbus.
@dataclass(frozen=True)
class Block:
    """The status block, STATUS..SUPPLY, as the gateway reads it (one FC03 of 8 registers)."""

    status: int
    sources: int
    faults: int
    seq: int
    smoke: int
    leakage: int
    temperature: int
    supply: int

    def __str__(self) -> str:
        return (
            f"STATUS=0x{self.status:04X} ALARM_SOURCES=0x{self.sources:02X} "
            f"FAULTS=0x{self.faults:02X} EVENT_SEQ={self.seq} SMOKE={self.smoke} "
            f"LEAKAGE={self.leakage} TEMPERATURE={self.temperature} SUPPLY={self.supply}"
        )


class Bus:
    """A pymodbus master (sync client) on the node's pty, talking to unit."""

    def __init__(self, port: Path, unit: int = UNIT, timeout: float = 1.0) -> None:
        # A pty refuses pyserial's parity setting and ignores framing anyway: 8N1 here.
        self.client = ModbusSerialClient(port=str(port), baudrate=19200, timeout=timeout, retries=0)
        self.unit = unit
        self.port = port

    def __enter__(self) -> Bus:
        assert self.client.connect(), f"cannot open {self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()  # type: ignore[no-untyped-call]

    def read(self, address: int, count: int = 1, unit: int | None = None) -> list[int]:
        unit = self.unit if unit is None else unit
        rr = self.client.read_holding_registers(address, count=count, device_id=unit)
        assert not rr.isError(), f"unit {unit}: reading {count} at 0x{address:04X}: {rr}"
        return list(rr.registers)

    def word(self, address: int) -> int:
        (value,) = self.read(address)
        return value

    def block(self) -> Block:
        return Block(*self.read(r.STATUS, r.STATUS_BLOCK_LEN))

    def write(self, address: int, value: int, unit: int | None = None) -> ModbusPDU:
        unit = self.unit if unit is None else unit
        rr = self.client.write_register(address, value, device_id=unit)
        assert not rr.isError(), f"unit {unit}: writing {value} to 0x{address:04X}: {rr}"
        return rr

    def command(self, code: int) -> None:
        self.write(r.COMMAND, code)

    def poll(self, done: Callable[[Block], bool], timeout: float, what: str) -> Block:
        """Read the status block until done(block)."""
        return wait_until(self.block, done, timeout, what)

    def settled(self, events: int, timeout: float = 8.0) -> Block:
        """Wait until the node has raised `events` events in all and is not self-testing (a
        fresh node's first event is its power-up self-test's result); exactly that many."""
        block = self.poll(
            lambda b: b.seq >= events and not b.status & r.ST_TEST,
            timeout,
            f"{events} events and no self-test running",
        )
        assert block.seq == events, f"expected exactly {events} events so far: {block}"
        return block
