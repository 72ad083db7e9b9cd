"""Levels shared by the sensors: classify() with 10 % hysteresis, Delayed confirmation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from level import ALARM, NORMAL, PRE_ALARM, Delayed, classify
from tests.firmware.clock import PERIOD, START_IDS, STARTS, Clock


@pytest.mark.parametrize(
    ("value", "held", "expected"),
    [
        (0, NORMAL, NORMAL),
        (199, NORMAL, NORMAL),
        (200, NORMAL, PRE_ALARM),
        (299, NORMAL, PRE_ALARM),
        (300, NORMAL, ALARM),
        (5000, NORMAL, ALARM),
        # Held levels need 10 % less to stay.
        (270, ALARM, ALARM),
        (269, ALARM, PRE_ALARM),
        (180, PRE_ALARM, PRE_ALARM),
        (179, PRE_ALARM, NORMAL),
        (180, ALARM, PRE_ALARM),
        (270, PRE_ALARM, PRE_ALARM),  # pre-alarm held: the alarm still needs its full 300
    ],
)
def test_classify(value: int, held: int, expected: int) -> None:
    assert classify(value, 300, 200, held) == expected


def test_classify_without_a_pre_alarm_threshold() -> None:
    assert classify(299, 300, 0, NORMAL) == NORMAL
    assert classify(300, 300, 0, NORMAL) == ALARM


def feed(d: Delayed, clock: Clock, want: int, ms: int, step: int = 100) -> list[int]:
    """want for ms, stepped; the confirmed level after each step."""
    out = []
    for _ in range(ms // step):
        d.update(clock.advance(step), want, 1000, 3000)
        out.append(d.level)
    return out


@pytest.mark.parametrize("start", STARTS, ids=START_IDS)
def test_delayed_confirms_and_releases(start: int) -> None:
    d, clock = Delayed(), Clock(start)
    # Straight to alarm once the readings have asked for it for 1 s (the 11th reading, 1 s
    # after the first), down after 3 s.
    assert feed(d, clock, ALARM, 1100) == [NORMAL] * 10 + [ALARM]
    assert feed(d, clock, PRE_ALARM, 3100) == [ALARM] * 30 + [PRE_ALARM]
    assert feed(d, clock, NORMAL, 3100) == [PRE_ALARM] * 30 + [NORMAL]


def test_delayed_restarts_its_timer_on_a_break() -> None:
    d, clock = Delayed(), Clock()
    for _ in range(10):
        feed(d, clock, ALARM, 900)
        feed(d, clock, NORMAL, 100)
    assert d.level == NORMAL


def test_delayed_clear() -> None:
    d, clock = Delayed(), Clock()
    feed(d, clock, ALARM, 2000)
    d.clear()
    assert d.level == NORMAL
    assert feed(d, clock, ALARM, 1100)[-2:] == [NORMAL, ALARM]  # confirmed afresh


@settings(deadline=None)  # simulated time, not wall time: slow machines too
@given(
    start=st.integers(0, PERIOD - 1),
    wants=st.lists(st.tuples(st.sampled_from([0, 1, 2]), st.integers(1, 40)), max_size=40),
)
def test_delayed_level_is_always_backed_by_the_readings(
    start: int, wants: list[tuple[int, int]]
) -> None:
    # Steps of 100 ms, on 1 s, off 3 s, anywhere on the clock: a level is reached only after
    # 1 s of readings asking for it, always reached after that, and always left after 3 s of
    # readings asking for less.
    d, clock = Delayed(), Clock(start)
    history: list[int] = []  # the wanted level at each step
    for want, steps in wants:
        for _ in range(steps):
            before = d.level
            d.update(clock.advance(100), want, 1000, 3000)
            history.append(want)
            if d.level > before:
                assert len(history) >= 11 and min(history[-11:]) >= d.level
            if len(history) >= 11:
                assert d.level >= min(history[-11:])
            if len(history) >= 31:
                assert d.level <= max(history[-31:])
