"""Modbus RTU timing, from Modbus over Serial Line V1.02 2.5.1.1 and ../shared/DOMAIN.md.

A character is 11 bits on the wire (start, 8 data, parity or second stop, stop). Above 19200
baud the inter-frame (t3.5) and inter-character (t1.5) times are fixed at 1750 us and 750 us.
"""

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


_BITS_PER_CHAR = const(11)


def char_time_us(baud: int) -> int:
    """Microseconds one character takes on the wire, rounded up."""
    return (_BITS_PER_CHAR * 1_000_000 + baud - 1) // baud


def t35_us(baud: int) -> int:
    """Minimum silence between frames."""
    return (
        1750 if baud > 19200 else (35 * _BITS_PER_CHAR * 1_000_000 + 10 * baud - 1) // (10 * baud)
    )


def t15_us(baud: int) -> int:
    """Maximum silence inside a frame."""
    return 750 if baud > 19200 else (15 * _BITS_PER_CHAR * 1_000_000 + 10 * baud - 1) // (10 * baud)


def read_transaction_us(baud: int, registers: int) -> int:
    """Wire time of one FC03/04 read of n registers: 8-byte request, 5+2n-byte response and
    a t3.5 after each (DOMAIN.md). The bus cannot do better than 1e6 / this per second."""
    return (13 + 2 * registers) * _BITS_PER_CHAR * 1_000_000 // baud + 2 * t35_us(baud)
