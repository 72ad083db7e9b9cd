"""Residual (leakage) current from a current transformer: AC RMS over a 200 ms window.

board.py fills a window of CT_SAMPLES millivolt readings at 1 kHz (ten 50 Hz cycles). The RMS
removes the DC bias the way DOMAIN.md gives it, rms = sqrt(mean(x^2) - mean(x)^2), with x
taken relative to the nominal bias so that the sums stay small integers (no heap on
MicroPython). Calibration: ct_uv_per_ma, microvolts RMS per mA. A CT that is unplugged lets
the input float away from its bias (the front end's pull-up): FAULT_CT_OPEN, never an alarm.

The alarm waits LEAKAGE_ALARM_DELAY with the current above the threshold and restores after
LEAKAGE_RELEASE_DELAY below it, both register words in 0.1 s (GB 14287.2: response <= 30 s).
"""

from array import array
from math import sqrt

from level import Delayed, classify
from protocol.codes import FAULT_CT_OPEN

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


_OPEN_MV = const(300)  # mean this far from the bias: the CT is not loading the input
_OPEN_WINDOWS = const(4)  # consecutive windows (1 s) before an open CT is a fault


class Leakage:
    """window(now, samples, alarm, pre, alarm_delay, release_delay) per window; then value
    (mA), state.level and faults hold the result."""

    def __init__(self, cal: "dict[str, int | float]"):
        self.bias = int(cal["ct_bias_mv"])
        self.uv_per_ma = cal["ct_uv_per_ma"]
        self.value = 0
        self.faults = 0
        self.state = Delayed()
        self._open = 0  # consecutive windows whose DC level says the CT is open

    def rms_ma(self, samples: "list[int] | array[int]") -> int:
        """The AC RMS current of one window, in mA. Sets FAULT_CT_OPEN once _OPEN_WINDOWS
        windows in a row sat away from the bias (a switching transient is not a fault)."""
        bias = self.bias
        s = s2 = 0
        for x in samples:
            d = x - bias
            s += d
            s2 += d * d
        n = len(samples)
        mean = s / n
        self._open = min(self._open + 1, _OPEN_WINDOWS) if abs(mean) > _OPEN_MV else 0
        self.faults = 1 << FAULT_CT_OPEN if self._open >= _OPEN_WINDOWS else 0
        var = s2 / n - mean * mean
        return int(sqrt(var) * 1000 / self.uv_per_ma + 0.5) if var > 0 else 0

    def window(
        self, now: int, samples: "list[int] | array[int]", alarm: int, pre: int, on: int, off: int
    ) -> bool:
        """One window; thresholds in mA and delays in 0.1 s, as their register words. True when
        the level or the faults changed."""
        old = self.faults
        ma = self.rms_ma(samples)
        if self.faults:  # the CT is open: no reading, so no alarm either way
            self.value = 0
            changed = self.state.level != 0
            self.state.clear()
            return changed or old != self.faults
        if self._open:  # one odd window (a switching transient): hold the level as it is
            return False
        self.value = ma
        want = classify(ma, alarm, pre, self.state.level)
        return self.state.update(now, want, on * 100, off * 100) or old != self.faults
