"""Heat detection: a fixed threshold (57 degC class) and a rate of rise (9 degC/min).

An analog sensor gives temp_offset_mv at 0 degC and temp_mv_per_c per degree. The rate of
rise is measured over the last minute from one reading kept every 10 s, and needs at least
30 s of history, so a single noisy reading cannot fake a rise. Outside -40..150 degC the
sensor is open or shorted: FAULT_TEMP_SENSOR, never an alarm. Values are in 0.1 degC, as the
TEMPERATURE register.
"""

from array import array

from level import ALARM, NORMAL, Delayed
from protocol.codes import FAULT_TEMP_SENSOR
from ticks import diff

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


_MIN = const(-400)
_MAX = const(1500)
_SLOTS = const(7)  # readings 10 s apart: one minute of history
_SLOT_MS = const(10_000)
_MIN_SPAN_MS = const(30_000)
_ON_MS = const(2000)
_OFF_MS = const(30_000)
_HYSTERESIS = const(20)  # 2 degC below the fixed threshold to restore


class Temperature:
    """update(now, mv, fixed, rate) once a second; then value (0.1 degC), rate (0.1 degC/min),
    state.level and faults hold the result."""

    def __init__(self, cal: "dict[str, int | float]"):
        self.offset = cal["temp_offset_mv"]
        self.per_c = cal["temp_mv_per_c"]
        self.value = 0
        self.rate = 0
        self.faults = 0
        self.state = Delayed()
        self._t = array("i", [0] * _SLOTS)  # ticks of each kept reading
        self._v = array("i", [0] * _SLOTS)
        self._n = 0  # readings kept so far (up to _SLOTS)
        self._i = 0  # next slot

    def update(self, now: int, mv: int, fixed: int, rate: int) -> bool:
        """One reading; fixed (0.1 degC, signed) and rate (0.1 degC/min) are register words.
        True when level or faults changed."""
        old = self.faults
        value = int((mv - self.offset) * 10 / self.per_c)
        if not _MIN <= value <= _MAX:
            self.faults = 1 << FAULT_TEMP_SENSOR
            self.value = self.rate = self._n = 0
            changed = self.state.level != 0
            self.state.clear()
            return changed or old != self.faults
        self.faults = 0
        self.value = value
        last = (self._i - 1) % _SLOTS
        if self._n == 0 or diff(now, self._t[last]) >= _SLOT_MS:
            self._t[self._i], self._v[self._i] = now, value
            self._i = (self._i + 1) % _SLOTS
            self._n = min(self._n + 1, _SLOTS)
        oldest = (self._i - self._n) % _SLOTS
        span = diff(now, self._t[oldest])
        self.rate = (value - self._v[oldest]) * 60_000 // span if span >= _MIN_SPAN_MS else 0
        if fixed >= 0x8000:
            fixed -= 0x10000
        held = self.state.level
        want = NORMAL
        if value >= fixed - (_HYSTERESIS if held else 0) or self.rate >= rate:
            want = ALARM
        return self.state.update(now, want, _ON_MS, _OFF_MS) or old != self.faults
