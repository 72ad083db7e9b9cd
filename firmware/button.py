"""The manual call point and the hush button: debounced contacts.

Manual alarm: a deliberate press is one held for HOLD_MS without a break (a brush against the
button is not an alarm). It latches, as a manual call point does (EN 54-11), until a reset
command. A shorter press is reported as a press, not an alarm, so a walk test can see the
button works. The hush button acts on a clean press of DEBOUNCE_MS.
"""

from ticks import diff

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


DEBOUNCE_MS = const(50)
HOLD_MS = const(500)
NONE = const(0)
SHORT = const(1)  # released before HOLD_MS
ALARM = const(2)  # held HOLD_MS: latched


class Button:
    """update(now, pressed) every ~25 ms returns NONE, SHORT (on release) or ALARM (once)."""

    def __init__(self) -> None:
        self.latched = False
        self._raw = False
        self._since = 0  # ticks of the last raw change
        self._down = -1  # ticks the debounced press began; -1 released
        self._fired = False

    def update(self, now: int, pressed: bool) -> int:
        if pressed != self._raw:
            self._raw = pressed
            self._since = now
            return NONE
        if diff(now, self._since) < DEBOUNCE_MS:
            return NONE
        if pressed:
            if self._down < 0:
                self._down = self._since
                self._fired = False
            if not self._fired and diff(now, self._down) >= HOLD_MS:
                self._fired = True
                self.latched = True
                return ALARM
            return NONE
        if self._down >= 0:
            short = not self._fired
            self._down = -1
            return SHORT if short else NONE
        return NONE

    def reset(self, now: int) -> None:
        """Clear the latch (the reset command). A call point still held latches again after
        HOLD_MS: a remote reset must not leave an activated call point without its alarm."""
        self.latched = False
        self._fired = False
        if self._down >= 0:
            self._down = now

    def held_ms(self, now: int) -> int:
        return diff(now, self._down) if self._down >= 0 else 0
