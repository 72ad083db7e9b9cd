"""Firelane's wire protocol, shared by node firmware (MicroPython) and gateway (CPython).

Sans-IO: bytes in, messages out, bytes back. No clock, port or socket in here, so the same
files run on both runtimes. The public API is the modules; import the ones you need, which on
a node keeps the heap small (each module's cost is in docs/protocol.md):

    errors     ProtocolError, FrameError, CRCError, NEED_DATA
    crc        CRC-16/MODBUS
    codes      function, exception, event, source, fault, command and reset codes
    registers  the register map: addresses, bits, units, limits, read/write checks
    modbus     Modbus PDUs (FC 03, 04, 06, 16, 08/00, exceptions)
    rtu        RTU framing and the incremental bus decoder (RtuDecoder)
    timing     Modbus serial-line timing (t1.5, t3.5, wire time)
    cobs       Consistent Overhead Byte Stuffing
    auth       truncated HMAC-SHA256, AuthError and ReplayError
    push       push-mode frames and PushDecoder
    names      names of everything above, for people (gateway and tools only)
"""

__all__ = [
    "auth",
    "cobs",
    "codes",
    "crc",
    "errors",
    "modbus",
    "names",
    "push",
    "registers",
    "rtu",
    "timing",
]
