"""Wire time of Modbus transactions: what the bus can carry, for the poll scheduler and the
benchmarks (the node never needs this, so it lives here rather than in protocol/timing.py).

../shared/DOMAIN.md: T = (8 + 5 + 2N) x 11 / baud + 2 x t3.5 for an FC03/04 read of N
registers (8-byte request, 5 + 2N-byte response, a silence after each).
"""

from __future__ import annotations

from protocol.timing import BITS_PER_CHAR, t35_us

REQUEST_BYTES = 8  # unit, function, address, count, CRC
RESPONSE_OVERHEAD_BYTES = 5  # unit, function, byte count, CRC


def read_transaction_us(baud: int, registers: int) -> int:
    """Microseconds one read of `registers` registers occupies the line."""
    chars = REQUEST_BYTES + RESPONSE_OVERHEAD_BYTES + 2 * registers
    return chars * BITS_PER_CHAR * 1_000_000 // baud + 2 * t35_us(baud)


def ceiling_per_s(baud: int, registers: int) -> float:
    """The most such reads per second the wire allows: the bar the poller is measured against."""
    return 1e6 / read_transaction_us(baud, registers)
