"""Consistent Overhead Byte Stuffing (Cheshire & Baker, IEEE/ACM ToN 1999).

COBS removes every 0x00 from a frame at a cost of at most one byte per 254, so 0x00 can
delimit push frames: a receiver that joins mid-stream, or loses bytes to noise, is back in
step at the next 0x00.
"""

from .errors import FrameError


def encode(data: "bytes | bytearray | memoryview") -> bytes:
    """data with its zeros stuffed away; the caller appends the 0x00 delimiter."""
    out = bytearray(len(data) + len(data) // 254 + 2)
    code_at = 0  # where the current block's length byte goes
    o = 1
    code = 1
    for b in data:
        if b == 0:
            out[code_at] = code
            code_at = o
            o += 1
            code = 1
            continue
        out[o] = b
        o += 1
        code += 1
        if code == 0xFF:
            out[code_at] = code
            code_at = o
            o += 1
            code = 1
    out[code_at] = code
    return bytes(out[:o])


def decode(data: "bytes | bytearray | memoryview") -> bytes:
    """The original bytes of one COBS block (without its delimiter); FrameError if invalid."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("COBS block contains a zero byte")
        end = i + code
        if end > n:
            raise FrameError("COBS block ends %d bytes early" % (end - n))
        out.extend(data[i + 1 : end])
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)
