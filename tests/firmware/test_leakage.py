"""Residual current: AC RMS of a CT window, calibration, delays in 0.1 s, the CT-open fault.

A window is what board.py fills: 200 millivolt samples at 1 kHz (ten 50 Hz cycles) around the
CT input's DC bias, one window per 250 ms sense round (app.py). Thresholds and delays are the
register words the app passes: mA, and 0.1 s.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import config
from leakage import Leakage
from level import ALARM, NORMAL, PRE_ALARM
from protocol import registers as r
from protocol.codes import FAULT_CT_OPEN
from tests.firmware.clock import PERIOD, START_IDS, STARTS, Clock

CAL = config.Config().cal
BIAS_MV = int(CAL["ct_bias_mv"])  # 1250
UV_PER_MA = CAL["ct_uv_per_ma"]  # 800 uV RMS per mA
ALARM_MA = r.default(r.LEAKAGE_ALARM)  # 300
PRE_MA = r.default(r.LEAKAGE_PRE_ALARM)  # 240
ALARM_DELAY = r.default(r.LEAKAGE_ALARM_DELAY)  # 20: 2 s
RELEASE_DELAY = r.default(r.LEAKAGE_RELEASE_DELAY)  # 50: 5 s
WINDOW_MS = 250  # one window per sense round
SAMPLES = 200
RATE_HZ = 1000
CT_OPEN = 1 << FAULT_CT_OPEN


def window(ma: float, phase: float = 0.0, bias_mv: float = BIAS_MV, hz: float = 50) -> list[int]:
    """The ADC samples (mV, whole) of a sine of ma mA RMS through the CT."""
    peak_mv = ma * UV_PER_MA / 1000 * math.sqrt(2)
    return [
        round(bias_mv + peak_mv * math.sin(2 * math.pi * hz * k / RATE_HZ + phase))
        for k in range(SAMPLES)
    ]


QUIET = window(0)
OPEN = [3300] * SAMPLES  # an unplugged CT: the front end's pull-up takes the input to the rail


@pytest.mark.parametrize("ma", [20, 50, 100, 240, 300, 500, 1000])
@pytest.mark.parametrize("phase", [0.0, 0.4, math.pi / 2, 2.5])
def test_rms_of_a_50_hz_sine_is_the_injected_current(ma: int, phase: float) -> None:
    measured = Leakage(CAL).rms_ma(window(ma, phase))
    assert measured == pytest.approx(ma, rel=0.02)


@pytest.mark.parametrize("offset_mv", [-290, -150, -40, 0, 60, 200, 290])
@pytest.mark.parametrize("ma", [30, 300, 800])
def test_rms_is_independent_of_the_dc_bias_within_the_open_margin(offset_mv: int, ma: int) -> None:
    # A bias 290 mV off its nominal value (resistor tolerance, temperature) is still a CT: the
    # mean is removed, so the current reads the same and no fault is raised.
    lk = Leakage(CAL)
    for _ in range(5):
        measured = lk.rms_ma(window(ma, 0.7, BIAS_MV + offset_mv))
    assert measured == pytest.approx(ma, rel=0.02)
    assert lk.faults == 0


def test_a_quiet_line_reads_zero() -> None:
    assert Leakage(CAL).rms_ma(QUIET) == 0
    assert Leakage(CAL).rms_ma([BIAS_MV + 100] * SAMPLES) == 0  # DC alone is no current


def test_calibration_scales_the_reading() -> None:
    cal = dict(CAL, ct_uv_per_ma=400)  # a CT half as sensitive: the same mV is twice the mA
    assert Leakage(cal).rms_ma(window(150)) == pytest.approx(300, rel=0.02)


class Feed:
    """One Leakage fed a window every 250 ms; records (elapsed ms, level) at each change."""

    def __init__(self, start: int = 0, on: int = ALARM_DELAY, off: int = RELEASE_DELAY) -> None:
        self.clock = Clock(start)
        self.lk = Leakage(CAL)
        self.on, self.off = on, off
        self.changes: list[tuple[int, int]] = []

    def run(self, samples: list[int], duration_ms: int) -> None:
        for _ in range(duration_ms // WINDOW_MS):
            self.clock.advance(WINDOW_MS)
            lk = self.lk
            before = lk.state.level
            lk.window(self.clock.now, samples, ALARM_MA, PRE_MA, self.on, self.off)
            if lk.state.level != before:
                self.changes.append((self.clock.elapsed, lk.state.level))


starts = pytest.mark.parametrize("start", STARTS, ids=START_IDS)


@starts
@pytest.mark.parametrize("delay", [0, 5, ALARM_DELAY, 100, 300])
def test_alarm_only_after_the_alarm_delay(start: int, delay: int) -> None:
    f = Feed(start, on=delay)
    f.run(QUIET, 10_000)
    f.run(window(400), 60_000)
    # The first window above the threshold comes at 10.25 s; the alarm needs the current to
    # have stayed above for the delay (0.1 s units), judged at the next window.
    first = 10_000 + WINDOW_MS
    expected = first + math.ceil(delay * 100 / WINDOW_MS) * WINDOW_MS
    assert f.changes == [(expected, ALARM)]


@starts
@pytest.mark.parametrize("release", [0, 10, RELEASE_DELAY, 600, 6000])
def test_restore_only_after_the_release_delay(start: int, release: int) -> None:
    f = Feed(start, on=0, off=release)
    f.run(window(400), 2_000)
    assert f.changes == [(WINDOW_MS, ALARM)]
    f.run(window(100), release * 100 + 5_000)
    first_low = 2_000 + WINDOW_MS
    expected = first_low + math.ceil(release * 100 / WINDOW_MS) * WINDOW_MS
    assert f.changes[1:] == [(expected, NORMAL)]


def test_pre_alarm_then_alarm_then_back() -> None:
    f = Feed()
    f.run(window(260), 5_000)  # between 240 and 300 mA: pre-alarm
    f.run(window(400), 5_000)
    f.run(window(280), 10_000)  # below 300 but above 270 (90 %): the alarm holds
    f.run(window(260), 10_000)  # below 270: back to pre-alarm after the release delay
    f.run(window(100), 10_000)
    assert f.changes == [
        (2_250, PRE_ALARM),
        (7_250, ALARM),
        (20_000 + 5_250, PRE_ALARM),
        (30_000 + 5_250, NORMAL),
    ]


def test_the_value_follows_the_current() -> None:
    lk = Leakage(CAL)
    lk.window(0, window(123), ALARM_MA, PRE_MA, ALARM_DELAY, RELEASE_DELAY)
    assert lk.value == pytest.approx(123, rel=0.02)


@starts
def test_an_open_ct_is_a_fault_after_four_windows_and_never_an_alarm(start: int) -> None:
    f = Feed(start)
    f.run(window(500), 5_000)
    assert f.lk.state.level == ALARM
    lk = f.lk
    t = f.clock
    for i in range(3):  # a switching transient: up to three odd windows hold the level
        assert not lk.window(t.advance(WINDOW_MS), OPEN, ALARM_MA, PRE_MA, 20, 50)
        assert (lk.faults, lk.state.level) == (0, ALARM), i
    assert lk.window(t.advance(WINDOW_MS), OPEN, ALARM_MA, PRE_MA, 20, 50)
    assert (lk.faults, lk.state.level, lk.value) == (CT_OPEN, NORMAL, 0)
    for _ in range(4 * 600):  # ten minutes open: the fault stays, no alarm ever
        assert not lk.window(t.advance(WINDOW_MS), OPEN, ALARM_MA, PRE_MA, 20, 50)
        assert lk.state.level == NORMAL
    # Plugged back in: the fault clears at once, and a real leak alarms again after its delay.
    assert lk.window(t.advance(WINDOW_MS), window(500), ALARM_MA, PRE_MA, 20, 50)
    assert lk.faults == 0
    f.changes.clear()
    f.run(window(500), 5_000)
    assert [level for _, level in f.changes] == [ALARM]


@pytest.mark.parametrize("level_mv", [0, BIAS_MV - 301, BIAS_MV + 301, 3300])
def test_a_dc_level_off_the_bias_is_an_open_ct(level_mv: int) -> None:
    lk = Leakage(CAL)
    for i in range(4):
        lk.window(i * WINDOW_MS, [level_mv] * SAMPLES, ALARM_MA, PRE_MA, 20, 50)
    assert lk.faults == CT_OPEN


def test_an_odd_window_between_good_ones_is_not_a_fault() -> None:
    lk = Leakage(CAL)
    t = 0
    for i in range(400):
        t += WINDOW_MS
        lk.window(t, OPEN if i % 4 == 3 else QUIET, ALARM_MA, PRE_MA, 20, 50)
        assert lk.faults == 0


@settings(deadline=None)  # simulated time, not wall time: slow machines too
@given(
    delay=st.integers(min_value=1, max_value=300),
    ma=st.integers(min_value=PRE_MA, max_value=1000),
    windows=st.integers(min_value=1, max_value=120),
    phase=st.floats(min_value=0, max_value=2 * math.pi),
    start=st.integers(min_value=0, max_value=PERIOD - 1),
)
def test_a_glitch_shorter_than_the_alarm_delay_never_alarms(
    delay: int, ma: int, windows: int, phase: float, start: int
) -> None:
    # A surge of `windows` windows (250 ms each) lasting no longer than the delay: neither an
    # alarm nor a pre-alarm, wherever the clock stands.
    windows = min(windows, delay * 100 // WINDOW_MS)
    if windows == 0:
        return
    f = Feed(start, on=delay)
    f.run(QUIET, 2_000)
    f.run(window(ma, phase), windows * WINDOW_MS)
    f.run(QUIET, 2_000)
    assert f.changes == []
