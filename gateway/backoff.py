"""Reconnection delays: capped exponential back-off with full jitter, written once.

Every reconnecting loop in the gateway (serial ports, the MQTT broker, offline nodes) uses it,
so a power cut that drops everything at once does not bring everything back in lock-step
(a reconnect storm). Full jitter: the delay is uniform in [0, min(cap, base * 2**attempt)].
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """next() gives the delay before the next attempt; reset() after a success."""

    def __init__(
        self,
        base_s: float = 0.5,
        cap_s: float = 60.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError(f"need 0 < base_s <= cap_s, got {base_s} and {cap_s}")
        self.base_s = base_s
        self.cap_s = cap_s
        self._rand = rand
        self.attempt = 0

    def ceiling(self) -> float:
        """The largest delay the next call can return."""
        growth: float = 2.0 ** min(self.attempt, 62)
        return min(self.cap_s, self.base_s * growth)

    def next(self) -> float:
        delay = self.ceiling() * self._rand()
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
