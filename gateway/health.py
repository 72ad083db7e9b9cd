"""Liveness of the gateway's loops: the systemd watchdog is pinged only while all are healthy.

Each long-running loop (a bus's poll cycle, the push receiver, the uplink, the rule ticker)
registers with a stall limit and calls beat() whenever it makes progress. healthy() is True
only while every registered loop beat within its limit, so a wedged poll loop (the complaint
"polling silently stops after an outage") stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Health:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._limit: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def register(self, name: str, stall_s: float) -> None:
        """A loop that must beat at least every stall_s seconds from now on."""
        if stall_s <= 0:
            raise ValueError(f"stall_s for {name!r} must be positive, got {stall_s}")
        self._limit[name] = stall_s
        self._last[name] = self._clock()

    def unregister(self, name: str) -> None:
        self._limit.pop(name, None)
        self._last.pop(name, None)

    def beat(self, name: str) -> None:
        if name in self._limit:
            self._last[name] = self._clock()

    def stalled(self) -> list[str]:
        """Names of the loops that missed their limit, sorted."""
        now = self._clock()
        return sorted(n for n, lim in self._limit.items() if now - self._last[n] > lim)

    def healthy(self) -> bool:
        return not self.stalled()
