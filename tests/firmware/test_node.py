"""The node's state machine: events in order, hush, fault hush, self-test, status and state."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import node as n
from node import FAULT_HUSH_MS, HUSH_MS, IDENTIFY_MS, SELF_TEST_MS, TEST_MS, Node
from protocol import registers as r
from protocol.codes import (
    EV_ALARM,
    EV_FAULT,
    EV_PRE_ALARM,
    EV_RESTORE,
    EV_SILENCED,
    EV_TEST,
    FAULT_CT_OPEN,
    FAULT_LOW_SUPPLY,
    FAULT_SAFE_MODE,
    FAULT_SELF_TEST,
    FAULT_SMOKE_DIRTY,
    FAULT_SMOKE_INPUT,
    SRC_BUTTON,
    SRC_LEAKAGE,
    SRC_NODE,
    SRC_SMOKE,
    SRC_SUPPLY,
    SRC_TEMPERATURE,
)
from tests.firmware.clock import HOUR, MINUTE, SECOND, START_IDS, STARTS, Clock

Event = tuple[int, int, int, int]
starts = pytest.mark.parametrize("start", STARTS, ids=START_IDS)
SMOKE_MASK = 1 << FAULT_SMOKE_DIRTY | 1 << FAULT_SMOKE_INPUT  # as app.py passes for smoke


class Rig:
    """A Node on a simulated clock, with every emitted event recorded."""

    def __init__(self, start: int = 0, safe_mode: bool = False) -> None:
        self.clock = Clock(start)
        self.events: list[Event] = []
        self.node = Node(start, self.emit, safe_mode)

    def emit(self, code: int, source: int, detail: int, value: int) -> None:
        self.events.append((code, source, detail, value))

    def take(self) -> list[Event]:
        out, self.events = self.events, []
        return out

    @property
    def now(self) -> int:
        return self.clock.now

    def advance(self, ms: int) -> int:
        return self.clock.advance(ms)

    def state(self) -> int:
        return self.node.state(self.now)

    def status(self) -> int:
        return self.node.status(self.now)


def test_level_changes_raise_events_in_order() -> None:
    rig = Rig()
    node, t = rig.node, rig.now
    node.level(t, SRC_SMOKE, 1, 170)
    node.level(t, SRC_SMOKE, 1, 180)  # no change: no event
    node.level(t, SRC_SMOKE, 2, 250)
    node.level(t, SRC_LEAKAGE, 2, 420)  # straight to alarm: no pre-alarm event on the way
    node.level(t, SRC_SMOKE, 1, 200)
    node.level(t, SRC_SMOKE, 0, 10)
    node.level(t, SRC_LEAKAGE, 0, 50)  # straight back: one restore, detail 0
    assert rig.take() == [
        (EV_PRE_ALARM, SRC_SMOKE, 0, 170),
        (EV_ALARM, SRC_SMOKE, 0, 250),
        (EV_ALARM, SRC_LEAKAGE, 0, 420),
        (EV_RESTORE, SRC_SMOKE, 1, 200),
        (EV_RESTORE, SRC_SMOKE, 0, 10),
        (EV_RESTORE, SRC_LEAKAGE, 0, 50),
    ]
    assert (node.alarms, node.pre) == (0, 0)


def test_alarm_and_pre_alarm_bits_per_source() -> None:
    rig = Rig()
    node, t = rig.node, rig.now
    node.level(t, SRC_SMOKE, 2, 0)
    node.level(t, SRC_LEAKAGE, 1, 0)
    node.level(t, SRC_BUTTON, 2, 0)
    assert node.alarms == 1 << SRC_SMOKE | 1 << SRC_BUTTON
    assert node.pre == 1 << SRC_LEAKAGE
    node.level(t, SRC_SMOKE, 1, 0)
    assert node.alarms == 1 << SRC_BUTTON
    assert node.pre == 1 << SRC_LEAKAGE | 1 << SRC_SMOKE


def test_faults_raise_fault_and_fault_restore_events() -> None:
    rig = Rig()
    node, t = rig.node, rig.now
    node.set_faults(t, 1 << FAULT_SMOKE_INPUT, SRC_SMOKE, SMOKE_MASK, 0)
    node.set_faults(t, 1 << FAULT_SMOKE_INPUT, SRC_SMOKE, SMOKE_MASK, 0)  # unchanged
    node.set_faults(t, 1 << FAULT_CT_OPEN, SRC_LEAKAGE, 1 << FAULT_CT_OPEN, 0)
    # Both smoke bits change at once: one event each, in bit order.
    node.set_faults(t, 1 << FAULT_SMOKE_DIRTY, SRC_SMOKE, SMOKE_MASK, 123)
    node.set_faults(t, 0, SRC_LEAKAGE, 1 << FAULT_CT_OPEN, 0)
    assert rig.take() == [
        (EV_FAULT, SRC_SMOKE, FAULT_SMOKE_INPUT, 0),
        (EV_FAULT, SRC_LEAKAGE, FAULT_CT_OPEN, 0),
        (EV_FAULT, SRC_SMOKE, FAULT_SMOKE_DIRTY, 123),
        (EV_RESTORE, SRC_NODE, 0x80 | FAULT_SMOKE_INPUT, 123),
        (EV_RESTORE, SRC_NODE, 0x80 | FAULT_CT_OPEN, 0),
    ]
    assert node.faults == 1 << FAULT_SMOKE_DIRTY


def test_a_fault_mask_leaves_other_sources_bits_alone() -> None:
    rig = Rig()
    node, t = rig.node, rig.now
    node.set_faults(t, 1 << FAULT_LOW_SUPPLY, SRC_SUPPLY, 1 << FAULT_LOW_SUPPLY, 0)
    node.set_faults(t, 0xFF, SRC_SMOKE, SMOKE_MASK, 0)  # bits outside the mask are ignored
    assert node.faults == 1 << FAULT_LOW_SUPPLY | SMOKE_MASK


def test_safe_mode_is_a_fault_from_the_start() -> None:
    rig = Rig(safe_mode=True)
    assert rig.take() == [(EV_FAULT, SRC_NODE, FAULT_SAFE_MODE, 0)]
    assert rig.node.faults == 1 << FAULT_SAFE_MODE
    assert rig.status() & r.ST_SAFE_MODE
    assert not Rig().status() & r.ST_SAFE_MODE


# Hush.


@starts
def test_hush_lasts_at_most_ten_minutes(start: int) -> None:
    rig = Rig(start)
    node = rig.node
    node.level(rig.now, SRC_SMOKE, 2, 300)
    assert (rig.state(), node.sounding(rig.now)) == (n.ALARM, True)
    rig.take()
    assert node.silence(rig.now)
    assert rig.take() == [(EV_SILENCED, SRC_NODE, 0, 0)]
    for _ in range(HUSH_MS // SECOND - 1):
        rig.advance(SECOND)
        assert rig.state() == n.SILENCED
        assert not node.sounding(rig.now)
    rig.advance(SECOND - 1)
    assert node.hushed(rig.now)  # 1 ms before the ten minutes are up
    rig.advance(1)
    assert (rig.state(), node.sounding(rig.now), node.hushed(rig.now)) == (n.ALARM, True, False)
    assert rig.take() == []  # the hush running out is not an event


def test_nothing_to_hush() -> None:
    rig = Rig()
    assert not rig.node.silence(rig.now)
    assert rig.take() == []
    assert not rig.node.hushed(rig.now)


@pytest.mark.parametrize("source", [SRC_LEAKAGE, SRC_TEMPERATURE, SRC_BUTTON])
def test_a_new_source_in_alarm_during_a_hush_sounds_at_once(source: int) -> None:
    rig = Rig()
    node = rig.node
    node.level(rig.now, SRC_SMOKE, 2, 0)
    node.silence(rig.now)
    rig.advance(MINUTE)
    node.level(rig.now, source, 1, 0)  # a pre-alarm elsewhere is not worse than an alarm
    assert rig.state() == n.SILENCED
    rig.advance(SECOND)
    node.level(rig.now, source, 2, 0)
    assert (rig.state(), node.sounding(rig.now)) == (n.ALARM, True)
    assert not rig.status() & r.ST_SILENCED


def test_escalation_from_a_hushed_pre_alarm_to_an_alarm_sounds_at_once() -> None:
    rig = Rig()
    node = rig.node
    node.level(rig.now, SRC_SMOKE, 1, 0)
    assert node.silence(rig.now)
    rig.advance(MINUTE)
    assert node.hushed(rig.now)
    node.level(rig.now, SRC_LEAKAGE, 1, 0)  # another pre-alarm is worse than what was hushed
    assert not node.hushed(rig.now)
    node.silence(rig.now)
    rig.advance(MINUTE)
    node.level(rig.now, SRC_SMOKE, 2, 0)  # the hushed pre-alarm escalates
    assert (rig.state(), node.sounding(rig.now)) == (n.ALARM, True)


def test_a_hushed_source_that_dips_and_returns_stays_hushed() -> None:
    # Not a new condition: the same source was in alarm when hushed (node.py's rule).
    rig = Rig()
    node = rig.node
    node.level(rig.now, SRC_SMOKE, 2, 0)
    node.silence(rig.now)
    rig.advance(MINUTE)
    node.level(rig.now, SRC_SMOKE, 1, 0)
    rig.advance(MINUTE)
    node.level(rig.now, SRC_SMOKE, 2, 0)
    assert rig.state() == n.SILENCED


def test_the_hush_ends_when_everything_restores() -> None:
    rig = Rig()
    node = rig.node
    node.level(rig.now, SRC_SMOKE, 2, 0)
    node.silence(rig.now)
    rig.advance(MINUTE)
    node.level(rig.now, SRC_SMOKE, 0, 0)
    assert not node.hushed(rig.now)
    rig.advance(MINUTE)
    node.level(rig.now, SRC_SMOKE, 2, 0)  # a fresh alarm, within the old ten minutes
    assert (rig.state(), node.sounding(rig.now)) == (n.ALARM, True)


@starts
def test_a_fault_only_hush_lasts_eight_hours(start: int) -> None:
    rig = Rig(start)
    node = rig.node
    node.set_faults(rig.now, 1 << FAULT_LOW_SUPPLY, SRC_SUPPLY, 1 << FAULT_LOW_SUPPLY, 0)
    assert node.silence(rig.now)
    for _ in range(FAULT_HUSH_MS // MINUTE - 1):
        rig.advance(MINUTE)
        assert node.hushed(rig.now)
        assert rig.state() == n.FAULT  # hushed faults are still faults
    rig.advance(MINUTE)
    assert not node.hushed(rig.now)


def test_an_alarm_during_a_fault_hush_sounds_at_once() -> None:
    rig = Rig()
    node = rig.node
    node.set_faults(rig.now, 1 << FAULT_CT_OPEN, SRC_LEAKAGE, 1 << FAULT_CT_OPEN, 0)
    node.silence(rig.now)
    rig.advance(HOUR)
    node.level(rig.now, SRC_TEMPERATURE, 1, 0)
    assert not node.hushed(rig.now)  # a pre-alarm is worse than a fault: its chirp sounds
    node.silence(rig.now)
    rig.advance(MINUTE)
    node.level(rig.now, SRC_TEMPERATURE, 2, 0)
    assert (rig.state(), node.sounding(rig.now)) == (n.ALARM, True)


def test_a_fault_hush_ends_when_the_faults_clear() -> None:
    # "Hush ... only while something sounds": once the fault is gone the node must not go on
    # reporting itself silenced, nor keep a later, unrelated fault quiet for the rest of 8 h.
    rig = Rig()
    node = rig.node
    supply = 1 << FAULT_LOW_SUPPLY
    node.set_faults(rig.now, supply, SRC_SUPPLY, supply, 0)
    node.silence(rig.now)
    rig.advance(10 * MINUTE)
    node.set_faults(rig.now, 0, SRC_SUPPLY, supply, 0)
    assert rig.state() == n.NORMAL
    assert not node.hushed(rig.now)
    assert not rig.status() & r.ST_SILENCED
    rig.advance(HOUR)
    node.set_faults(rig.now, 1 << FAULT_CT_OPEN, SRC_LEAKAGE, 1 << FAULT_CT_OPEN, 0)
    assert not node.hushed(rig.now)  # the new fault chirps


# Self-test.


@starts
def test_self_test_at_power_up_and_every_24_hours(start: int) -> None:
    # app.py's sense loop, once a second for 48 hours: start a due test, end one that is over.
    rig = Rig(start)
    node = rig.node
    started: list[int] = []
    for _ in range(48 * HOUR // SECOND + 10):
        if node.test_due(rig.now):
            node.start_test(rig.now, not started)
            started.append(rig.clock.elapsed)
            assert rig.state() == n.TEST
            assert rig.status() & r.ST_TEST
        elif node.test_over(rig.now):
            node.end_test(rig.now, 0)
            assert rig.state() == n.NORMAL
        rig.advance(SECOND)
    # At power-up, then 24 h after each test ended (3 s after it started).
    assert started == [0, 24 * HOUR + 3 * SECOND, 48 * HOUR + 6 * SECOND]
    assert rig.take() == [(EV_TEST, SRC_NODE, 0, 0)] * 3
    assert node.faults == 0


def test_a_failed_self_test_sets_the_fault_and_a_passed_one_clears_it() -> None:
    rig = Rig()
    node = rig.node
    node.start_test(rig.now, True)
    assert not node.test_over(rig.now)
    rig.advance(TEST_MS - 1)
    assert not node.test_over(rig.now)
    rig.advance(1)
    assert node.test_over(rig.now)
    failed = 1 << FAULT_SMOKE_INPUT
    node.end_test(rig.now, failed)
    assert node.faults == 1 << FAULT_SELF_TEST
    assert rig.take() == [
        (EV_TEST, SRC_NODE, failed, 0),
        (EV_FAULT, SRC_NODE, FAULT_SELF_TEST, 0),
    ]
    assert rig.state() == n.FAULT
    assert not node.test_due(rig.now)
    rig.advance(SELF_TEST_MS)
    assert node.test_due(rig.now)
    node.start_test(rig.now, False)
    assert not node.audible
    rig.advance(TEST_MS)
    node.end_test(rig.now, 0)
    assert rig.take() == [
        (EV_TEST, SRC_NODE, 0, 0),
        (EV_RESTORE, SRC_NODE, 0x80 | FAULT_SELF_TEST, 0),
    ]
    assert node.faults == 0


def test_an_alarm_during_a_self_test_is_real() -> None:
    rig = Rig()
    node = rig.node
    node.start_test(rig.now, True)
    node.level(rig.now, SRC_SMOKE, 2, 300)
    assert rig.take() == [(EV_ALARM, SRC_SMOKE, 0, 300)]
    # The alarm tone at once, not test beeps, while the test runs on underneath.
    assert (rig.state(), node.sounding(rig.now)) == (n.ALARM, True)
    assert rig.status() & (r.ST_ALARM | r.ST_TEST) == r.ST_ALARM | r.ST_TEST
    rig.advance(TEST_MS)
    node.end_test(rig.now, 0)
    assert (rig.state(), node.sounding(rig.now)) == (n.ALARM, True)


def test_the_daily_self_test_waits_while_an_alarm_is_on() -> None:
    rig = Rig()
    node = rig.node
    node.start_test(rig.now, True)
    rig.advance(TEST_MS)
    node.end_test(rig.now, 0)
    rig.advance(SELF_TEST_MS - HOUR)
    node.level(rig.now, SRC_SMOKE, 2, 300)
    rig.advance(2 * HOUR)  # the test is an hour overdue, but the house is in alarm
    assert not node.test_due(rig.now)
    node.level(rig.now, SRC_SMOKE, 0, 0)
    assert node.test_due(rig.now)


# Identify, status and state.


def test_identify_lasts_a_minute() -> None:
    rig = Rig()
    node = rig.node
    assert not node.identifying(rig.now)
    node.identify(rig.now)
    rig.advance(IDENTIFY_MS - 1)
    assert node.identifying(rig.now)
    rig.advance(1)
    assert not node.identifying(rig.now)


def _setup(rig: Rig, what: str) -> None:
    node, t = rig.node, rig.now
    if "alarm" in what:
        node.level(t, SRC_SMOKE, 2, 0)
    if "pre" in what:
        node.level(t, SRC_LEAKAGE, 1, 0)
    if "fault" in what:
        node.set_faults(t, 1 << FAULT_CT_OPEN, SRC_LEAKAGE, 1 << FAULT_CT_OPEN, 0)
    if "low" in what:
        node.set_faults(t, 1 << FAULT_LOW_SUPPLY, SRC_SUPPLY, 1 << FAULT_LOW_SUPPLY, 0)
    if "hush" in what:
        node.silence(t)
    if "test" in what:
        node.start_test(t, True)


@pytest.mark.parametrize(
    ("what", "state", "status"),
    [
        ("", n.NORMAL, 0),
        ("fault", n.FAULT, r.ST_FAULT),
        ("low", n.FAULT, r.ST_FAULT | r.ST_LOW_SUPPLY),
        ("fault+hush", n.FAULT, r.ST_FAULT | r.ST_SILENCED),
        ("pre", n.PRE_ALARM, r.ST_PRE_ALARM),
        ("pre+fault", n.PRE_ALARM, r.ST_PRE_ALARM | r.ST_FAULT),
        ("pre+hush", n.PRE_ALARM, r.ST_PRE_ALARM | r.ST_SILENCED),
        ("alarm", n.ALARM, r.ST_ALARM | r.ST_SOUNDING),
        ("alarm+pre+fault", n.ALARM, r.ST_ALARM | r.ST_PRE_ALARM | r.ST_FAULT | r.ST_SOUNDING),
        ("alarm+hush", n.SILENCED, r.ST_ALARM | r.ST_SILENCED),
        ("alarm+pre+hush", n.SILENCED, r.ST_ALARM | r.ST_PRE_ALARM | r.ST_SILENCED),
        ("test", n.TEST, r.ST_TEST),
        # An alarm outranks a running self-test: the alarm tone, not test beeps.
        ("alarm+test", n.ALARM, r.ST_ALARM | r.ST_TEST | r.ST_SOUNDING),
        (
            "fault+pre+alarm+test",
            n.ALARM,
            r.ST_ALARM | r.ST_PRE_ALARM | r.ST_FAULT | r.ST_TEST | r.ST_SOUNDING,
        ),
    ],
)
def test_state_priorities_and_status_bits(what: str, state: int, status: int) -> None:
    rig = Rig()
    _setup(rig, what)
    assert rig.state() == state
    assert rig.status() == status


# The wrap.


def _scenario(start: int) -> list[tuple[int, int, int, list[Event]]]:
    """A day in a node's life, observed each second: (elapsed s, state, status, events)."""
    rig = Rig(start)
    node = rig.node
    script: dict[int, Callable[[int], object]] = {
        5: lambda t: node.level(t, SRC_SMOKE, 1, 170),
        9: lambda t: node.level(t, SRC_SMOKE, 2, 260),
        12: lambda t: node.silence(t),
        300: lambda t: node.level(t, SRC_SMOKE, 1, 200),
        400: lambda t: node.level(t, SRC_SMOKE, 2, 260),
        700: lambda t: node.level(t, SRC_SMOKE, 0, 0),
        800: lambda t: node.set_faults(t, 1 << FAULT_CT_OPEN, SRC_LEAKAGE, 1 << FAULT_CT_OPEN, 0),
        801: lambda t: node.silence(t),
        900: lambda t: node.identify(t),
        5000: lambda t: node.set_faults(t, 0, SRC_LEAKAGE, 1 << FAULT_CT_OPEN, 0),
        6000: lambda t: node.level(t, SRC_BUTTON, 2, 0),
    }
    out = []
    for s in range(26 * 3600):
        t = rig.now
        if s in script:
            script[s](t)
        if node.test_due(t):
            node.start_test(t, False)
        elif node.test_over(t):
            node.end_test(t, 0)
        out.append((s, node.state(t), node.status(t) | node.identifying(t) << 15, rig.take()))
        rig.advance(SECOND)
    return out


def test_a_clock_starting_just_before_the_wrap_behaves_the_same() -> None:
    from_zero, across_wrap = (_scenario(start) for start in STARTS)
    assert across_wrap == from_zero
    states = {state for _, state, _, _ in from_zero}
    assert states == {n.NORMAL, n.FAULT, n.PRE_ALARM, n.SILENCED, n.ALARM, n.TEST}
