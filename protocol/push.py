"""Push framing for the serial-link mode: a node sends events itself and the gateway ACKs.

On the wire: COBS(body) 0x00. The body, big-endian:

    version u8 | type u8 | flags u8 | node_id u32 | seq u16 | payload
    [ counter u32 | tag 12 bytes ]      when flags & _FLAG_AUTH
    crc u16 (CRC-16/MODBUS of everything before it, low byte first)

seq names a message: a retransmission keeps it, so the receiver can ACK it again and drop the
duplicate. counter is per sender and grows on every transmission, retransmissions included, so
a recorded frame can never be accepted twice. The tag is HMAC-SHA256 (auth.py) over everything
before it, under the sending node's key; ACK and NAK from the gateway are signed the same way,
so a forged ACK cannot make a node stop resending an alarm.
"""

from struct import pack, unpack_from

from . import cobs
from .auth import TAG_LEN, AuthError, ReplayError, Signer
from .crc import append_crc, check_crc
from .errors import NEED_DATA, CRCError, FrameError
from .registers import STATUS_BLOCK_LEN

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


VERSION = const(1)
_FLAG_AUTH = const(0x01)
_HEADER_LEN = const(9)
_MAX_BODY = const(96)  # the largest body Firelane sends is < 60 bytes
_MAX_ENCODED = const(98)  # _MAX_BODY + COBS: one byte per 254, plus the first length byte
_MAX_BUFFER = const(256)

# Message types.
MT_EVENT = const(1)  # payload: EVENT_FORMAT
MT_HEARTBEAT = const(2)  # payload: HEARTBEAT_FORMAT (the status block registers + uptime)
MT_ACK = const(3)  # payload: the acknowledged seq
MT_NAK = const(4)  # payload: the refused seq and a NAK_* reason

NAK_MALFORMED = const(1)  # well-framed but the payload does not parse: do not resend as is
NAK_BUSY = const(2)  # the gateway could not store it (disk full): resend later

# Payloads are struct formats, packed by the sender: pack(EVENT_FORMAT, code, source, detail,
# status, value, uptime_s) with value scaled as its register; pack(HEARTBEAT_FORMAT,
# *status_block_registers, uptime_s); ACK ">H" seq; NAK ">HB" seq, reason.
EVENT_FORMAT = ">BBBHhI"
HEARTBEAT_FORMAT = ">%dHI" % STATUS_BLOCK_LEN


# Payload size by message type (index); 0xFF for an unused type number.
_SIZES = bytes((0xFF, 11, 2 * STATUS_BLOCK_LEN + 4, 2, 3))


def _sized(mtype: int, payload: bytes) -> bool:
    """Whether payload has the size its message type needs (False for an unknown type)."""
    return 0 < mtype < len(_SIZES) and _SIZES[mtype] == len(payload)


class Frame:
    """One decoded push frame. counter is None for an unauthenticated frame."""

    def __init__(
        self, mtype: int, node_id: int, seq: int, payload: bytes, counter: "int | None" = None
    ):
        self.type, self.node_id, self.seq = mtype, node_id, seq
        self.payload, self.counter = payload, counter


def encode(
    mtype: int,
    node_id: int,
    seq: int,
    payload: bytes,
    signer: "Signer | None" = None,
    counter: int = 0,
) -> bytes:
    """The bytes to send: COBS-encoded body and the 0x00 delimiter. Pass a signer (and the
    sender's next counter) to authenticate."""
    if not _sized(mtype, payload):
        raise ValueError("push type %r with %d-byte payload" % (mtype, len(payload)))
    if not 0 <= node_id <= 0xFFFFFFFF or not 0 <= seq <= 0xFFFF:
        raise ValueError("node id %r or seq %r out of range" % (node_id, seq))
    body = pack(">BBBIH", VERSION, mtype, _FLAG_AUTH if signer else 0, node_id, seq) + payload
    if signer:
        if not 0 <= counter <= 0xFFFFFFFF:
            raise ValueError("counter %r is not a u32" % counter)
        body += pack(">I", counter)
        body += signer.mac(body)[:TAG_LEN]
    return cobs.encode(append_crc(body)) + b"\x00"


class PushDecoder:
    """feed(bytes) / next_event() -> Frame | NEED_DATA; one FrameError per bad frame.

    signers maps node id to that node's Signer; a node without one must send unsigned frames.
    last maps node id to the newest counter accepted from it: a signed frame whose counter is
    not newer is a replay. The gateway persists it across restarts and passes it back in.
    """

    def __init__(
        self,
        signers: "dict[int, Signer] | None" = None,
        last: "dict[int, int] | None" = None,
    ):
        self._signers = signers
        self.last = last if last is not None else {}
        self._buf = bytearray()
        self._i = 0  # read position, compacted on feed
        self._dropping = False  # inside an over-long frame: skip to its delimiter
        self.frames = 0
        self.errors = 0

    def feed(self, data: "bytes | bytearray | memoryview") -> int:
        """Buffer up to _MAX_BUFFER bytes; returns how many were taken (drain, then feed on)."""
        buf = self._buf
        if self._i:
            buf[:] = buf[self._i :]
            self._i = 0
        take = min(_MAX_BUFFER - len(buf), len(data))
        if take > 0:
            buf.extend(data[:take] if take < len(data) else data)
        return take

    def next_event(self) -> "Frame | str":
        buf = self._buf
        while True:
            end = buf.find(b"\x00", self._i)
            if self._dropping:
                if end < 0:
                    self._i = len(buf)
                    return NEED_DATA
                self._i = end + 1
                self._dropping = False
                continue
            if end < 0:
                if len(buf) - self._i <= _MAX_ENCODED:
                    return NEED_DATA
                self._i = len(buf)
                self._dropping = True
                self.errors += 1
                raise FrameError("push frame longer than %d bytes" % _MAX_ENCODED)
            block = bytes(buf[self._i : end])
            self._i = end + 1
            if not block:
                continue  # idle delimiters between frames
            try:
                frame = self._parse(block)
            except FrameError:
                self.errors += 1
                raise
            self.frames += 1
            return frame

    def _parse(self, block: bytes) -> Frame:
        if len(block) > _MAX_ENCODED:
            raise FrameError("push frame longer than %d bytes" % _MAX_ENCODED)
        body = cobs.decode(block)
        n = len(body)
        if n < _HEADER_LEN + 2:
            raise FrameError("push frame too short (%d bytes)" % n)
        if not check_crc(body, 0, n):
            raise CRCError("push frame CRC mismatch")
        version, mtype, flags, node_id, seq = unpack_from(">BBBIH", body)
        if version != VERSION:
            raise FrameError("push frame version %d, expected %d" % (version, VERSION))
        end = n - 2
        signer = self._signers.get(node_id) if self._signers is not None else None
        counter = None
        if flags & _FLAG_AUTH:
            end -= 4 + TAG_LEN
            if end < _HEADER_LEN:
                raise FrameError("push frame too short (%d bytes)" % n)
            if signer is None:
                raise AuthError("signed frame from node %d, which has no key here" % node_id)
            if not signer.verify(body[: end + 4], body[end + 4 : n - 2]):
                raise AuthError("bad authentication tag from node %d" % node_id)
            counter = unpack_from(">I", body, end)[0]
            if counter <= self.last.get(node_id, -1):
                raise ReplayError("replayed frame from node %d (counter %d)" % (node_id, counter))
            self.last[node_id] = counter
        elif signer is not None:
            raise AuthError("unsigned frame from node %d, which must sign" % node_id)
        payload = body[_HEADER_LEN:end]
        if not _sized(mtype, payload):
            raise FrameError(
                "push type %d from node %d with %d-byte payload" % (mtype, node_id, len(payload))
            )
        return Frame(mtype, node_id, seq, payload, counter)
