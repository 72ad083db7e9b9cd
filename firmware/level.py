"""Alarm levels with confirmation delays and hysteresis, shared by the sensors.

A level is 0 (normal), 1 (pre-alarm) or 2 (alarm). A sensor says which level its reading asks
for (classify); Delayed raises the level only after the reading has asked for it without a
break for on_ms, and lowers it after the reading has asked for less for off_ms. Each level has
its own timers, so a reading that jumps straight to alarm alarms after on_ms, not after a
pre-alarm delay plus an alarm delay.
"""

from ticks import diff

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


NORMAL = const(0)
PRE_ALARM = const(1)
ALARM = const(2)


def classify(value: int, alarm: int, pre: int, held: int) -> int:
    """The level value asks for. A level already held needs 10 % less to stay (hysteresis),
    so a reading that wavers at a threshold does not raise and restore over and over."""
    if value * 10 >= alarm * (9 if held >= ALARM else 10):
        return ALARM
    if pre and value * 10 >= pre * (9 if held >= PRE_ALARM else 10):
        return PRE_ALARM
    return NORMAL


class Delayed:
    """The confirmed level of a reading, from update(now, wanted, on_ms, off_ms)."""

    def __init__(self) -> None:
        self.level = NORMAL
        # Index k: ticks since the reading has asked for >= k (_up) or < k (_down); -1 none.
        self._up = [-1, -1, -1]
        self._down = [-1, -1, -1]

    def update(self, now: int, want: int, on_ms: int, off_ms: int) -> bool:
        """Feed one reading's wanted level; True when the confirmed level changed."""
        up, down = self._up, self._down
        for k in (1, 2):
            if want >= k:
                down[k] = -1
                if up[k] < 0:
                    up[k] = now
            else:
                up[k] = -1
                if down[k] < 0:
                    down[k] = now
        old = new = self.level
        for k in (2, 1):
            if k > old and up[k] >= 0 and diff(now, up[k]) >= on_ms:
                new = k
                break
        if new == old:
            while new > 0 and down[new] >= 0 and diff(now, down[new]) >= off_ms:
                new -= 1
        self.level = new
        return new != old

    def clear(self) -> None:
        """Back to normal at once (a latched alarm reset, a faulted input)."""
        self.level = NORMAL
        for k in (1, 2):
            self._up[k] = self._down[k] = -1
