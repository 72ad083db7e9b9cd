"""A simulated clock for the firmware's injected `now`: millisecond ticks that wrap at 2**30.

Scenario tests step it through hours or days of simulated time in a plain loop, with no real
sleeps. STARTS holds the two clocks every scenario runs on: one from zero, and one a few
seconds before the wrap, so the first minute of the scenario crosses it (ticks.py promises
that only diff() ever compares times, which makes the wrap harmless).
"""

from __future__ import annotations

import ticks

PERIOD = 1 << 30  # time.ticks_ms() wraps here
STARTS = (0, PERIOD - 7_000)
START_IDS = ("from-zero", "across-wrap")

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


class Clock:
    """now: the ticks value the firmware sees; elapsed: ms since the start, never wrapping."""

    def __init__(self, start: int = 0) -> None:
        self.now = start
        self.elapsed = 0

    def advance(self, ms: int) -> int:
        self.now = ticks.add(self.now, ms)
        self.elapsed += ms
        return self.now
