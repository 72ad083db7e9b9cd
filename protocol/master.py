"""The master's side of Modbus RTU: decoding responses and matching them to requests.

Only a master (the gateway, test benches, the decode tool) reads responses, so this lives apart
from modbus.py and rtu.py and a node never loads it (docs/protocol.md, "Heap on the node").
"""

from struct import unpack_from

from .codes import FC_DIAGNOSTIC, FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_SINGLE
from .errors import FrameError
from .modbus import READ_MAX, Pdu
from .rtu import CLIENT, RtuDecoder


def decode_response(unit: int, buf: "bytes | bytearray | memoryview", i: int) -> Pdu:
    """The response whose PDU starts at buf[i]; FrameError if its fields make no sense."""
    fc = buf[i]
    if fc & 0x80:
        return Pdu(unit, fc & 0x7F, True, code=buf[i + 1])
    if fc == FC_READ_HOLDING or fc == FC_READ_INPUT:
        nbytes = buf[i + 1]
        if nbytes == 0 or nbytes & 1 or nbytes > 2 * READ_MAX:
            raise FrameError("unit %d read response has byte count %d" % (unit, nbytes))
        return Pdu(unit, fc, True, values=unpack_from(">%dH" % (nbytes // 2), buf, i + 2))
    a, b = unpack_from(">HH", buf, i + 1)
    if fc == FC_WRITE_SINGLE:
        return Pdu(unit, fc, True, address=a, value=b)
    if fc == FC_DIAGNOSTIC:
        return Pdu(unit, fc, True, sub=a, value=b)
    return Pdu(unit, fc, True, address=a, count=b)  # FC16: framing admits nothing else


class MasterDecoder(RtuDecoder):
    """RtuDecoder for a master: role CLIENT returns responses (and skips requests it hears),
    MONITOR returns every frame. expect() ties the next response to the request just sent."""

    def __init__(self, role: int = CLIENT):
        super().__init__(role)

    def expect(self, request: "Pdu | None") -> None:
        """Client: the request just sent (None to stop expecting, e.g. after a timeout). Until
        its response arrives, only a response from that unit to that function, of the length
        the request implies, or its exception response, is taken."""
        if request is None:
            self._expect = None
            return
        fc = request.function
        n = 5 + 2 * request.count if fc == FC_READ_HOLDING or fc == FC_READ_INPUT else 8
        self._expect = (request.unit, fc, n)

    def _decode_response(self, unit: int, buf: bytearray, i: int) -> Pdu:
        return decode_response(unit, buf, i)
