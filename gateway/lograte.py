"""Rate limits for log lines that a bad line can repeat every second.

A gateway runs for years on a card that nobody empties: on a noisy RS-485 line, a node lost to
two garbled reads and heard again a second later would log two lines a second for as long as
the noise lasts. A LogRate lets the first line of a kind through, then at most one per
`every_s` per key, and says how many it held back, so the journal shows that something is
flapping and how much, without filling the disk. Counts per node stay in DeviceStats
(`firelane status`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable


class LogRate:
    def __init__(self, every_s: float, clock: Callable[[], float]) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def allow(self, key: Hashable) -> int | None:
        """None to drop this line; else how many lines of this key were held back since the
        last one let through (0 the first time)."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)
