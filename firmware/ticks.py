"""Millisecond ticks that wrap, as MicroPython's time.ticks_ms() does, and their arithmetic.

A node runs for years, and ticks_ms() wraps every 2**30 ms (12.4 days on the ESP32). Every
firmware module takes "now" as a ticks value and compares times only through diff(), so the
wrap is harmless and tests can start the clock just before it. Durations must stay below
2**29 ms (6.2 days); the longest one here is the 24 h self-test interval.

On CPython (unit tests) the same arithmetic is written out below; the emulated board installs
it as time.ticks_* too, so board.py runs unchanged there.
"""

try:
    from time import ticks_add, ticks_diff, ticks_ms, ticks_us  # type: ignore[attr-defined]
except ImportError:
    import time as _time

    PERIOD = 1 << 30  # time.ticks_ms() on a 32-bit port wraps here
    _HALF = 1 << 29

    def ticks_ms() -> int:
        return int(_time.monotonic() * 1000) & (PERIOD - 1)  # type: ignore[attr-defined]

    def ticks_us() -> int:
        return int(_time.monotonic() * 1_000_000) & (PERIOD - 1)  # type: ignore[attr-defined]

    def ticks_diff(a: int, b: int) -> int:
        return ((a - b + _HALF) & (PERIOD - 1)) - _HALF

    def ticks_add(a: int, delta: int) -> int:
        return (a + delta) & (PERIOD - 1)


# Plain ints for the rest of the firmware (the ESP32 stubs type ticks as their own class).
def now() -> int:
    return ticks_ms()  # type: ignore[return-value]


def now_us() -> int:
    """Microsecond ticks (same wrap; diff() works on them): for the link's t3.5 hold."""
    return ticks_us()  # type: ignore[return-value]


def diff(a: int, b: int) -> int:
    """a - b in ms, correct across the wrap while |a - b| < 2**29."""
    return ticks_diff(a, b)  # type: ignore[arg-type,type-var,return-value]


def add(a: int, delta: int) -> int:
    return ticks_add(a, delta)  # type: ignore[arg-type,type-var,return-value]
