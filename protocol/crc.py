"""CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), table-driven.

Modbus over Serial Line V1.02, 6.2.2: the CRC is sent low byte first. The same CRC guards push
frames. The table is 512 bytes in an array (not a 256-item list of ints) to spare the ESP32 heap.
"""

from array import array

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


_POLY = const(0xA001)
_CRC_INIT = const(0xFFFF)


# Built by module-level code, which MicroPython frees after import; a builder function would
# stay resident.
_TABLE = array("H", bytes(512))
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE[_i] = _c
del _i, _c


def crc16(
    data: "bytes | bytearray | memoryview", start: int = 0, end: int = -1, crc: int = _CRC_INIT
) -> int:
    """CRC-16/MODBUS of data[start:end] (end=-1 means to the end) without copying.

    Pass a previous result as crc to continue over a second chunk.
    """
    table = _TABLE
    if end < 0:
        end = len(data)
    for i in range(start, end):
        crc = (crc >> 8) ^ table[(crc ^ data[i]) & 0xFF]
    return crc


def append_crc(frame: "bytes | bytearray | memoryview") -> bytes:
    """frame + its CRC, low byte first, as on the wire."""
    crc = crc16(frame)
    return bytes(frame) + bytes((crc & 0xFF, crc >> 8))


def check_crc(data: "bytes | bytearray | memoryview", start: int, end: int) -> bool:
    """True when data[start:end] ends in the CRC of the bytes before it."""
    crc = crc16(data, start, end - 2)
    return bool(data[end - 2] == crc & 0xFF and data[end - 1] == crc >> 8)
