"""The node's state machine: what the house hears and sees, and what the gateway is told.

States, by priority: alarm, silenced (an alarm hushed), test (self-test running), pre-alarm,
fault, normal. The buzzer and LED follow the state (indicator.py) with or without a gateway.

- Sources (codes.SRC_*) report their confirmed level (0, 1 pre-alarm, 2 alarm); each change
  raises an event: EV_ALARM or EV_PRE_ALARM on the way up, EV_RESTORE on the way down (detail
  = the level it fell to).
- Fault bits (codes.FAULT_*) raise EV_FAULT when they appear (detail = bit) and EV_RESTORE
  with source SRC_NODE and detail 0x80 | bit when they clear.
- Hush (silence command or hush button) quiets the buzzer for at most HUSH_MS (10 min; DOMAIN.md)
  and only while something sounds. A fresh, worse condition sounds again at once: an alarm
  from a source that was not in alarm when hushed, or an alarm where only a pre-alarm was
  hushed. With only faults present, hush quiets the fault chirp for FAULT_HUSH_MS (8 h; GB
  20517 gives 7 +/- 1 h for a battery fault).
- Self-test at power-up and every SELF_TEST_MS (24 h), and on command: the test state lasts
  TEST_MS; the caller then reports the result (end_test), raising EV_TEST and setting or
  clearing FAULT_SELF_TEST. An alarm during a self-test is a real alarm.

emit(code, source, detail, value) is called for every event, in order.
"""

from protocol import registers as r
from protocol.codes import (
    EV_ALARM,
    EV_FAULT,
    EV_PRE_ALARM,
    EV_RESTORE,
    EV_SILENCED,
    EV_TEST,
    FAULT_LOW_SUPPLY,
    FAULT_SAFE_MODE,
    FAULT_SELF_TEST,
    SRC_NODE,
)
from ticks import add, diff

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


_TYPING = const(0)  # mypy takes it as true (always_true); the compiler drops the block
if _TYPING:
    from typing import Callable


HUSH_MS = const(600_000)
FAULT_HUSH_MS = const(8 * 3_600_000)
SELF_TEST_MS = const(24 * 3_600_000)
TEST_MS = const(3000)
IDENTIFY_MS = const(60_000)

# State names for the indicator and for tests (not on the wire; STATUS bits are).
NORMAL = const(0)
FAULT = const(1)
PRE_ALARM = const(2)
SILENCED = const(3)
ALARM = const(4)
TEST = const(5)


class Node:
    """Tracks levels, faults, hush, self-test and identify; emits events on every change."""

    def __init__(
        self, now: int, emit: "Callable[[int, int, int, int], None]", safe_mode: bool = False
    ):
        self.emit = emit
        self.alarms = 0  # bit per source in alarm (ALARM_SOURCES register)
        self.pre = 0  # bit per source in pre-alarm
        self.faults = 1 << FAULT_SAFE_MODE if safe_mode else 0
        self.safe_mode = safe_mode
        self._hush_until = -1  # ticks, -1 when not hushed
        self._hushed = 0  # alarms | pre << 8 when hushed
        self._test_until = -1
        self._next_test = now  # self-test at power-up
        self._identify_until = -1
        self.audible = True
        if self.faults:
            emit(EV_FAULT, SRC_NODE, FAULT_SAFE_MODE, 0)

    def level(self, now: int, source: int, level: int, value: int) -> None:
        """A source's confirmed level changed (or may have): raise the events it implies."""
        bit = 1 << source
        was = 2 if self.alarms & bit else 1 if self.pre & bit else 0
        if level == was:
            return
        self.alarms = self.alarms | bit if level == 2 else self.alarms & ~bit
        self.pre = self.pre | bit if level == 1 else self.pre & ~bit
        if level > was:
            self.emit(EV_ALARM if level == 2 else EV_PRE_ALARM, source, 0, value)
        else:
            self.emit(EV_RESTORE, source, level, value)
        self._check_hush(now)

    def set_faults(self, now: int, faults: int, source: int, mask: int, value: int) -> None:
        """The fault bits in mask are now those in faults (from one source)."""
        new = (self.faults & ~mask) | (faults & mask)
        changed = new ^ self.faults
        self.faults = new
        for b in range(8):
            if changed & (1 << b):
                if new & (1 << b):
                    self.emit(EV_FAULT, source, b, value)
                else:
                    self.emit(EV_RESTORE, SRC_NODE, 0x80 | b, value)
        if changed & new:
            self._check_hush(now)

    # Hush.
    def silence(self, now: int) -> bool:
        """Hush the buzzer. False when nothing sounds (nothing to hush)."""
        if not (self.alarms or self.pre or self.faults):
            return False
        self._hushed = self.alarms | self.pre << 8
        self._hush_until = add(now, HUSH_MS if self._hushed else FAULT_HUSH_MS)
        self.emit(EV_SILENCED, SRC_NODE, 0, 0)
        return True

    def hushed(self, now: int) -> bool:
        self._check_hush(now)
        return self._hush_until >= 0

    def _check_hush(self, now: int) -> None:
        if self._hush_until < 0:
            return
        hushed_alarms, hushed_pre = self._hushed & 0xFF, self._hushed >> 8
        worse = self.alarms & ~hushed_alarms or (not hushed_alarms and self.pre & ~hushed_pre)
        # Nothing left of what was hushed: an alarm or pre-alarm restored, or (a fault hush)
        # every fault cleared.
        gone = not (self.alarms or self.pre) if self._hushed else not self.faults
        if worse or gone or diff(now, self._hush_until) >= 0:
            self._hush_until = -1
            self._hushed = 0

    # Self-test and identify.
    def test_due(self, now: int) -> bool:
        """Whether the scheduled self-test should start. It waits while an alarm is on."""
        return self._test_until < 0 and not self.alarms and diff(now, self._next_test) >= 0

    def start_test(self, now: int, audible: bool) -> None:
        """Enter the test state. The daily test is silent (it may run at night); the power-up
        test and a commanded one beep, so a person can hear the buzzer works."""
        self._test_until = add(now, TEST_MS)
        self.audible = audible

    def test_over(self, now: int) -> bool:
        return self._test_until >= 0 and diff(now, self._test_until) >= 0

    def end_test(self, now: int, failed: int) -> None:
        """failed: 0 when the node passed, else the fault bits that failed it."""
        self._test_until = -1
        self._next_test = add(now, SELF_TEST_MS)
        self.emit(EV_TEST, SRC_NODE, failed & 0xFF, 0)
        self.set_faults(
            now, 1 << FAULT_SELF_TEST if failed else 0, SRC_NODE, 1 << FAULT_SELF_TEST, 0
        )

    def identify(self, now: int) -> None:
        self._identify_until = add(now, IDENTIFY_MS)

    def identifying(self, now: int) -> bool:
        if self._identify_until >= 0 and diff(now, self._identify_until) >= 0:
            self._identify_until = -1
        return self._identify_until >= 0

    # What it all adds up to.
    def state(self, now: int) -> int:
        """What the LED and buzzer show. An alarm outranks a running self-test: the house
        must hear the alarm tone, not test beeps."""
        if self.alarms:
            return SILENCED if self.hushed(now) else ALARM
        if self._test_until >= 0:
            return TEST
        if self.pre:
            return PRE_ALARM
        if self.faults:
            return FAULT
        return NORMAL

    def sounding(self, now: int) -> bool:
        """Whether the buzzer sounds the alarm (STATUS sounding)."""
        return self.alarms != 0 and not self.hushed(now)

    def status(self, now: int) -> int:
        """The STATUS register word."""
        s = 0
        if self.alarms:
            s |= r.ST_ALARM
        if self.pre:
            s |= r.ST_PRE_ALARM
        if self.faults:
            s |= r.ST_FAULT
        if self._test_until >= 0:
            s |= r.ST_TEST
        if self.hushed(now):
            s |= r.ST_SILENCED
        if self.sounding(now):
            s |= r.ST_SOUNDING
        if self.faults & (1 << FAULT_LOW_SUPPLY):
            s |= r.ST_LOW_SUPPLY
        if self.safe_mode:
            s |= r.ST_SAFE_MODE
        return s
