"""Photoelectric smoke chamber: obscuration in %/m with drift compensation.

The chamber output rises with the light scattered by smoke: calibration gives its clean-air
output (smoke_clean_mv) and its gain (smoke_mv_per_pct). Dust slowly raises the clean-air
reading over months, so the baseline follows the reading at most 1 mV per 10 minutes and only
while the air is clean (below half the pre-alarm threshold): a fire, which rises in minutes,
is never compensated away. When the baseline has moved more than _COMP_LIMIT_PCT worth from the
factory value the chamber is dirty (FAULT_SMOKE_DIRTY: clean or replace it). A reading near
0 V (open) or near the rail (short) is FAULT_SMOKE_INPUT and never an alarm.
"""

from level import Delayed, classify
from protocol.codes import FAULT_SMOKE_DIRTY, FAULT_SMOKE_INPUT
from ticks import diff

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


_OPEN_MV = const(50)
_SHORT_MV = const(2400)
_ON_MS = const(2000)  # three 1 Hz samples above a threshold (spikes from insects, EMI)
_OFF_MS = const(5000)
_DRIFT_PERIOD_MS = const(600_000)
_COMP_LIMIT_PCT = const(4)  # compensation range, %/m of chamber gain


class Smoke:
    """update(now, mv, alarm, pre) once a second; then value (%/m x 100), state.level and
    faults (bits of FAULT_*) hold the result."""

    def __init__(self, cal: "dict[str, int | float]", now: int):
        self.clean = int(cal["smoke_clean_mv"])
        self.gain = cal["smoke_mv_per_pct"]  # mV per %/m
        self.baseline = self.clean  # mV, moved by drift compensation
        self.value = 0
        self.faults = 0
        self.state = Delayed()
        self._sum = self._n = 0  # readings in the current drift period, mV above baseline
        self._period = now

    def update(self, now: int, mv: int, alarm: int, pre: int) -> bool:
        """One chamber reading; alarm and pre are the thresholds' register words (%/m x 100).
        True when level or faults changed."""
        if mv < _OPEN_MV or mv > _SHORT_MV:
            old = self.faults
            self.faults = self.faults & (1 << FAULT_SMOKE_DIRTY) | 1 << FAULT_SMOKE_INPUT
            self.value = 0
            if diff(now, self._period) >= _DRIFT_PERIOD_MS:
                self._period = now  # keep it recent: ticks compare only within 6.2 days
            changed = self.state.level != 0
            self.state.clear()
            return changed or old != self.faults
        value = int((mv - self.baseline) * 100 / self.gain)
        self.value = value if value > 0 else 0
        if value * 2 < pre:  # clean air: learn the drift
            self._sum += mv - self.baseline
            self._n += 1
        if diff(now, self._period) >= _DRIFT_PERIOD_MS:
            self._period = now
            half = self._n // 2  # move when the period's mean is more than 0.5 mV off
            if self._n and self._sum > half:
                self.baseline += 1
            elif self._n and self._sum < -half:
                self.baseline -= 1
            self._sum = self._n = 0
        faults = 0
        if abs(self.baseline - self.clean) > _COMP_LIMIT_PCT * self.gain:
            faults |= 1 << FAULT_SMOKE_DIRTY
        changed = faults != self.faults
        self.faults = faults
        want = classify(self.value, alarm, pre, self.state.level)
        return self.state.update(now, want, _ON_MS, _OFF_MS) or changed
