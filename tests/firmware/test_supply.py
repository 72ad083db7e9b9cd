"""The low-supply warning: below SUPPLY_LOW for 10 s, cleared 0.3 V above it after 10 s."""

from __future__ import annotations

import pytest

import config
from protocol import registers as r
from protocol.codes import FAULT_LOW_SUPPLY
from supply import Supply
from tests.firmware.clock import MINUTE, SECOND, START_IDS, STARTS, Clock

# A divider of 10 rather than the default 11, so that every supply voltage in 10 mV steps is a
# whole ADC reading.
CAL = dict(config.Config().cal, supply_divider=10)
DIVIDER = 10
LOW = r.default(r.SUPPLY_LOW)  # 10800 mV
LOW_SUPPLY = 1 << FAULT_LOW_SUPPLY

starts = pytest.mark.parametrize("start", STARTS, ids=START_IDS)


def adc_mv(supply_mv: int) -> int:
    """What the ADC sees through the divider."""
    assert supply_mv % DIVIDER == 0
    return supply_mv // DIVIDER


class Run:
    def __init__(self, start: int = 0) -> None:
        self.clock = Clock(start)
        self.s = Supply(CAL)
        self.changes: list[tuple[int, int]] = []  # (elapsed ms, faults)

    def run(self, supply_mv: int, duration_ms: int) -> None:
        for _ in range(duration_ms // SECOND):
            self.clock.advance(SECOND)
            before = self.s.faults
            changed = self.s.update(self.clock.now, adc_mv(supply_mv), LOW)
            assert changed == (self.s.faults != before)
            if changed:
                self.changes.append((self.clock.elapsed, self.s.faults))


@starts
def test_low_after_ten_seconds_and_cleared_above_the_hysteresis(start: int) -> None:
    run = Run(start)
    run.run(12_100, MINUTE)
    assert run.s.value == 12_100
    run.run(10_500, MINUTE)  # below 10.8 V
    assert run.changes == [(MINUTE + 11 * SECOND, LOW_SUPPLY)]  # low for 10 s, from 61 s
    run.run(11_000, 10 * MINUTE)  # back above 10.8 V but not 0.3 V above: still low
    run.run(11_090, MINUTE)
    assert len(run.changes) == 1
    run.run(11_100, MINUTE)  # 11.1 V: clears after 10 s
    cleared = 2 * MINUTE + 10 * MINUTE + MINUTE + 11 * SECOND
    assert run.changes[1:] == [(cleared, 0)]


def test_the_reading_is_scaled_by_the_divider() -> None:
    s = Supply(config.Config().cal)  # the shipped divider, 11
    s.update(0, 1100, LOW)
    assert s.value == 12_100


def test_the_threshold_itself_is_not_low() -> None:
    run = Run()
    run.run(LOW, 10 * MINUTE)
    assert run.changes == []


@starts
def test_sags_shorter_than_ten_seconds_are_not_low(start: int) -> None:
    # A buzzer sounding pulls the supply to 9.9 V for 9 s in every 20 s, for an hour.
    run = Run(start)
    for _ in range(180):
        run.run(9_900, 9 * SECOND)
        run.run(12_100, 11 * SECOND)
    assert run.changes == []


def test_a_low_supply_that_wavers_stays_low() -> None:
    # Once low, readings that rise above the threshold but not its hysteresis do not clear it.
    run = Run()
    run.run(10_010, MINUTE)
    for _ in range(60):
        run.run(10_890, 5 * SECOND)
        run.run(11_000, 20 * SECOND)
    assert run.s.faults == LOW_SUPPLY
    assert len(run.changes) == 1
