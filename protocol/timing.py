"""Modbus RTU timing, from Modbus over Serial Line V1.02 2.5.1.1 and ../shared/DOMAIN.md.

A character is 11 bits on the wire (start, 8 data, parity or second stop, stop). Above 19200
baud the inter-frame silence t3.5 is fixed at 1750 us. (The inter-character limit t1.5 is not
used: frames are checked by length and CRC. The wire time of a whole poll, which only the
gateway needs, is in gateway/bus_timing.py.)
"""

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


BITS_PER_CHAR = const(11)


def char_time_us(baud: int) -> int:
    """Microseconds one character takes on the wire, rounded up."""
    return (BITS_PER_CHAR * 1_000_000 + baud - 1) // baud


def t35_us(baud: int) -> int:
    """Minimum silence between frames."""
    return 1750 if baud > 19200 else (35 * BITS_PER_CHAR * 1_000_000 + 10 * baud - 1) // (10 * baud)
