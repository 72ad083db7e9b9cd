"""Supervision: a node not heard for its timeout is offline once, and back at its next word;
hours of simulated time, per-node timeouts, and the 100 s fault budget (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model import Alert, Silent
from gateway.rules import NodeInfo, compile_rules, parse_rules
from gateway.rules.supervision import Supervisor
from protocol import codes as c

from .rules_kit import brief, core, event, nodes, sample

OFFLINE = ("fault", "a", "node", "offline")
BACK = ("fault_restore", "a", "node", "offline")


def test_offline_once_then_back_at_the_next_sample() -> None:
    rc = core(infos=nodes("a"))
    got: list[Alert] = rc.sample(sample("a", 0.0))
    for t in range(1, 200):
        got += rc.tick(float(t))
    assert brief(got) == [OFFLINE] and got[0].at == 60.0
    [back] = rc.sample(sample("a", 200.5))
    assert brief([back]) == [BACK] and back.at == 200.5


def test_a_pushed_event_is_hearing_from_the_node() -> None:
    rc = core(infos=nodes("a"))
    rc.sample(sample("a", 0.0))
    assert brief(rc.tick(60.0)) == [OFFLINE]
    assert brief(rc.event(event("a", 61.0, c.EV_BUTTON, c.SRC_BUTTON))) == [
        BACK,  # a fault outranks telemetry
        ("button", "a", "button", ""),
    ]


def test_silent_polls_are_not_hearing_and_fire_supervision_themselves() -> None:
    rc = core(infos=nodes("a"))
    rc.sample(sample("a", 0.0))
    got = []
    for t in range(1, 70):
        got += [(t, a) for a in rc.silent(Silent("a", float(t)))]
    assert [(t, a.detail) for t, a in got] == [(60, "offline")]
    assert rc.counters["silent"] == 69


def test_each_node_has_its_own_timeout() -> None:
    infos = {
        "a": NodeInfo("a", "h", "z", supervision_s=30),
        "b": NodeInfo("b", "h", "z", supervision_s=90),
    }
    rc = compile_rules(parse_rules({}), infos)
    went = [(t, a.node) for t in range(100) for a in rc.tick(float(t))]
    assert went == [(30, "a"), (90, "b")]


def test_the_clock_starts_at_the_first_input() -> None:
    rc = core(infos=nodes("a"))
    assert rc.tick(5000.0) == []  # a gateway just started has heard nobody yet
    assert rc.tick(5059.9) == []
    assert brief(rc.tick(5060.0)) == [OFFLINE]


def test_six_hours_of_polls_every_20_s_raise_nothing() -> None:
    rc = core(infos=nodes("a", "b", "c"))
    got = []
    for t in range(6 * 3600):
        if t % 20 == 0:
            for k, name in enumerate("abc"):
                got += rc.sample(sample(name, t + k * 0.1, seq=t // 600))
        got += rc.tick(t + 0.5)
    assert got == []
    assert rc.counters["seq_jumps"] == 3 * 35  # EVENT_SEQ moved every 10 min, nothing visible


@settings(deadline=None)  # its work grows with the drawn times: no per-example deadline
@given(
    st.floats(1.0, 99.0),  # supervision_s
    st.floats(0.05, 5.0),  # tick granularity
    st.floats(0.0, 1000.0),  # when it was last heard
)
def test_a_silent_node_goes_offline_within_its_timeout_plus_a_tick(
    timeout: float, tick: float, heard: float
) -> None:
    rc = core(infos=nodes("a", supervision_s=timeout))
    rc.sample(sample("a", heard))
    at, fired = heard, None
    while fired is None and at < heard + timeout + 2 * tick:
        at += tick
        got = rc.tick(at)
        if got:
            assert brief(got) == [OFFLINE]
            fired = at
    assert fired is not None
    assert heard + timeout <= fired < heard + timeout + tick + 1e-9
    assert fired - heard < 100.0 + tick  # inside the fault budget, give or take a tick


@settings(deadline=None)  # its work grows with the drawn times: no per-example deadline
@given(
    st.floats(1.0, 99.0),
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60),  # gaps, as shares of the timeout
    st.floats(0.05, 5.0),
)
def test_a_node_heard_within_its_timeout_never_goes_offline(
    timeout: float, shares: list[float], tick: float
) -> None:
    rc = core(infos=nodes("a", supervision_s=timeout))
    at = 0.0
    rc.sample(sample("a", at))
    for share in shares:
        heard = at + share * timeout * 0.999
        while at + tick < heard:
            at += tick
            assert rc.tick(at) == []
        at = heard
        assert rc.sample(sample("a", at)) == []


def test_supervisor_refuses_a_zero_timeout() -> None:
    with pytest.raises(ValueError, match="timeouts > 0"):
        Supervisor([60.0, 0.0])
