"""Modbus PDUs for the function codes Firelane uses: 03, 04, 06, 16, 08/00 and exceptions.

Modbus Application Protocol V1.1b3. One record type, Pdu, for every message: a class per
message costs the node about 400 bytes of heap each (docs/protocol.md). Which fields are
meaningful depends on the function code and direction:

    function        request                  response
    03, 04 read     address, count           values
    06 write one    address, value           address, value (an echo)
    16 write many   address, values          address, count
    08 diagnostic   sub, value               sub, value (sub-function 00 echoes)
    exception       -                        code; function is the refused request's

Responses are decoded by master.py: only a master reads them, and a node never loads it.

A request the node must refuse (bad quantity, unknown function) decodes to a request Pdu with
`code` set to the exception to answer with; `refusal()` builds that answer. Registers are
16-bit, big-endian on the wire.
"""

from struct import pack, unpack_from

from .codes import (
    EX_ILLEGAL_FUNCTION,
    EX_ILLEGAL_VALUE,
    FC_DIAGNOSTIC,
    FC_READ_HOLDING,
    FC_READ_INPUT,
    FC_WRITE_MULTIPLE,
    FC_WRITE_SINGLE,
)

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


READ_MAX = const(125)  # FC03/04 quantity limit, spec 6.3
_WRITE_MAX = const(123)  # FC16 quantity limit, spec 6.12


class Pdu:
    """One Modbus request or response, with the unit (slave address) it is for or from."""

    def __init__(
        self,
        unit: int,
        function: int,
        response: bool = False,
        address: int = 0,
        count: int = 0,
        value: int = 0,
        values: "tuple[int, ...] | list[int] | range" = (),
        sub: int = 0,
        code: int = 0,
    ):
        self.unit = unit
        self.function = function
        self.response = response
        self.address = address
        self.count = count
        self.value = value
        self.values = tuple(values)
        self.sub = sub
        self.code = code

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pdu) and self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        return "Pdu(%r)" % self.__dict__

    def refusal(self) -> "Pdu":
        """The exception response a node sends for this request (code must be set)."""
        return Pdu(self.unit, self.function, True, code=self.code)

    def encode(self) -> bytes:
        """The PDU bytes: function code and data. ValueError if a field does not fit."""
        fc = self.function
        if self.code:
            if not self.response or not 1 <= fc <= 0x7F or not 1 <= self.code <= 0xFF:
                raise ValueError("exception %r for function %r" % (self.code, fc))
            return bytes((fc | 0x80, self.code))
        if fc == FC_READ_HOLDING or fc == FC_READ_INPUT:
            if self.response:
                n = _check(0, len(self.values), READ_MAX, self.values)
                return pack(">BB%dH" % n, fc, 2 * n, *self.values)
            return pack(">BHH", fc, self.address, _check(self.address, self.count, READ_MAX))
        if fc == FC_WRITE_MULTIPLE:
            if self.response:
                return pack(">BHH", fc, self.address, _check(self.address, self.count, _WRITE_MAX))
            n = _check(self.address, len(self.values), _WRITE_MAX, self.values)
            return pack(">BHHB%dH" % n, fc, self.address, n, 2 * n, *self.values)
        if fc == FC_WRITE_SINGLE or fc == FC_DIAGNOSTIC:
            first = self.address if fc == FC_WRITE_SINGLE else self.sub
            _check(first, 1, 1, (self.value,))
            return pack(">BHH", fc, first, self.value)
        raise ValueError("function %r is not supported" % fc)


def _check(address: int, count: int, limit: int, values: "tuple[int, ...]" = ()) -> int:
    """count, once count registers from address are known to fit a frame (1..limit, inside
    0..65535) and every value is a 16-bit word. MicroPython's struct.pack would silently
    truncate a wider value, so this check is what keeps a node from sending wrong data."""
    if not 0 <= address <= 0xFFFF or not 1 <= count <= limit or address + count > 0x10000:
        raise ValueError("%r registers at %r: need 1..%d in 0..65535" % (count, address, limit))
    for v in values:
        if not 0 <= v <= 0xFFFF:
            raise ValueError("register value %r is not a 16-bit word" % v)
    return count


def decode_request(unit: int, buf: "bytes | bytearray | memoryview", i: int) -> Pdu:
    """The request whose PDU starts at buf[i] (framing has checked its length and CRC)."""
    fc = buf[i]
    if fc == FC_READ_HOLDING or fc == FC_READ_INPUT:
        address, count = unpack_from(">HH", buf, i + 1)
        bad = 0 if 1 <= count <= READ_MAX else EX_ILLEGAL_VALUE
        return Pdu(unit, fc, address=address, count=count, code=bad)
    if fc == FC_WRITE_SINGLE:
        address, value = unpack_from(">HH", buf, i + 1)
        return Pdu(unit, fc, address=address, value=value)
    if fc == FC_DIAGNOSTIC:
        sub, value = unpack_from(">HH", buf, i + 1)
        return Pdu(unit, fc, sub=sub, value=value)
    if fc == FC_WRITE_MULTIPLE:
        address, count, nbytes = unpack_from(">HHB", buf, i + 1)
        if not 1 <= count <= _WRITE_MAX or nbytes != 2 * count:
            return Pdu(unit, fc, address=address, count=count, code=EX_ILLEGAL_VALUE)
        values = unpack_from(">%dH" % count, buf, i + 6)
        return Pdu(unit, fc, address=address, count=count, values=values)
    return Pdu(unit, fc, code=EX_ILLEGAL_FUNCTION)
