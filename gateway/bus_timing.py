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


def frame_us(baud: int, nbytes: int) -> int:
    """Microseconds nbytes take on the wire, with no silence around them."""
    return nbytes * BITS_PER_CHAR * 1_000_000 // baud


# An FTDI USB-RS485 adapter holds received bytes up to its 16 ms latency timer (DOMAIN.md).
USB_LATENCY_S = 0.016
# A node answers from RAM t3.5 after the request (the silence read_transaction_us already
# counts), late by up to one link poll step of its own (t3.5 while the line is busy, 5 ms
# after 50 ms of quiet) and a ms tick (docs/firmware.md, Links): 10 ms covers that at 9600
# baud and up.
NODE_TURNAROUND_S = 0.010


def response_timeout_s(
    baud: int,
    registers: int = 8,
    latency_s: float = USB_LATENCY_S,
    turnaround_s: float = NODE_TURNAROUND_S,
) -> float:
    """How long to wait for the answer to a read of `registers` registers before calling the
    node silent: the request and response on the wire with their t3.5 silences, the node's
    turnaround, and the adapter's latency. 19200 baud, 8 registers: 46.6 ms (a fixed 1 s
    timeout would let one dead node cost the bus 48 reads)."""
    return read_transaction_us(baud, registers) / 1e6 + turnaround_s + latency_s
