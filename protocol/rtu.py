"""Modbus RTU framing: encode an ADU, and an incremental decoder for a shared RS-485 bus.

Modbus over Serial Line V1.02, 2.5.1: an ADU is address, PDU, CRC-16 (low byte first), at most
256 bytes. RTU has no length field and no start marker, so the decoder frames by the length each
function code implies and confirms with the CRC. On a bus it hears everything: requests to other
nodes, their responses, noise. It tries each frame shape its role can meet, skips frames that
are not its business, and after garbage drops one byte at a time until a frame checks out.

Optional silence framing: the read loop calls gap() when the line has been idle for t3.5
(spec 2.5.1.1); a frame that is still incomplete at that point can never complete and is
dropped at once instead of waiting for bytes that belong to the next frame.
"""

from .codes import (
    ADDRESS_MAX,
    BROADCAST,
    FC_DIAGNOSTIC,
    FC_READ_HOLDING,
    FC_READ_INPUT,
    FC_WRITE_MULTIPLE,
    FC_WRITE_SINGLE,
)
from .crc import append_crc, check_crc
from .errors import NEED_DATA, CRCError, FrameError
from .modbus import Pdu, decode_request

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


MAX_FRAME = const(256)  # spec 2.5.1: the decoder's buffer never holds more
_MIN_FRAME = const(4)  # address, function, CRC

# Roles: what a decoder expects to be handed, and what it only skips.
SERVER = const(1)  # a node: returns requests for its address or broadcast
CLIENT = const(2)  # the gateway: returns responses
MONITOR = const(3)  # a bus sniffer: returns every valid frame

_REQ = const(1)
_RESP = const(2)


def encode(pdu: Pdu) -> bytes:
    """The ADU for pdu: unit address, PDU and CRC, ready for the wire."""
    if not 0 <= pdu.unit <= ADDRESS_MAX:
        raise ValueError("unit %r is outside 0..%d" % (pdu.unit, ADDRESS_MAX))
    return append_crc(bytes((pdu.unit,)) + pdu.encode())


def _request_len(buf: bytearray, i: int, avail: int) -> int:
    """ADU length of the request at buf[i]; 0 when more bytes are needed to tell, -1 unknown."""
    fc = buf[i + 1]
    if fc == FC_READ_HOLDING or fc == FC_READ_INPUT or fc == FC_WRITE_SINGLE or fc == FC_DIAGNOSTIC:
        return 8
    if fc == FC_WRITE_MULTIPLE:
        return 9 + buf[i + 6] if avail > 6 else 0
    return -1


def _response_len(buf: bytearray, i: int) -> int:
    """ADU length of the response at buf[i] (needs 3 bytes), -1 for an unknown function."""
    fc = buf[i + 1]
    if fc & 0x80:
        return 5
    if fc == FC_READ_HOLDING or fc == FC_READ_INPUT:
        n = buf[i + 2]  # byte count: two per register, 1..125 registers (spec 6.3)
        return 5 + n if 0 < n <= 250 and not n & 1 else -1
    if fc == FC_WRITE_SINGLE or fc == FC_DIAGNOSTIC or fc == FC_WRITE_MULTIPLE:
        return 8
    return -1


class RtuDecoder:
    """feed(bytes) / next_event() -> Pdu | NEED_DATA, raising FrameError on garbage.

    This is the node's decoder (SERVER); the CLIENT and MONITOR roles, which decode responses,
    are master.MasterDecoder, a subclass a node never loads.

    After a FrameError the offending byte is already dropped: call next_event() again. One error
    is raised per run of garbage, however long; `discarded` counts the bytes.
    """

    def __init__(self, role: int = SERVER, address: "int | None" = None):
        self.role = role
        self.address = address  # SERVER only; None answers every unit (test benches)
        self._order = (_RESP, _REQ) if role == CLIENT else (_REQ, _RESP)
        self._buf = bytearray()
        self._i = 0  # read position; bytes before it are consumed (compacted on feed)
        self._boundary = -1  # buffer index of the last t3.5 silence, -1 for none
        self._hunting = False
        self.frames = 0  # valid frames seen, including skipped ones
        self.skipped = 0  # valid frames not for us (other nodes, other direction)
        self.crc_errors = 0
        self.frame_errors = 0  # garbage, truncated or malformed frames other than CRC
        self.discarded = 0  # bytes dropped while resynchronising
        self._expect: tuple[int, int, int] | None = None  # (unit, function, response length)

    def feed(self, data: "bytes | bytearray | memoryview") -> int:
        """Buffer up to MAX_FRAME bytes; returns how many of data were taken.

        Feed the rest after draining next_event(): with a full buffer next_event() always
        makes progress, so this never stalls.
        """
        buf = self._buf
        if self._i:
            buf[:] = buf[self._i :]  # compact once per feed, not once per dropped byte
            if self._boundary >= 0:
                self._boundary -= self._i
            self._i = 0
        take = min(MAX_FRAME - len(buf), len(data))
        if take > 0:
            buf.extend(data[:take] if take < len(data) else data)
        return take

    def gap(self) -> None:
        """The line has been silent for t3.5: what is buffered now must end a frame."""
        if self._i < len(self._buf):
            self._boundary = len(self._buf)

    def next_event(self) -> "Pdu | str":
        while self._i < len(self._buf):
            buf, i = self._buf, self._i
            limit = (self._boundary if self._boundary >= 0 else len(buf)) - i
            length, kind = self._match(buf, i, limit)
            if length > 0:
                self._hunting = False
                self.frames += 1
                unit = buf[i]
                if self.role == SERVER:
                    # Requests for us or broadcast; everything else is other nodes' business.
                    wanted = kind == _REQ and (
                        self.address is None or unit == self.address or unit == BROADCAST
                    )
                else:  # a gateway takes responses (none comes from unit 0); a monitor all
                    wanted = self.role == MONITOR or (kind == _RESP and unit != BROADCAST)
                if not wanted:  # skipped on length and CRC alone, never decoded
                    self._consume(length)
                    self.skipped += 1
                    continue
                try:
                    if kind == _REQ:
                        return decode_request(unit, buf, i + 1)
                    self._expect = None
                    return self._decode_response(unit, buf, i + 1)
                except FrameError:
                    self.frame_errors += 1
                    raise
                finally:
                    self._consume(length)
            if length == 0 and self._boundary < 0:
                if not (self._hunting and self._skip_to_edge()):
                    return NEED_DATA
                continue
            # Garbage, a failed CRC, or a frame cut short by silence: drop a byte and hunt on.
            self._consume(1)
            self.discarded += 1
            if not self._hunting:
                self._hunting = True
                if length == -2:
                    self.crc_errors += 1
                    raise CRCError("CRC mismatch; resynchronising")
                self.frame_errors += 1
                raise FrameError("garbage or truncated frame; resynchronising")
        return NEED_DATA

    def _match(self, buf: bytearray, i: int, limit: int) -> "tuple[int, int]":
        """(length, kind) of a CRC-valid frame at buf[i], limit bytes available; (0, 0) to
        wait for more; (-2, 0) after a CRC mismatch, (-1, 0) for anything else.

        RTU bytes can be valid in two shapes at once: whenever a frame's CRC high byte is 0x00
        (1 frame in 256), its bytes but the last are a CRC-valid frame too, as the CRC residue
        of that prefix is zero. Frames arrive whole and end in silence, so the shape that ends
        exactly at the edge of what has arrived (the t3.5 silence if gap() saw one, else the
        last byte) wins; the other shape ending there waits for one more byte while the role's
        own shape is still incomplete. A client told what it asked for (expect) takes only the
        response that request implies.
        """
        if limit < _MIN_FRAME:
            return 0, 0
        if buf[i] > ADDRESS_MAX:
            return -1, 0
        exp = self._expect
        wait = False  # a shape that may still complete
        cut = False  # a shape that would run past the silence: a truncated frame
        bad = -1
        found = found_kind = 0  # the first valid shape, in the role's order
        edge = edge_kind = 0  # a valid shape ending exactly where the received bytes end
        for kind in self._order:
            n = _request_len(buf, i, limit) if kind == _REQ else _response_len(buf, i)
            if n < 0 or n > MAX_FRAME:
                continue
            if kind == _RESP and exp is not None:
                fc = buf[i + 1]
                if buf[i] != exp[0] or fc & 0x7F != exp[1] or n != (5 if fc & 0x80 else exp[2]):
                    continue  # not the response to what this client asked
            if n == 0 or n > limit:
                if self._boundary < 0:
                    wait = True
                else:
                    cut = True
            elif not check_crc(buf, i, i + n):
                bad = -2
            elif n == limit and not edge:
                edge, edge_kind = n, kind
            elif not found:
                found, found_kind = n, kind
        if edge:
            if wait and edge_kind != self._order[0]:
                return 0, 0
            return edge, edge_kind
        if found:
            return found, found_kind
        if wait:
            return 0, 0
        if cut:
            return -1, 0
        if bad == -1 and self.role == SERVER and buf[i] == self.address:
            # A function we do not implement, addressed to us: find its end by CRC so the node
            # can answer "illegal function" (spec 7, code 01) instead of timing the master out.
            for n in range(_MIN_FRAME, limit + 1):
                if check_crc(buf, i, i + n):
                    return n, _REQ
            # Until a t3.5 silence ends it, such a request may still be arriving in pieces:
            # wait, unless a request we know ends on the last byte (then this was noise).
            if self._boundary < 0 and limit < MAX_FRAME and not self._request_ends(i, limit):
                return 0, 0
        return bad, 0

    def _request_ends(self, i: int, limit: int) -> bool:
        """A CRC-valid request of a known function starts after buf[i] and ends on the last of
        the limit bytes from i."""
        buf, end = self._buf, i + limit
        for j in range(i + 1, end - _MIN_FRAME + 1):
            n = _request_len(buf, j, end - j)
            if n > 0 and j + n == end and check_crc(buf, j, end):
                return True
        return False

    def _skip_to_edge(self) -> bool:
        """While hunting through noise, jump to a valid frame that ends exactly on the last
        byte received (frames arrive whole), instead of waiting on a noise byte that looks
        like the start of a long frame. True if it jumped."""
        buf, end = self._buf, len(self._buf)
        for j in range(self._i + 1, end - _MIN_FRAME + 1):
            if self._match(buf, j, end - j)[0] == end - j:
                self.discarded += j - self._i
                self._i = j
                return True
        return False

    def _decode_response(self, unit: int, buf: bytearray, i: int) -> Pdu:
        raise ValueError("a CLIENT or MONITOR decoder is protocol.master.MasterDecoder")

    def _consume(self, n: int) -> None:
        self._i += n
        if self._boundary >= 0 and self._i >= self._boundary:
            self._boundary = -1
        if self._i >= len(self._buf):
            self._buf = bytearray()
            self._i = 0
