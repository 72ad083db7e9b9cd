"""Test rigs for the gateway's links: an RS-485 line made of pseudo-terminals, and a line of
Modbus nodes served by pymodbus on its far end.

VirtualLine: two pty pairs joined by a relay in the event loop. The gateway opens `path` (a
symlink, as a udev rule would give a USB adapter), the nodes' side opens `far`. Bytes cross
after their wire time at `baud` (11 bits a character) plus t3.5, one frame at a time in either
direction (half duplex), so cycle times and utilisation mean what they would on a real line.
unplug() closes the gateway's pty and removes the symlink (a USB adapter pulled out); plug()
makes a new pty and points the symlink at it.

NodeLine: a pymodbus serial server with one SimDevice per node address on `far`. A node's
registers live in a dict the test changes; `dead` addresses never answer (their reply is
dropped on the way out) and `garbled` ones answer random bytes of the reply's length.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import tty
from collections.abc import Iterable
from pathlib import Path

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from protocol import registers as r
from protocol.timing import BITS_PER_CHAR, t35_us


class _Pty:
    """A raw pty pair whose slave end is also held open here, so reading the master never
    fails with EIO while nobody else has the slave open."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.device = os.ttyname(self.slave)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


class VirtualLine:
    def __init__(self, path: Path, baud: int | None = 19200) -> None:
        self.path = path
        self.baud = baud
        self._near: _Pty | None = None
        self._far = _Pty()
        self.far = self._far.device
        self._free_at = 0.0  # when the line is next quiet
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._far.master, self._relay, self._far, True)
        self.plug()

    def plug(self) -> None:
        assert self._near is None, "already plugged in"
        self._near = _Pty()
        if self.path.is_symlink():
            self.path.unlink()
        self.path.symlink_to(self._near.device)
        self._loop.add_reader(self._near.master, self._relay, self._near, False)

    def unplug(self) -> None:
        near, self._near = self._near, None
        assert near is not None, "not plugged in"
        self._loop.remove_reader(near.master)
        self.path.unlink()
        near.close()

    def _relay(self, source: _Pty, to_near: bool) -> None:
        try:
            data = os.read(source.master, 4096)
        except OSError:
            return
        if self.baud is None:
            self._deliver(data, to_near)
            return
        now = self._loop.time()
        start = max(now, self._free_at)
        arrive = start + len(data) * BITS_PER_CHAR / self.baud
        self._free_at = arrive + t35_us(self.baud) / 1e6
        self._loop.call_at(arrive, self._deliver, data, to_near)

    def _deliver(self, data: bytes, to_near: bool) -> None:
        target = self._near if to_near else self._far
        if target is None:
            return  # unplugged meanwhile: lost on the wire
        with contextlib.suppress(OSError):
            os.write(target.master, data)

    def close(self) -> None:
        if self._near is not None:
            self.unplug()
        self._loop.remove_reader(self._far.master)
        self._far.close()


def node_registers(address: int) -> dict[int, int]:
    """A healthy node's register values (identity, status block, counters)."""
    nid = 0x1A000000 | address
    regs = {
        r.DEVICE_TYPE: r.DEVICE_TYPE_NODE,
        r.FW_VERSION: 0x0102,
        r.FW_PATCH: 3,
        r.NODE_ID: nid >> 16,
        r.NODE_ID + 1: nid & 0xFFFF,
        r.MAP_VERSION_REG: r.MAP_VERSION,
        r.STATUS: 0,
        r.ALARM_SOURCES: 0,
        r.FAULTS: 0,
        r.EVENT_SEQ: 1,
        r.SMOKE: 12 + address,
        r.LEAKAGE: 40 + address,
        r.TEMPERATURE: 0x10000 - 55,  # -5.5 degC
        r.SUPPLY: 12000,
        r.UPTIME: 0,
        r.UPTIME + 1: 3600 + address,
        r.CRC_ERRORS: 2,
        r.FRAME_ERRORS: 1,
        r.RESET_COUNT: 4,
        r.RESET_CAUSE: 1,
        r.BOOT_FAILURES: 0,
        r.QUEUE_DROPS: 0,
    }
    return regs


class NodeLine:
    """pymodbus serial server for several node addresses on one port (see module docstring)."""

    def __init__(
        self,
        port: str,
        addresses: Iterable[int],
        *,
        dead: Iterable[int] = (),
        garbled: Iterable[int] = (),
        seed: int = 7,
    ) -> None:
        self.regs = {a: node_registers(a) for a in addresses}
        self.dead = set(dead)
        self.garbled = set(garbled)
        # unit -> how many of its next answers to a register write (FC06: a command) to drop
        self.lose_replies: dict[int, int] = {}
        self.requests: dict[int, int] = dict.fromkeys(self.regs, 0)  # reads and writes served
        self._random = random.Random(seed)
        devices = [
            SimDevice(
                id=a,
                simdata=[
                    SimData(r.DEVICE_TYPE, count=6, values=0, datatype=DataType.REGISTERS),
                    SimData(r.STATUS, count=8, values=0, datatype=DataType.REGISTERS),
                    SimData(r.UPTIME, count=8, values=0, datatype=DataType.REGISTERS),
                    SimData(r.COMMAND, count=1, values=0, datatype=DataType.REGISTERS),
                ],
                action=functools.partial(self._action, a),
            )
            for a in self.regs
        ]
        self.server = ModbusSerialServer(
            devices,
            framer=FramerType.RTU,
            port=port,
            baudrate=19200,
            parity="N",  # a pty drops PARENB, and pyserial then fails to reconfigure it
            ignore_missing_devices=True,
            trace_packet=self._trace,
        )

    async def start(self) -> None:
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        await self.server.shutdown()  # type: ignore[no-untyped-call]

    async def _action(
        self,
        unit: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Called for every access to a device: copy the test's values in."""
        self.requests[unit] += 1
        regs = self.regs[unit]
        for i in range(len(current_registers)):
            current_registers[i] = regs.get(start_address + i, 0)
        return None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            return data
        if data and data[0] in self.dead:
            return b""
        if len(data) > 1 and data[1] == 6 and self.lose_replies.get(data[0], 0) > 0:
            self.lose_replies[data[0]] -= 1
            return b""
        if data and data[0] in self.garbled:
            return self._random.randbytes(len(data))
        return data
