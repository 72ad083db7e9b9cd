"""The Modbus RTU slave: turns requests from the bus into responses, using protocol/.

Modbus over Serial Line V1.02: requests for our address are answered; broadcasts (unit 0)
are applied when they are writes and never answered (2.1); requests for other units are
skipped by the decoder. The register values and what a write does belong to the app, through
two callbacks: word(address) -> int and write(address, values, broadcast) -> exception code
(0 when applied). FC08 answers sub-function 00 (return query data) only, else exception 01
(Modbus Application Protocol V1.1b3, 6.8).
"""

from protocol import registers as r
from protocol.codes import (
    BROADCAST,
    EX_ILLEGAL_FUNCTION,
    FC_DIAGNOSTIC,
    FC_READ_HOLDING,
    FC_READ_INPUT,
    FC_WRITE_MULTIPLE,
    FC_WRITE_SINGLE,
)
from protocol.errors import NEED_DATA, FrameError
from protocol.modbus import Pdu
from protocol.rtu import SERVER, RtuDecoder, encode

_TYPING = False  # mypy takes it as true (always_true)
if _TYPING:
    from typing import Callable


class Slave:
    """receive(data) returns the response bytes to send, if any; gap() on t3.5 silence."""

    def __init__(
        self,
        address: int,
        word: "Callable[[int], int]",
        write: "Callable[[int, tuple[int, ...], bool], int]",
    ):
        self.decoder = RtuDecoder(SERVER, address)
        self._word = word
        self._write = write

    def gap(self) -> None:
        self.decoder.gap()

    def receive(self, data: "bytes | memoryview") -> "bytes | None":
        """Feed bytes from the line; the response to the last complete request, if any.
        Garbage is counted by the decoder (CRC_ERRORS, FRAME_ERRORS) and skipped."""
        dec = self.decoder
        out = None
        while True:
            n = dec.feed(data)
            data = data[n:]
            while True:
                try:
                    pdu = dec.next_event()
                except FrameError:
                    continue
                if pdu is NEED_DATA:
                    break
                reply = self.handle(pdu)  # type: ignore[arg-type]  # not NEED_DATA here
                if reply is not None:
                    out = encode(reply)
            if not data:
                return out

    def handle(self, pdu: Pdu) -> "Pdu | None":
        """The response to one request, or None (broadcast, or nothing to say)."""
        broadcast = pdu.unit == BROADCAST
        fc = pdu.function
        code = pdu.code
        reply = None
        if code:
            pass
        elif fc == FC_READ_HOLDING or fc == FC_READ_INPUT:
            code = r.check_read(pdu.address, pdu.count)
            if not code:
                word = self._word
                values = [word(a) for a in range(pdu.address, pdu.address + pdu.count)]
                reply = Pdu(pdu.unit, fc, True, values=values)
        elif fc == FC_WRITE_SINGLE:
            code = self._write(pdu.address, (pdu.value,), broadcast)
            reply = Pdu(pdu.unit, fc, True, pdu.address, value=pdu.value)
        elif fc == FC_WRITE_MULTIPLE:
            code = self._write(pdu.address, pdu.values, broadcast)
            reply = Pdu(pdu.unit, fc, True, pdu.address, count=len(pdu.values))
        elif fc == FC_DIAGNOSTIC and pdu.sub == 0:
            reply = Pdu(pdu.unit, fc, True, sub=0, value=pdu.value)
        else:
            code = EX_ILLEGAL_FUNCTION
        if broadcast:
            return None
        if code:
            return Pdu(pdu.unit, fc, True, code=code)
        return reply
