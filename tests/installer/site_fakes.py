"""A simulated RS-485 line for the bus tools' unit tests: nodes that answer Modbus requests
after a delay, on a virtual clock (no sleeping, no ports).

Each FakeNode answers like the firmware (firmware/slave.py, firmware/regmap.py): identity
reads, and an ADDRESS write that is answered from the old address and applied after the
reply. Two nodes that answer one request within one frame time of each other collide: the
line delivers garbage; further apart, both replies arrive whole, one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.bus_timing import frame_us
from protocol import codes as c
from protocol import registers as r
from protocol.modbus import Pdu, decode_request
from protocol.rtu import encode


@dataclass
class FakeNode:
    address: int
    node_id: int
    delay_s: float = 0.005  # request end to reply start
    fw: tuple[int, int, int] = (0, 1, 0)
    map_version: int = r.MAP_VERSION
    device_type: int = r.DEVICE_TYPE_NODE
    write_code: int = 0  # an exception to refuse writes with (4: flash failing)
    ignore_address: bool = False  # acknowledges an ADDRESS write but keeps its address
    silent_after_write: bool = False  # takes the address, then never answers again
    saved: list[int] = field(default_factory=list)  # addresses written to its config.json

    def word(self, a: int) -> int:
        if a == r.DEVICE_TYPE:
            return self.device_type
        if a == r.FW_VERSION:
            return self.fw[0] << 8 | self.fw[1]
        if a == r.FW_PATCH:
            return self.fw[2]
        if a == r.NODE_ID:
            return self.node_id >> 16
        if a == r.NODE_ID + 1:
            return self.node_id & 0xFFFF
        if a == r.MAP_VERSION_REG:
            return self.map_version
        return 0

    def handle(self, pdu: Pdu) -> tuple[Pdu | None, int | None]:
        """The reply, and the address to switch to after it (None: unchanged)."""
        if pdu.function == c.FC_READ_HOLDING:
            values = [self.word(a) for a in range(pdu.address, pdu.address + pdu.count)]
            return Pdu(pdu.unit, pdu.function, True, values=values), None
        if pdu.function == c.FC_WRITE_SINGLE and pdu.address == r.ADDRESS:
            if self.write_code or not r.valid(r.ADDRESS, pdu.value):
                code = self.write_code or c.EX_ILLEGAL_VALUE
                return Pdu(pdu.unit, pdu.function, True, code=code), None
            self.saved.append(pdu.value)
            reply = Pdu(pdu.unit, pdu.function, True, pdu.address, value=pdu.value)
            return reply, None if self.ignore_address else pdu.value
        return Pdu(pdu.unit, pdu.function, True, code=c.EX_ILLEGAL_ADDRESS), None


class FakeLine:
    """A Line (installer/rtu_line.py) with nodes on it and a virtual clock."""

    def __init__(self, nodes: list[FakeNode], baud: int = 115200, latency_s: float = 0.0):
        self.nodes = nodes
        self.baud = baud
        self.latency_s = latency_s
        self.now = 0.0
        self.requests: list[Pdu] = []
        self._queue: list[tuple[float, bytes]] = []  # (arrival, bytes), sorted

    def clock(self) -> float:
        return self.now

    def send(self, data: bytes) -> None:
        self.now += frame_us(self.baud, len(data)) / 1e6  # the request on the wire
        pdu = decode_request(data[0], data, 1)
        self.requests.append(pdu)
        replies: list[tuple[float, bytes]] = []
        for node in self.nodes:
            if node.address != pdu.unit or (node.silent_after_write and node.saved):
                continue
            reply, switch = node.handle(pdu)
            if reply is not None:
                raw = encode(reply)
                end = self.now + node.delay_s + frame_us(self.baud, len(raw)) / 1e6
                replies.append((end + self.latency_s, raw))
            if switch is not None:
                node.address = switch
        replies.sort()
        merged: list[tuple[float, bytes]] = []
        for at, raw in replies:
            if merged and at - merged[-1][0] < frame_us(self.baud, len(raw)) / 1e6:
                prev_at, prev = merged[-1]  # overlapping on the wire: garbled for everyone
                n = max(len(prev), len(raw))
                mixed = bytes(
                    (x ^ y ^ 0x5A) for x, y in zip(prev.ljust(n), raw.ljust(n), strict=True)
                )
                merged[-1] = (max(prev_at, at), mixed)
            else:
                merged.append((at, raw))
        self._queue = sorted(self._queue + merged)

    def recv(self, until: float) -> bytes:
        if self._queue and self._queue[0][0] <= max(until, self.now):
            at, data = self._queue.pop(0)
            self.now = max(self.now, at)
            return data
        self.now = max(self.now, until)
        return b""
