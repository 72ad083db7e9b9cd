"""Names for people: what codes, bits and registers are called in logs, MQTT payloads and docs,
and the decoding of register words into values in their units.

Used by the gateway and tools, never loaded on a node (it would cost heap for nothing there).
Every name here is checked against the numbers in codes.py and registers.py by the tests.
"""

from struct import unpack_from

from . import codes as c
from . import push
from . import registers as r

EVENTS = {
    c.EV_ALARM: "alarm",
    c.EV_PRE_ALARM: "pre_alarm",
    c.EV_FAULT: "fault",
    c.EV_RESTORE: "restore",
    c.EV_BUTTON: "button",
    c.EV_TEST: "test",
    c.EV_SILENCED: "silenced",
}
SOURCES = {
    c.SRC_NODE: "node",
    c.SRC_SMOKE: "smoke",
    c.SRC_LEAKAGE: "leakage",
    c.SRC_TEMPERATURE: "temperature",
    c.SRC_BUTTON: "button",
    c.SRC_SUPPLY: "supply",
}
FAULTS = {
    c.FAULT_SMOKE_DIRTY: "smoke_chamber_dirty",
    c.FAULT_SMOKE_INPUT: "smoke_input",
    c.FAULT_CT_OPEN: "ct_open_circuit",
    c.FAULT_TEMP_SENSOR: "temperature_sensor",
    c.FAULT_LOW_SUPPLY: "low_supply",
    c.FAULT_SELF_TEST: "self_test_failed",
    c.FAULT_SAFE_MODE: "safe_mode",
    c.FAULT_CONFIG: "config_invalid",
}
COMMANDS = {
    c.CMD_SILENCE: "silence",
    c.CMD_SELF_TEST: "self_test",
    c.CMD_RESET_ALARM: "reset_alarm",
    c.CMD_IDENTIFY: "identify",
}
RESET_CAUSES = {
    c.RESET_POWER_ON: "power_on",
    c.RESET_HARD: "hard",
    c.RESET_WATCHDOG: "watchdog",
    c.RESET_SOFT: "soft",
    c.RESET_BROWNOUT: "brownout",
}
EXCEPTIONS = {
    c.EX_ILLEGAL_FUNCTION: "illegal_function",
    c.EX_ILLEGAL_ADDRESS: "illegal_data_address",
    c.EX_ILLEGAL_VALUE: "illegal_data_value",
    c.EX_DEVICE_FAILURE: "device_failure",
}
STATUS_BITS = {
    r.ST_ALARM: "alarm",
    r.ST_PRE_ALARM: "pre_alarm",
    r.ST_FAULT: "fault",
    r.ST_TAMPER: "tamper",
    r.ST_TEST: "test_mode",
    r.ST_SILENCED: "silenced",
    r.ST_SOUNDING: "sounding",
    r.ST_LOW_SUPPLY: "low_supply",
    r.ST_SAFE_MODE: "safe_mode",
}
PUSH_TYPES = {
    push.MT_EVENT: "event",
    push.MT_HEARTBEAT: "heartbeat",
    push.MT_ACK: "ack",
    push.MT_NAK: "nak",
}
UNITS = ("", "%/m", "mA", "degC", "V", "s", "degC/min", "baud/100")  # registers unit codes
# The access and kind codes of registers.TABLE (most are private there, free on the node).
ACCESS = {1: "R", r.W: "W", 3: "RW"}
KINDS = {0: "u16", r.I16: "i16", r.U32: "u32", 3: "bits", 4: "enum"}

# Register names, in map order; each is also the constant's name in registers.py, except the
# map version register, whose constant is MAP_VERSION_REG (MAP_VERSION is the value).
REGISTERS = {
    r.DEVICE_TYPE: "DEVICE_TYPE",
    r.FW_VERSION: "FW_VERSION",
    r.FW_PATCH: "FW_PATCH",
    r.NODE_ID: "NODE_ID",
    r.MAP_VERSION_REG: "MAP_VERSION",
    r.STATUS: "STATUS",
    r.ALARM_SOURCES: "ALARM_SOURCES",
    r.FAULTS: "FAULTS",
    r.EVENT_SEQ: "EVENT_SEQ",
    r.SMOKE: "SMOKE",
    r.LEAKAGE: "LEAKAGE",
    r.TEMPERATURE: "TEMPERATURE",
    r.SUPPLY: "SUPPLY",
    r.UPTIME: "UPTIME",
    r.CRC_ERRORS: "CRC_ERRORS",
    r.FRAME_ERRORS: "FRAME_ERRORS",
    r.RESET_COUNT: "RESET_COUNT",
    r.RESET_CAUSE: "RESET_CAUSE",
    r.BOOT_FAILURES: "BOOT_FAILURES",
    r.QUEUE_DROPS: "QUEUE_DROPS",
    r.ADDRESS: "ADDRESS",
    r.BAUD: "BAUD",
    r.SMOKE_ALARM: "SMOKE_ALARM",
    r.SMOKE_PRE_ALARM: "SMOKE_PRE_ALARM",
    r.LEAKAGE_ALARM: "LEAKAGE_ALARM",
    r.LEAKAGE_PRE_ALARM: "LEAKAGE_PRE_ALARM",
    r.LEAKAGE_ALARM_DELAY: "LEAKAGE_ALARM_DELAY",
    r.LEAKAGE_RELEASE_DELAY: "LEAKAGE_RELEASE_DELAY",
    r.TEMP_FIXED: "TEMP_FIXED",
    r.TEMP_RATE: "TEMP_RATE",
    r.SUPPLY_LOW: "SUPPLY_LOW",
    r.HEARTBEAT: "HEARTBEAT",
    r.LINK_MODE: "LINK_MODE",
    r.COMMAND: "COMMAND",
}


def bits(names: "dict[int, str]", value: int) -> "list[str]":
    """The names of the bits set in value, e.g. bits(STATUS_BITS, 5) -> ['alarm', 'fault']."""
    return [name for bit, name in names.items() if value & bit]


def rows() -> "list[tuple[int, ...]]":
    """Every register map row, in address order, as a tuple:
    (address, access, kind, scale, unit, minimum, maximum, default)."""
    t = r.TABLE
    return [tuple(t[i : i + 8]) for i in range(0, len(t), 8)]


def row(address: int) -> "tuple[int, ...] | None":
    """The row of the register at address (or covering it, for a u32's second word)."""
    for one in rows():
        if one[0] == address or (one[2] == r.U32 and one[0] + 1 == address):
            return one
    return None


def describe(address: int) -> "dict[str, object]":
    """A register's row as a dict of readable fields (for docs, CLI and upstream payloads)."""
    found = row(address)
    if found is None:
        raise KeyError("no register at 0x%04x" % address)
    address, access, kind, scale, unit, minimum, maximum, default = found
    writable = access & r.W
    return {
        "address": address,
        "name": REGISTERS[address],
        "access": ACCESS[access],
        "type": KINDS[kind],
        "unit": UNITS[unit],
        "scale": scale,
        "min": minimum if writable else None,
        "max": maximum if writable else None,
        "default": default if writable or default else None,
    }


def to_words(kind: int, raw: int) -> "tuple[int, ...]":
    """The register words holding raw (a u32 high word first)."""
    if kind == r.U32:
        return ((raw >> 16) & 0xFFFF, raw & 0xFFFF)
    return (raw & 0xFFFF,)


def from_words(kind: int, regs: "tuple[int, ...] | list[int]", i: int = 0) -> int:
    """The raw value of a register of this kind starting at regs[i]; i16 comes back signed."""
    if kind == r.U32:
        return (regs[i] << 16) | regs[i + 1]
    v = regs[i]
    return v - 0x10000 if kind == r.I16 and v >= 0x8000 else v


def physical(address: int, regs: "tuple[int, ...] | list[int]", i: int = 0) -> "int | float":
    """The value of the register at address, read from regs[i:], in its unit (scaled)."""
    found = row(address)
    if found is None:
        raise KeyError("no register at 0x%04x" % address)
    raw = from_words(found[2], regs, i)
    return raw if found[3] == 1 else raw / found[3]


def fields(frame: push.Frame) -> "tuple[int, ...]":
    """A push frame's payload unpacked by its type: push.EVENT_FORMAT, push.HEARTBEAT_FORMAT,
    (seq,) for an ACK, (seq, reason) for a NAK."""
    if frame.type == push.MT_EVENT:
        return unpack_from(push.EVENT_FORMAT, frame.payload)
    if frame.type == push.MT_HEARTBEAT:
        return unpack_from(push.HEARTBEAT_FORMAT, frame.payload)
    if frame.type == push.MT_ACK:
        return unpack_from(">H", frame.payload)
    return unpack_from(">HB", frame.payload)
