"""Measurement rules: the gateway's own look at a reading of a Sample (a second opinion on a
node's leakage current, a rate of rise of temperature), declared as [[rules.measure]].

A threshold with hysteresis, or a rate of rise, gives the raw condition; a DelayedOnOff of
for_s / off_s debounces it. Each node gets its own compiled Measure per rule.
"""

from __future__ import annotations

from operator import attrgetter

from ..model import Sample
from .debounce import DelayedOnOff, Hysteresis, RateOfRise
from .spec import READINGS, MeasureSpec


class Measure:
    """One measurement rule on one node. update() and poll() return +1 when the condition
    turned on, -1 when it turned off, 0 otherwise; `value` is the figure behind it, `pending`
    whether a for_s / off_s timer runs."""

    __slots__ = ("_delay", "_get", "pending", "source", "spec", "unit", "value")

    def __init__(self, spec: MeasureSpec) -> None:
        self.spec = spec
        self.source, self.unit = READINGS[spec.reading]
        self._get = attrgetter(spec.reading)
        self._delay = DelayedOnOff(spec.for_s, spec.off_s)
        self.value: float | None = None
        self.pending = False

    def condition(self, s: Sample) -> bool:
        """The raw condition on this sample (sets `value`)."""
        raise NotImplementedError

    def update(self, s: Sample) -> int:
        raw = self.condition(s)
        delay = self._delay
        was = delay.state
        if raw == was and raw == delay.last:  # steady: the common case, kept cheap
            return 0
        now = delay.update(raw, s.at)
        self.pending = delay.last != now
        return 0 if now == was else 1 if now else -1

    def poll(self, at: float) -> int:
        delay = self._delay
        was = delay.state
        now = delay.poll(at)
        self.pending = delay.last != now
        return 0 if now == was else 1 if now else -1


class LevelMeasure(Measure):
    """A reading above (or below) a level, with a release level."""

    __slots__ = ("_hyst",)

    def __init__(self, spec: MeasureSpec) -> None:
        super().__init__(spec)
        self._hyst = Hysteresis(spec.level, spec.release, rising=spec.mode == "above")

    def condition(self, s: Sample) -> bool:
        value = self._get(s)
        self.value = value
        return self._hyst.update(value)

    def update(self, s: Sample) -> int:  # the same as Measure.update, one call less
        value = self._get(s)
        self.value = value
        raw = self._hyst.update(value)
        delay = self._delay
        was = delay.state
        if raw == was and raw == delay.last:
            return 0
        now = delay.update(raw, s.at)
        self.pending = delay.last != now
        return 0 if now == was else 1 if now else -1


class RateMeasure(Measure):
    """A reading rising at rate_per_min or faster over window_s; `value` is the rate."""

    __slots__ = ("_level", "_rate")

    def __init__(self, spec: MeasureSpec) -> None:
        super().__init__(spec)
        self._rate = RateOfRise(spec.window_s)
        self._level = spec.level
        self.unit += "/min"

    def condition(self, s: Sample) -> bool:
        rate = self._rate.update(self._get(s), s.at)
        if rate is None:
            return False
        self.value = rate
        return rate >= self._level


def measure(spec: MeasureSpec) -> Measure:
    """The compiled rule for one node."""
    return RateMeasure(spec) if spec.mode == "rate" else LevelMeasure(spec)
