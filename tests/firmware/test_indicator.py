"""LED and buzzer patterns: ISO 8201 temporal-three in alarm, quiet when hushed, chirps."""

from __future__ import annotations

import itertools

import pytest

import node as n
from indicator import FAULT_EVERY, PATTERNS, PRE_EVERY, SLOT_MS, outputs

FRAME_SLOTS = 16  # 16 slots of 250 ms: a 4 s frame
STATES = (n.NORMAL, n.FAULT, n.PRE_ALARM, n.SILENCED, n.ALARM, n.TEST)


def runs(bits: list[int]) -> list[tuple[int, int]]:
    """(output, duration ms) for each run of equal slots."""
    return [(bit, len(list(group)) * SLOT_MS) for bit, group in itertools.groupby(bits)]


def track(state: int, seconds: int, quiet: bool = False, identify: bool = False) -> list[int]:
    """The buzzer, slot by slot, for seconds (app.py passes ticks // SLOT_MS as the slot)."""
    return [outputs(state, slot, quiet, identify)[1] for slot in range(seconds * 1000 // SLOT_MS)]


def test_alarm_sounds_temporal_three_in_every_four_second_frame() -> None:
    # ISO 8201: three 0.5 s tones with 0.5 s gaps, then 1.5 s of silence; 4 s in all.
    for frame in range(30):
        slots = range(frame * FRAME_SLOTS, (frame + 1) * FRAME_SLOTS)
        buzz = [outputs(n.ALARM, s, False, False)[1] for s in slots]
        led = [outputs(n.ALARM, s, False, False)[0] for s in slots]
        assert runs(buzz) == [(1, 500), (0, 500), (1, 500), (0, 500), (1, 500), (0, 1500)]
        assert led == [1] * FRAME_SLOTS


@pytest.mark.parametrize("state", STATES)
def test_quiet_silences_the_buzzer_in_every_state(state: int) -> None:
    assert set(track(state, 120, quiet=True)) == {0}


def test_the_silenced_state_is_quiet_and_blinks_at_2_hz() -> None:
    assert set(track(n.SILENCED, 120)) == {0}
    led = [outputs(n.SILENCED, s, False, False)[0] for s in range(FRAME_SLOTS)]
    assert runs(led) == [(1, 250), (0, 250)] * 8


def chirps(state: int, seconds: int) -> list[float]:
    """The times (s) at which the buzzer comes on."""
    buzz = track(state, seconds)
    return [i * SLOT_MS / 1000 for i, b in enumerate(buzz) if b and (i == 0 or not buzz[i - 1])]


def test_the_fault_chirp_is_one_slot_every_48_s() -> None:
    assert FAULT_EVERY * FRAME_SLOTS * SLOT_MS == 48_000
    assert chirps(n.FAULT, 600) == [48.0 * k for k in range(13)]
    assert sum(track(n.FAULT, 600)) == 13  # a 250 ms chirp each time


def test_the_pre_alarm_chirp_is_every_32_s() -> None:
    assert PRE_EVERY * FRAME_SLOTS * SLOT_MS == 32_000
    assert chirps(n.PRE_ALARM, 320) == [32.0 * k for k in range(10)]


def test_normal_is_silent_with_one_blink_every_32_s() -> None:
    assert set(track(n.NORMAL, 600)) == {0}
    led = [outputs(n.NORMAL, s, False, False)[0] for s in range(600 * 4)]
    assert [i * SLOT_MS / 1000 for i, on in enumerate(led) if on] == [32.0 * k for k in range(19)]


def test_the_self_test_beeps_once_a_second() -> None:
    assert chirps(n.TEST, 8) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


@pytest.mark.parametrize("state", [n.NORMAL, n.FAULT])
def test_identify_flashes_three_times_every_frame_in_a_quiet_state(state: int) -> None:
    for frame in range(5):
        led = [
            outputs(state, s, False, True)[0]
            for s in range(frame * FRAME_SLOTS, (frame + 1) * FRAME_SLOTS)
        ]
        assert runs(led) == [(1, 250), (0, 250), (1, 250), (0, 250), (1, 250), (0, 2750)]
    assert track(state, 120, identify=True) == track(state, 120)  # the buzzer is unchanged


@pytest.mark.parametrize("state", [n.PRE_ALARM, n.SILENCED, n.ALARM, n.TEST])
def test_identify_never_masks_an_alarm_pattern(state: int) -> None:
    for s in range(200):
        assert outputs(state, s, False, True) == outputs(state, s, False, False)


def test_every_state_has_a_pattern_of_16_slots() -> None:
    assert set(PATTERNS) == set(STATES)
    for led, buzz, every in PATTERNS.values():
        assert 0 <= led <= 0xFFFF and 0 <= buzz <= 0xFFFF and every >= 1
