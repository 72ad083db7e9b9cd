"""Supervision: a node not heard for its timeout is offline, reported once; the first word
from it afterwards brings it back.

A fault must show within 100 s (EN 54-2; GB/T 45839-2025 5.5.1, ../shared/DOMAIN.md), so a
timeout is below that (spec.py checks it) and the caller checks often (every tick). A poll
that timed out (Silent) is not hearing from the node. Timers start at the first time the
caller passes in, since a freshly started gateway has heard nobody yet.
"""

from __future__ import annotations

from collections.abc import Sequence


class Supervisor:
    """Per-node last-heard times and offline flags; nodes are indices fixed at compile time."""

    __slots__ = ("_last", "offline", "started", "timeout_s")

    def __init__(self, timeouts_s: Sequence[float]) -> None:
        for t in timeouts_s:
            if not t > 0:
                raise ValueError(f"need timeouts > 0, got {t}")
        self.timeout_s = tuple(timeouts_s)
        self._last = [0.0] * len(timeouts_s)
        self.offline = [False] * len(timeouts_s)
        self.started = False

    def start(self, at: float) -> None:
        """Start every node's timer at the first time seen (later calls do nothing)."""
        if not self.started:
            self.started = True
            self._last = [at] * len(self._last)

    def heard(self, node: int, at: float) -> bool:
        """Node heard at `at`. True when it was offline: it is back."""
        last = self._last
        if at > last[node]:
            last[node] = at
        if self.offline[node]:
            self.offline[node] = False
            return True
        return False

    def check(self, node: int, at: float) -> bool:
        """True once, when node has not been heard for its timeout at `at`."""
        if not self.offline[node] and at - self._last[node] >= self.timeout_s[node]:
            self.offline[node] = True
            return True
        return False
