"""Heat: the fixed 57 degC threshold, the 9 degC/min rate of rise, the sensor fault.

Default calibration: 500 mV at 0 degC and 10 mV per degC, so 1 mV is 0.1 degC (the
TEMPERATURE register's unit). Readings come once a second.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import config
from level import ALARM, NORMAL
from protocol import registers as r
from protocol.codes import FAULT_TEMP_SENSOR
from temperature import Temperature
from tests.firmware.clock import MINUTE, SECOND, START_IDS, STARTS, Clock

CAL = config.Config().cal
FIXED = r.default(r.TEMP_FIXED)  # 570: 57.0 degC
RATE = r.default(r.TEMP_RATE)  # 90: 9.0 degC/min
SENSOR = 1 << FAULT_TEMP_SENSOR

starts = pytest.mark.parametrize("start", STARTS, ids=START_IDS)


def mv(deci_c: float) -> int:
    """The sensor output for a temperature in 0.1 degC."""
    return round(CAL["temp_offset_mv"] + deci_c * CAL["temp_mv_per_c"] / 10)


class Run:
    def __init__(self, start: int = 0, fixed: int = FIXED, rate: int = RATE) -> None:
        self.clock = Clock(start)
        self.t = Temperature(CAL)
        self.fixed, self.rate = fixed, rate
        self.changes: list[tuple[int, int]] = []  # (elapsed ms, level)
        self.max_rate = 0

    def run(self, duration_ms: int, deci_c: Callable[[int], float]) -> None:
        for _ in range(duration_ms // SECOND):
            self.clock.advance(SECOND)
            before = self.t.state.level
            self.t.update(self.clock.now, mv(deci_c(self.clock.elapsed)), self.fixed, self.rate)
            self.max_rate = max(self.max_rate, self.t.rate)
            if self.t.state.level != before:
                self.changes.append((self.clock.elapsed, self.t.state.level))


@starts
def test_fixed_threshold_with_hysteresis(start: int) -> None:
    run = Run(start)
    run.run(10 * MINUTE, lambda t: 569)  # 56.9 degC for ten minutes: below the threshold
    assert run.changes == []
    run.run(10 * SECOND, lambda t: 570)
    assert run.changes == [(10 * MINUTE + 3 * SECOND, ALARM)]  # three readings: 2 s confirm
    run.run(5 * MINUTE, lambda t: 550)  # 55.0: within the 2 degC hysteresis, the alarm holds
    run.run(40 * SECOND, lambda t: 549)  # 54.9: restores after 30 s
    restored = 10 * MINUTE + 10 * SECOND + 5 * MINUTE + 31 * SECOND
    assert run.changes[1:] == [(restored, NORMAL)]
    assert run.t.value == 549


def test_the_fixed_threshold_word_is_signed() -> None:
    minus_ten = -100 & 0xFFFF  # -10.0 degC as its register word
    run = Run(fixed=minus_ten)
    run.run(MINUTE, lambda t: -200)
    assert run.changes == []
    run.run(MINUTE, lambda t: 0)
    assert [level for _, level in run.changes] == [ALARM]


@starts
@pytest.mark.parametrize("rise", [91, 100, 120, 200, 300])  # 0.1 degC/min
def test_a_fast_rise_alarms_on_the_rate_before_the_fixed_threshold(start: int, rise: int) -> None:
    # From just above the 9 degC/min threshold: exactly at it, the reading's 0.1 degC
    # resolution decides, and the fixed threshold is what catches a rise there.
    run = Run(start)
    run.run(5 * MINUTE, lambda t: 200)  # 20 degC, steady
    rise_from = 5 * MINUTE
    run.run(3 * MINUTE, lambda t: 200 + rise * (t - rise_from) / MINUTE)
    assert run.changes, "no alarm"
    alarm_at, level = run.changes[0]
    assert level == ALARM
    # A minute of history, then the 2 s confirmation; well before 57 degC, which a 9 degC/min
    # rise from 20 degC reaches after 4 minutes.
    assert alarm_at - rise_from <= 65 * SECOND
    reached = 200 + rise * (alarm_at - rise_from) / MINUTE
    assert reached < FIXED


@starts
@pytest.mark.parametrize("deg_per_min", [1, 3, 6, 8])
def test_a_slow_rise_does_not_alarm_until_the_fixed_threshold(start: int, deg_per_min: int) -> None:
    run = Run(start)
    run.run(2 * MINUTE, lambda t: 200)
    rise_from = 2 * MINUTE
    minutes = (FIXED - 10 - 200) // (deg_per_min * 10)  # up to 56 degC
    run.run(minutes * MINUTE, lambda t: 200 + deg_per_min * 10 * (t - rise_from) / MINUTE)
    assert run.changes == []
    assert deg_per_min * 10 - 3 <= run.max_rate <= deg_per_min * 10 + 3


def test_a_single_hot_reading_does_not_fake_a_rise() -> None:
    # A glitch of +25 degC for one reading, every 37 s, for half an hour: each asks for an
    # alarm on the rate for one reading only, which the 2 s confirmation does not take.
    run = Run()
    run.run(30 * MINUTE, lambda t: 450 if t % (37 * SECOND) == 0 else 200)
    assert run.changes == []


def test_the_rate_needs_thirty_seconds_of_history() -> None:
    # Powered up in a room warming fast: the first half minute gives no rate at all.
    run = Run()
    run.run(29 * SECOND, lambda t: 200 + 30 * t / MINUTE)
    assert run.max_rate == 0
    run.run(10 * SECOND, lambda t: 200 + 30 * t / MINUTE)
    assert run.t.rate == pytest.approx(30, abs=2)


@pytest.mark.parametrize(
    ("reading_mv", "fault"),
    [
        (0, True),  # open: below -40 degC
        (99, True),
        (100, False),  # -40.0 degC
        (2000, False),  # 150.0 degC: hot, but a physical reading
        (2001, True),
        (3300, True),  # shorted to the rail: would read 280 degC
    ],
)
def test_open_or_shorted_sensor_is_a_fault_and_never_an_alarm(reading_mv: int, fault: bool) -> None:
    t = Temperature(CAL)
    for i in range(120):
        t.update(i * SECOND, reading_mv, FIXED, RATE)
        if fault:
            assert (t.faults, t.state.level, t.value, t.rate) == (SENSOR, NORMAL, 0, 0)
    assert t.faults == (SENSOR if fault else 0)


def test_a_sensor_fault_clears_an_alarm_and_restarts_the_rate_history() -> None:
    run = Run()
    run.run(2 * MINUTE, lambda t: 600)  # 60 degC: alarm
    assert run.t.state.level == ALARM
    t = run.t
    now = run.clock.advance(SECOND)
    assert t.update(now, 0, FIXED, RATE)  # the sensor comes off: fault, and no alarm
    assert (t.faults, t.state.level) == (SENSOR, NORMAL)
    for _ in range(59):
        t.update(run.clock.advance(SECOND), 0, FIXED, RATE)
    # Back at 40 degC: no rate is computed against readings from before the fault.
    run.changes.clear()
    run.run(2 * MINUTE, lambda t: 400)
    assert run.t.faults == 0
    assert run.max_rate == 0
    assert run.changes == []
