"""Debounce primitives: small state machines over observations, with the time passed in.

Each takes the time of an observation (`at`, monotonic seconds) and never reads a clock, so a
test drives hours of simulated time in milliseconds. All keep O(1) state except RateOfRise,
which keeps at most a dozen points. Between observations a condition is taken to persist
(sample and hold): poll(at) lets time pass with the last observation held.
"""

from __future__ import annotations

from collections import deque


class DelayedOnOff:
    """A condition that must hold on_s to turn on, and be absent off_s to turn off."""

    __slots__ = ("_since", "last", "off_s", "on_s", "state")

    def __init__(self, on_s: float, off_s: float, state: bool = False) -> None:
        if not (on_s >= 0 and off_s >= 0):  # written so that NaN fails too
            raise ValueError(f"need on_s >= 0 and off_s >= 0, got {on_s} and {off_s}")
        self.on_s = on_s
        self.off_s = off_s
        self.state = state
        self.last = state  # the last observation
        self._since = 0.0  # when the observations last changed

    def update(self, raw: bool, at: float) -> bool:
        """Observe the condition at `at`; the debounced state."""
        if raw != self.last:
            self.last = raw
            self._since = at
        if raw != self.state and at - self._since >= (self.on_s if raw else self.off_s):
            self.state = raw
        return self.state

    def poll(self, at: float) -> bool:
        """Let time pass to `at` with the last observation held; the debounced state."""
        raw = self.last
        if raw != self.state and at - self._since >= (self.on_s if raw else self.off_s):
            self.state = raw
        return self.state

    @property
    def pending(self) -> bool:
        """A timer runs: the last observation differs from the state."""
        return self.last != self.state

    def force(self, state: bool) -> None:
        """Set the state (and take it as observed): an authoritative report said so."""
        self.state = self.last = state


class NOfM:
    """True while at least n of the last m observations were true (1 <= n <= m <= 64)."""

    __slots__ = ("_mask", "bits", "n")

    def __init__(self, n: int, m: int, fill: bool = False) -> None:
        if not 1 <= n <= m <= 64:
            raise ValueError(f"need 1 <= n <= m <= 64, got n={n}, m={m}")
        self.n = n
        self._mask = (1 << m) - 1
        self.bits = self._mask if fill else 0  # bit 0 is the newest observation

    def update(self, raw: bool) -> bool:
        bits = ((self.bits << 1) | raw) & self._mask
        self.bits = bits
        return bits.bit_count() >= self.n

    @property
    def value(self) -> bool:
        return self.bits.bit_count() >= self.n

    def fill(self, raw: bool) -> None:
        """Forget the history: the last m observations all read `raw`."""
        self.bits = self._mask if raw else 0


def threshold(value: float, level: float, rising: bool = True) -> bool:
    """A plain threshold: value at or above level (rising), or at or below it (falling)."""
    return value >= level if rising else value <= level


class Hysteresis:
    """A threshold with a release level, so a value hovering at the threshold does not flap.

    Rising: on at value >= on_at, off below off_at (off_at <= on_at). Falling, the mirror:
    on at value <= on_at, off above off_at (off_at >= on_at).
    """

    __slots__ = ("off_at", "on_at", "rising", "state")

    def __init__(self, on_at: float, off_at: float | None = None, rising: bool = True) -> None:
        off = on_at if off_at is None else off_at
        if not (off <= on_at if rising else off >= on_at):
            side = "at or below" if rising else "at or above"
            raise ValueError(f"the release level {off} must be {side} the threshold {on_at}")
        self.on_at = on_at
        self.off_at = off
        self.rising = rising
        self.state = False

    def update(self, value: float) -> bool:
        if self.rising:
            if self.state:
                if value < self.off_at:
                    self.state = False
            elif value >= self.on_at:
                self.state = True
        elif self.state:
            if value > self.off_at:
                self.state = False
        elif value <= self.on_at:
            self.state = True
        return self.state


class RateOfRise:
    """Change per minute over the last window_s, from timestamped samples.

    Samples go through a median of the last three first, so one wild reading (a bit error, an
    EMI spike) neither shows as a rate nor becomes the window's reference point (the price: one
    sample of lag). A point is kept every window_s / 10; the rate compares the newest median
    with the oldest point inside the window, and is None until min_span_s (default half the
    window) of history exists, as the node does for heat (docs/firmware.md: 30 s of a minute).
    """

    __slots__ = ("_a", "_b", "_count", "_points", "min_span_s", "rate", "step_s", "window_s")

    def __init__(self, window_s: float, min_span_s: float | None = None) -> None:
        span = window_s / 2 if min_span_s is None else min_span_s
        if not 0 < span <= window_s:
            raise ValueError(f"need 0 < min_span_s <= window_s, got {span} and {window_s}")
        self.window_s = window_s
        self.min_span_s = span
        self.step_s = window_s / 10
        self._points: deque[tuple[float, float]] = deque()
        self._a = self._b = 0.0  # the two samples before the newest
        self._count = 0
        self.rate: float | None = None  # the last result

    def update(self, value: float, at: float) -> float | None:
        """Add a sample; the rate in units per minute, or None without enough history."""
        a, b = self._a, self._b
        self._a, self._b = b, value
        if self._count < 2:
            self._count += 1
            return None
        if a > b:
            a, b = b, a
        med = a if value < a else b if value > b else value
        points = self._points
        while points and at - points[0][0] > self.window_s:
            points.popleft()
        if not points or at - points[-1][0] >= self.step_s:
            points.append((at, med))
        t0, v0 = points[0]
        span = at - t0
        self.rate = (med - v0) * 60.0 / span if span >= self.min_span_s else None
        return self.rate


class AlarmDebounce:
    """The gateway's debounce of a bit a node reports (an ALARM_SOURCES or FAULTS bit, the
    STATUS pre-alarm bit). Latency first, since the node has already confirmed it.

    On after on_s of the bit set (default 0: at the first sample that shows it; a late alarm is
    worse than a false one). Off once at least n of the last m samples show it clear (so one
    corrupted poll cannot restore an alarm) and that has held off_s.
    """

    __slots__ = ("_clear", "_delay")

    def __init__(self, on_s: float, off_s: float, n: int, m: int) -> None:
        self._delay = DelayedOnOff(on_s, off_s)
        self._clear = NOfM(n, m)

    @property
    def state(self) -> bool:
        return self._delay.state

    def update(self, raw: bool, at: float) -> bool:
        delay = self._delay
        if delay.state:
            return delay.update(not self._clear.update(not raw), at)
        if delay.update(raw, at):
            self._clear.fill(False)  # a fresh alarm: no clear samples seen yet
            return True
        return False

    def poll(self, at: float) -> bool:
        delay = self._delay
        if delay.state:
            return delay.poll(at)
        if delay.poll(at):
            self._clear.fill(False)
            return True
        return False

    @property
    def settled(self) -> bool:
        """No timer runs and no clear sample is remembered: another sample like the last
        changes nothing, so it may be skipped."""
        delay = self._delay
        return not delay.pending and not (delay.state and self._clear.bits)

    def force(self, state: bool) -> None:
        """An authoritative report (a pushed event) set the state."""
        self._delay.force(state)
        self._clear.fill(False)
