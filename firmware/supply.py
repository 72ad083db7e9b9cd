"""Supply voltage: the low-supply warning (FAULT_LOW_SUPPLY, STATUS low_supply).

The supply reaches the ADC through a divider (calibration supply_divider). Low means below
SUPPLY_LOW for 10 s; it clears 0.3 V above the threshold after 10 s, so a supply sagging
under a buzzer's load does not flap the warning.
"""

from level import ALARM, NORMAL, Delayed
from protocol.codes import FAULT_LOW_SUPPLY

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


_DELAY_MS = const(10_000)
_HYSTERESIS_MV = const(300)


class Supply:
    """update(now, mv_at_adc, low) once a second; then value (mV) and faults hold the result."""

    def __init__(self, cal: "dict[str, int | float]"):
        self.divider = cal["supply_divider"]
        self.value = 0
        self.faults = 0
        self.state = Delayed()

    def update(self, now: int, mv: int, low: int) -> bool:
        """low is the SUPPLY_LOW register word (mV). True when the warning changed."""
        self.value = value = int(mv * self.divider)
        held = self.state.level
        want = ALARM if value < low + (_HYSTERESIS_MV if held else 0) else NORMAL
        changed = self.state.update(now, want, _DELAY_MS, _DELAY_MS)
        self.faults = 1 << FAULT_LOW_SUPPLY if self.state.level else 0
        return changed
