"""After a flash: ask the node over RS-485 (Modbus) what it runs and at which address.

Reads DEVICE_TYPE..MAP_VERSION (0x0000-0x0005) and ADDRESS (0x0040) at the new address until
the node answers or the deadline passes (it boots, self-tests and opens its UART first).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from installer.board import check_port
from installer.errors import InstallError
from protocol import registers as r

ANSWER_TIMEOUT_S = 0.5
PACE_S = 0.2  # between attempts while the node boots (a polling pace, not synchronisation)


@dataclass(frozen=True)
class Identity:
    version: str
    map_version: int
    node_id: int
    address: int

    def __str__(self) -> str:
        return (
            f"firmware {self.version}, register map v{self.map_version}, "
            f"node id 0x{self.node_id:08X}, address {self.address}"
        )


def is_pty(port: str) -> bool:
    return os.path.realpath(port).startswith("/dev/pts/")


def read_identity(port: str, baud: int, address: int, deadline_s: float) -> Identity:
    from pymodbus.client import ModbusSerialClient

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # failures are reported here
    if not os.path.exists(port):
        raise InstallError(
            f"--bus {port}: no such port",
            "plug in the USB-RS485 adapter and give its port (ls /dev/ttyUSB*)",
        )
    check_port(port)  # held by another program (the gateway service): say so plainly
    # A pseudo-terminal (an emulated node's line) refuses parity settings; the bus is 8E1.
    parity = "N" if is_pty(port) else "E"
    client = ModbusSerialClient(
        port=port, baudrate=baud, parity=parity, timeout=ANSWER_TIMEOUT_S, retries=0
    )
    if not client.connect():
        raise InstallError(
            f"cannot open the RS-485 port {port}",
            "close whatever holds it (the gateway service: sudo systemctl stop "
            "firelane-gateway) and run again",
        )
    end = time.monotonic() + deadline_s
    last = "no answer"
    try:
        while True:
            try:
                head = client.read_holding_registers(r.DEVICE_TYPE, count=6, device_id=address)
                addr = client.read_holding_registers(r.ADDRESS, count=1, device_id=address)
                if not head.isError() and not addr.isError():
                    v = head.registers
                    return Identity(
                        f"{v[1] >> 8}.{v[1] & 0xFF}.{v[2]}",
                        v[5],
                        v[3] << 16 | v[4],
                        addr.registers[0],
                    )
                last = f"error reply {head if head.isError() else addr}"
            except Exception as exc:  # pymodbus raises ModbusIOException and friends
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > end:
                raise InstallError(
                    f"the node did not answer at address {address} on {port} at {baud} baud "
                    f"within {deadline_s:g} s ({last})",
                    "check the RS-485 wiring (A to A, B to B, GND) and the baud rate; the "
                    "node's LED pattern tells whether it runs (docs/installing.md)",
                )
            time.sleep(PACE_S)
    finally:
        client.close()  # type: ignore[no-untyped-call]
