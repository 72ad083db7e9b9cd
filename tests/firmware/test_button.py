"""The manual call point: 50 ms debounce, a deliberate 500 ms press latches an alarm once, a
shorter press is reported as a press on release."""

from __future__ import annotations

import pytest

from button import ALARM, DEBOUNCE_MS, HOLD_MS, NONE, SHORT, Button
from tests.firmware.clock import START_IDS, STARTS, Clock

starts = pytest.mark.parametrize("start", STARTS, ids=START_IDS)
polls = pytest.mark.parametrize("poll_ms", [1, 10, 25])  # app.py polls every 25 ms


def play(
    button: Button, clock: Clock, contact: list[tuple[int, bool]], poll_ms: int
) -> list[tuple[int, int]]:
    """Poll the button through a contact timeline of (duration ms, pressed); returns the
    non-NONE results as (elapsed ms, result)."""
    out = []
    for duration, pressed in contact:
        for _ in range(duration // poll_ms):
            clock.advance(poll_ms)
            result = button.update(clock.now, pressed)
            if result != NONE:
                out.append((clock.elapsed, result))
    return out


def chatter(ms: int) -> list[tuple[int, bool]]:
    """Contact bounce: closed and open by turns, 5 ms each, for ms."""
    return [(5, i % 2 == 0) for i in range(ms // 5)]


@starts
@pytest.mark.parametrize(
    ("poll_ms", "pulse_ms"),
    [(1, 5), (1, 20), (1, 49), (10, 10), (10, 40), (25, 25)],  # pulses that some poll sees
)
def test_a_pulse_shorter_than_the_debounce_is_ignored(
    start: int, poll_ms: int, pulse_ms: int
) -> None:
    b, clock = Button(), Clock(start)
    assert play(b, clock, [(1000, False), (pulse_ms, True), (2000, False)], poll_ms) == []
    assert not b.latched


@starts
@pytest.mark.parametrize("bounce_ms", [10, 30, 45])
def test_chatter_is_ignored(start: int, bounce_ms: int) -> None:
    b, clock = Button(), Clock(start)
    assert play(b, clock, [(100, False), *chatter(bounce_ms), (1000, False)], 1) == []


@starts
@polls
@pytest.mark.parametrize("held_ms", [100, 200, 450])
def test_a_short_press_is_reported_on_release(start: int, poll_ms: int, held_ms: int) -> None:
    b, clock = Button(), Clock(start)
    events = play(b, clock, [(1000, False), (held_ms, True), (1000, False)], poll_ms)
    assert [e for _, e in events] == [SHORT]
    released_seen = 1000 + held_ms + poll_ms  # the first poll that finds the contact open
    assert released_seen + DEBOUNCE_MS <= events[0][0] < released_seen + DEBOUNCE_MS + poll_ms
    assert not b.latched


@starts
@polls
def test_a_deliberate_press_alarms_once_and_latches(start: int, poll_ms: int) -> None:
    b, clock = Button(), Clock(start)
    # Bounce on the way in and out, held for ten seconds.
    timeline = [(1000, False), *chatter(20), (10_000, True), *chatter(20), (1000, False)]
    events = play(b, clock, timeline, poll_ms)
    assert [e for _, e in events] == [ALARM]  # once; no SHORT on the release either
    # Timed from the last bounce (the start of the clean press), 500 ms later.
    settled = 1000 + 20
    assert settled + HOLD_MS - poll_ms <= events[0][0] <= settled + HOLD_MS + poll_ms
    assert b.latched
    # The latch outlives the press; only a reset command clears it (app.py).
    assert play(b, clock, [(60_000, False)], poll_ms) == []
    assert b.latched


def test_a_bounce_during_a_long_press_does_not_restart_the_hold() -> None:
    b, clock = Button(), Clock()
    timeline = [(100, False), (300, True), (10, False), (300, True), (200, False)]
    events = play(b, clock, timeline, 1)
    assert events == [(101 + HOLD_MS, ALARM)]  # from the first closed poll, at 101 ms


def test_a_second_deliberate_press_alarms_again() -> None:
    b, clock = Button(), Clock()
    press = [(600, True), (200, False)]
    assert [e for _, e in play(b, clock, press + press, 25)] == [ALARM, ALARM]


def test_held_ms() -> None:
    b, clock = Button(), Clock()
    assert b.held_ms(clock.now) == 0
    play(b, clock, [(100, False), (300, True)], 1)
    assert b.held_ms(clock.now) == 300 - 1  # counted from the first closed poll
    play(b, clock, [(100, False)], 1)
    assert b.held_ms(clock.now) == 0


def test_a_reset_while_still_held_latches_again_after_the_hold() -> None:
    # A remote reset must not leave an activated call point without its alarm (EN 54-11: it
    # stays activated until reset with its key).
    b, clock = Button(), Clock()
    assert [e for _, e in play(b, clock, [(600, True)], 25)] == [ALARM]
    b.reset(clock.now)
    assert not b.latched
    assert [e for _, e in play(b, clock, [(HOLD_MS - 25, True)], 25)] == []
    assert [e for _, e in play(b, clock, [(50, True)], 25)] == [ALARM]
    assert b.latched


def test_a_reset_after_release_stays_clear() -> None:
    b, clock = Button(), Clock()
    play(b, clock, [(600, True), (100, False)], 25)
    b.reset(clock.now)
    assert [e for _, e in play(b, clock, [(2000, False)], 25)] == []
    assert not b.latched
