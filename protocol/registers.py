"""The register map: everything a node exposes over Modbus, with units, scaling and limits.

One address space, readable with FC03 and FC04, writable with FC06/FC16 where the access is
RW or W. Registers are 16-bit big-endian; a u32 spans two registers, high word first (the
order most Modbus masters call "big-endian, word swap off"). docs/registers.md describes every
row and tests/protocol/test_registers.py fails when the two disagree.

The table is a flat array of 16-bit ints, eight per row, because on the node a tuple of
tuples of strings costs ten times the heap (measured under MicroPython; see docs/protocol.md):
(address, access, kind, scale, unit, minimum, maximum, default). The physical value is
raw / scale in names.UNITS[unit]; minimum, maximum and default are raw and apply to writable rows,
whose writes outside minimum..maximum get exception 03. Names for people live in names.py.
"""

from array import array

from .codes import CMD_IDENTIFY

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


MAP_VERSION = const(1)
DEVICE_TYPE_NODE = const(1)  # multi-sensor node: smoke, leakage, temperature, button

# Identity (read-only).
DEVICE_TYPE = const(0x0000)
FW_VERSION = const(0x0001)  # major << 8 | minor
FW_PATCH = const(0x0002)
NODE_ID = const(0x0003)  # u32: serial number, the node's identity upstream
MAP_VERSION_REG = const(0x0005)

# Status and measurements (read-only): one 8-register read per poll cycle covers the block.
STATUS = const(0x0010)
ALARM_SOURCES = const(0x0011)  # bit n set: source n (codes.SRC_*) is in alarm
FAULTS = const(0x0012)  # bit n set: fault n (codes.FAULT_*) is present
EVENT_SEQ = const(0x0013)  # +1 on every event; a change means "read the rest"
SMOKE = const(0x0014)
LEAKAGE = const(0x0015)
TEMPERATURE = const(0x0016)
SUPPLY = const(0x0017)
STATUS_BLOCK_LEN = const(8)

# Counters (read-only, 16-bit ones wrap).
UPTIME = const(0x0020)  # u32 seconds
CRC_ERRORS = const(0x0022)
FRAME_ERRORS = const(0x0023)
RESET_COUNT = const(0x0024)
RESET_CAUSE = const(0x0025)  # codes.RESET_*
BOOT_FAILURES = const(0x0026)  # consecutive failed boots; safe mode at the limit
QUEUE_DROPS = const(0x0027)  # push-mode telemetry frames dropped (never alarms)

# Configuration (read-write, persisted by the node).
ADDRESS = const(0x0040)
BAUD = const(0x0041)  # baud / 100
SMOKE_ALARM = const(0x0042)
SMOKE_PRE_ALARM = const(0x0043)
LEAKAGE_ALARM = const(0x0044)
LEAKAGE_PRE_ALARM = const(0x0045)
LEAKAGE_ALARM_DELAY = const(0x0046)
LEAKAGE_RELEASE_DELAY = const(0x0047)
TEMP_FIXED = const(0x0048)
TEMP_RATE = const(0x0049)
SUPPLY_LOW = const(0x004A)
HEARTBEAT = const(0x004B)
LINK_MODE = const(0x004C)  # 0 polled Modbus slave, 1 push link

# Command (write a codes.CMD_* value; reads as 0).
COMMAND = const(0x0060)

# STATUS bits.
ST_ALARM = const(0x0001)
ST_PRE_ALARM = const(0x0002)
ST_FAULT = const(0x0004)
ST_TAMPER = const(0x0008)
ST_TEST = const(0x0010)
ST_SILENCED = const(0x0020)
ST_SOUNDING = const(0x0040)  # local buzzer is sounding
ST_LOW_SUPPLY = const(0x0080)
ST_SAFE_MODE = const(0x0100)

BAUD_CHOICES = (96, 192, 384, 576, 1152)  # baud / 100; 19200 is the default (spec 2.5.1)
LINK_POLLED = const(0)
LINK_PUSH = const(1)

# Access and kinds of value. Only W, I16 and U32 are needed outside this table; the others
# are private (inlined, free on the node) and names.ACCESS / names.KINDS spell out all of them,
# checked against docs/registers.md row by row.
_R = const(1)
W = const(2)
_RW = const(3)
_U16 = const(0)
I16 = const(1)
U32 = const(2)  # two registers, high word first
_BITS = const(3)
_ENUM = const(4)

# Units, by the code in a row's unit column (their spelling is names.UNITS).
_PCT = const(1)
_MA = const(2)
_DEGC = const(3)
_VOLT = const(4)
_SEC = const(5)
_RATE = const(6)
_BAUD = const(7)
_ROW = const(8)  # ints per row

# fmt: off
TABLE = array("H", (
    # address           access kind scale unit min max default
    DEVICE_TYPE,           _R, _ENUM,    1, 0, 0, 0, DEVICE_TYPE_NODE,
    FW_VERSION,            _R, _U16,     1, 0, 0, 0, 0,
    FW_PATCH,              _R, _U16,     1, 0, 0, 0, 0,
    NODE_ID,               _R, U32,     1, 0, 0, 0, 0,
    MAP_VERSION_REG,       _R, _U16,     1, 0, 0, 0, MAP_VERSION,
    STATUS,                _R, _BITS,    1, 0, 0, 0, 0,
    ALARM_SOURCES,         _R, _BITS,    1, 0, 0, 0, 0,
    FAULTS,                _R, _BITS,    1, 0, 0, 0, 0,
    EVENT_SEQ,             _R, _U16,     1, 0, 0, 0, 0,
    SMOKE,                 _R, _U16,   100, _PCT, 0, 0, 0,
    LEAKAGE,               _R, _U16,     1, _MA, 0, 0, 0,
    TEMPERATURE,           _R, I16,    10, _DEGC, 0, 0, 0,
    SUPPLY,                _R, _U16,  1000, _VOLT, 0, 0, 0,
    UPTIME,                _R, U32,     1, _SEC, 0, 0, 0,
    CRC_ERRORS,            _R, _U16,     1, 0, 0, 0, 0,
    FRAME_ERRORS,          _R, _U16,     1, 0, 0, 0, 0,
    RESET_COUNT,           _R, _U16,     1, 0, 0, 0, 0,
    RESET_CAUSE,           _R, _ENUM,    1, 0, 0, 0, 0,
    BOOT_FAILURES,         _R, _U16,     1, 0, 0, 0, 0,
    QUEUE_DROPS,           _R, _U16,     1, 0, 0, 0, 0,
    ADDRESS,               _RW, _U16,    1, 0, 1, 247, 247,
    BAUD,                  _RW, _ENUM,   1, _BAUD, 96, 1152, 192,
    SMOKE_ALARM,           _RW, _U16,  100, _PCT, 50, 2000, 240,
    SMOKE_PRE_ALARM,       _RW, _U16,  100, _PCT, 30, 2000, 160,
    LEAKAGE_ALARM,         _RW, _U16,    1, _MA, 20, 1000, 300,
    LEAKAGE_PRE_ALARM,     _RW, _U16,    1, _MA, 10, 1000, 240,
    LEAKAGE_ALARM_DELAY,   _RW, _U16,   10, _SEC, 0, 300, 20,
    LEAKAGE_RELEASE_DELAY, _RW, _U16,   10, _SEC, 0, 6000, 50,
    TEMP_FIXED,            _RW, I16,   10, _DEGC, 400, 900, 570,
    TEMP_RATE,             _RW, _U16,   10, _RATE, 30, 300, 90,
    SUPPLY_LOW,            _RW, _U16, 1000, _VOLT, 3000, 30000, 10800,
    HEARTBEAT,             _RW, _U16,    1, _SEC, 5, 3600, 30,
    LINK_MODE,             _RW, _ENUM,   1, 0, LINK_POLLED, LINK_PUSH, LINK_POLLED,
    COMMAND,               W, _ENUM,    1, 0, 0, CMD_IDENTIFY, 0,
))
# fmt: on


def _index(address: int) -> int:
    """Table index of the row covering address (a u32's second word too), or -1."""
    t = TABLE
    for i in range(0, len(t), _ROW):
        if t[i] == address or (t[i + 2] == U32 and t[i] + 1 == address):
            return i
    return -1


def default(address: int) -> int:
    return int(TABLE[_index(address) + 7])


def check_read(address: int, count: int) -> int:
    """0 when every register in the range exists, else Modbus exception 02."""
    for a in range(address, address + count):
        if _index(a) < 0:
            return 2
    return 0


def valid(address: int, raw: int) -> bool:
    """Whether raw (a 16-bit word) may be written to the single-word register at address."""
    i = _index(address)
    if i < 0 or not TABLE[i + 1] & W:
        return False
    if address == BAUD:
        return raw in BAUD_CHOICES
    if TABLE[i + 2] == I16 and raw >= 0x8000:
        raw -= 0x10000
    return bool(TABLE[i + 5] <= raw <= TABLE[i + 6])


def check_write(address: int, values: "tuple[int, ...] | list[int]") -> int:
    """0 when values may be written from address on; else exception 02 (a register that is
    missing or read-only) or 03 (a value out of range). All or nothing: a node applies a
    request only when this returns 0."""
    for i in range(len(values)):
        j = _index(address + i)
        if j < 0 or not TABLE[j + 1] & W:
            return 2
    for i in range(len(values)):
        if not valid(address + i, values[i]):
            return 3
    return 0
