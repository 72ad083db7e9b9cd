"""Properties of the whole rule core (hypothesis): alarms within their bounds, no alarm from
glitches shorter than a debounce, restores only after what they restore (and always once the
condition is gone), the walk-test flag on every alert."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import cycle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model import Alert, Silent
from gateway.rules import RuleCore
from protocol import codes as c
from protocol import registers as r

from .rules_kit import BUTTON, LEAKAGE, SMOKE, TEMPERATURE, core, event, nodes, sample

gaps = st.floats(0.01, 3.0)
times = st.lists(gaps, min_size=1, max_size=30)


@given(times, st.sampled_from([SMOKE, LEAKAGE, TEMPERATURE, BUTTON]), gaps)
def test_a_direct_alarm_goes_out_at_the_first_sample_that_shows_it(
    before: list[float], bit: int, gap: float
) -> None:
    rc = core()
    at = 0.0
    for g in before:
        at += g
        assert rc.sample(sample("a", at)) == []
        assert rc.tick(at + g / 2) == []
    got = rc.sample(sample("a", at + gap, bit))
    assert [(a.kind, a.at) for a in got] == [("alarm", at + gap)]


ON_S = 3.0


def test_on_s_never_delays_the_manual_button() -> None:
    rc = core({"debounce": {"on_s": ON_S}})
    assert [a.source for a in rc.sample(sample("a", 0.0, SMOKE | BUTTON))] == ["button"]
    assert [a.source for a in rc.tick(ON_S)] == ["smoke"]


@given(st.lists(gaps, min_size=1, max_size=30), st.floats(0.0, 0.99), st.floats(10, 200))
def test_no_alarm_from_a_glitch_shorter_than_on_s(
    inside: list[float], share: float, after: float
) -> None:
    rc = core({"debounce": {"on_s": ON_S}})
    got = rc.sample(sample("a", 0.0))
    start, end = 1.0, 1.0 + share * ON_S
    at = start
    for g in inside:  # samples and ticks while the bit shows
        got += rc.sample(sample("a", at, SMOKE))
        got += rc.tick(min(at + g / 3, end))
        at = min(at + g, end)
    got += rc.sample(sample("a", end))  # gone before on_s
    got += rc.tick(end + after)
    assert [a for a in got if a.kind == "alarm"] == []


@given(st.lists(gaps, min_size=1, max_size=40), st.floats(0.05, 2.0))
def test_a_condition_held_on_s_alarms_within_on_s_plus_a_tick(
    steps: list[float], tick: float
) -> None:
    rc = core({"debounce": {"on_s": ON_S}})
    alarms = first_alarm(rc, SMOKE, steps, tick, ON_S + tick + 0.01)
    assert alarms and ON_S - 1e-9 <= alarms[0].at - 1.0 <= ON_S + tick + 1e-9


def first_alarm(
    rc: RuleCore, bits: int, steps: list[float], tick: float, span: float
) -> list[Alert]:
    """The condition shown from t = 1 on by samples at the gaps in `steps` (cycled), with
    ticks every `tick` s in between, in time order, up to 1 + span; the alarms raised."""
    got = rc.sample(sample("a", 0.0))
    due = cycle(steps)
    next_sample, k, end = 1.0, 1, 1.0 + span
    while min(next_sample, 1.0 + k * tick) <= end:
        if next_sample <= 1.0 + k * tick:
            got += rc.sample(sample("a", next_sample, bits, leakage=700, smoke=3.0))
            next_sample += next(due)
        else:
            got += rc.tick(1.0 + k * tick)
            k += 1
    return [a for a in got if a.kind == "alarm"]


@settings(deadline=None)  # its work grows with the drawn times: no per-example deadline
@given(
    st.floats(1.0, 60.0),
    st.lists(st.floats(0.5, 20.0), min_size=1, max_size=20),
    st.floats(0.05, 2.0),
)
def test_a_verified_alarm_goes_out_within_the_retard_plus_a_tick(
    retard: float, steps: list[float], tick: float
) -> None:
    rc = core({"verify": [{"sources": ["smoke"], "retard_s": retard}]})
    alarms = first_alarm(rc, SMOKE, steps, tick, retard + tick + 0.01)
    assert alarms and retard - 1e-9 <= alarms[0].at - 1.0 <= retard + tick + 1e-9


FOR_S = 2.0
LEAK = {"measure": [{"reading": "leakage_ma", "above": 500, "below": 450, "kind": "alarm",
                     "for_s": FOR_S}]}  # fmt: skip


@given(st.lists(gaps, min_size=1, max_size=40), st.floats(0.05, 2.0))
def test_a_measured_condition_alarms_within_for_s_plus_a_tick(
    steps: list[float], tick: float
) -> None:
    alarms = first_alarm(core(LEAK), 0, steps, tick, FOR_S + tick + 0.01)
    assert alarms and FOR_S - 1e-9 <= alarms[0].at - 1.0 <= FOR_S + tick + 1e-9
    assert alarms[0].detail == "leakage_ma-above" and alarms[0].value == 700


@given(
    st.lists(st.tuples(gaps, st.integers(501, 5000)), min_size=1, max_size=20),
    st.floats(0.0, 0.99),
    st.integers(0, 449),
)
def test_no_measured_alarm_from_a_glitch_shorter_than_for_s(
    inside: list[tuple[float, int]], share: float, back: int
) -> None:
    rc = core(LEAK)
    got = rc.sample(sample("a", 0.0))
    end = 1.0 + share * FOR_S
    at = 1.0
    for g, value in inside:
        got += rc.sample(sample("a", at, leakage=value))
        got += rc.tick(min(at + g / 3, end))
        at = min(at + g, end)
    got += rc.sample(sample("a", end, leakage=back))
    got += rc.tick(end + 50)
    assert [a for a in got if a.kind == "alarm"] == []


# Random streams of everything: samples, pushed events, silent polls and ticks.
@dataclass(frozen=True)
class Step:
    what: str
    node: str = "a"
    gap: float = 0.0
    sources: int = 0
    faults: int = 0
    status: int = 0
    leakage: int = 0
    seq: int = 0
    code: int = 0
    source: int = 0
    detail: int = 0


names_ = st.sampled_from("abc")
steps = st.one_of(
    st.builds(Step, st.just("sample"), names_, gaps, sources=st.integers(0, 31),
              faults=st.integers(0, 255),
              status=st.sampled_from([0, r.ST_PRE_ALARM, r.ST_SILENCED]),
              leakage=st.integers(0, 900), seq=st.integers(0, 6)),
    st.builds(Step, st.just("event"), names_, gaps, code=st.integers(1, 7),
              source=st.integers(0, 5),
              detail=st.sampled_from([0, 1, 3, 0x80, 0x80 | c.FAULT_CT_OPEN, 0x87])),
    st.builds(Step, st.just("silent"), names_, gaps),
    st.builds(Step, st.just("tick"), gap=st.floats(0.1, 40.0)),
)  # fmt: skip
RULES: list[dict[str, Any]] = [
    {},
    LEAK,
    {"verify": [{"sources": ["smoke", "leakage"], "retard_s": 5}], "coincidence": {}} | LEAK,
    {"debounce": {"on_s": 1, "off_s": 0, "restore_n": 1, "restore_m": 1}},
]


def play(rc: RuleCore, stream: list[Step]) -> tuple[list[Alert], float]:
    got: list[Alert] = []
    at = 0.0
    for name in "abc":  # every node known first: a restore can only follow what it restores
        got += rc.sample(sample(name, at))
    for s in stream:
        at += s.gap
        if s.what == "sample":
            status = s.status | (r.ST_ALARM if s.sources else 0)
            got += rc.sample(sample(s.node, at, s.sources, s.faults, status, s.seq, 3.0, s.leakage))
        elif s.what == "event":
            got += rc.event(event(s.node, at, s.code, s.source, s.detail, 100))
        elif s.what == "silent":
            got += rc.silent(Silent(s.node, at))
        else:
            got += rc.tick(at)
    return got, at


def calm(rc: RuleCore, at: float) -> list[Alert]:
    """Everything back to normal and heard again: every node reads clear, time passes."""
    got: list[Alert] = []
    for phase in (0.0, 80.0):
        for k in range(1, 5):
            for name in "abc":
                got += rc.sample(sample(name, at + phase + k, seq=99))
        got += rc.tick(at + phase + 20.0)
    return got


@settings(deadline=None)  # its work grows with the drawn times: no per-example deadline
@given(st.sampled_from(RULES), st.lists(steps, max_size=60))
def test_restores_follow_what_they_restore_and_calm_closes_everything(
    rules: dict[str, Any], stream: list[Step]
) -> None:
    rc = core(rules, nodes("a", "b", "c"))
    got, at = play(rc, stream)
    got += calm(rc, at)
    level: dict[tuple[str, str], int] = {}  # (node, source or rule): 0, 1 pre-alarm, 2 alarm
    faults: set[tuple[str, str]] = set()
    for a in got:
        key = (a.node, a.source if a.detail in ("", "alarm", "pre_alarm") else a.detail)
        if a.kind == "alarm":
            level[key] = 2
        elif a.kind == "pre_alarm":
            level[key] = 1
        elif a.kind == "restore":
            assert level.get(key) == (1 if a.detail == "pre_alarm" else 2), a
            level[key] = 0
        elif a.kind == "fault":
            faults.add((a.node, a.detail))
        elif a.kind == "fault_restore":
            assert (a.node, a.detail) in faults, a
            faults.remove((a.node, a.detail))
    assert not any(level.values()) and not faults  # nothing left hanging
    assert [a.at for a in got] == sorted(a.at for a in got)  # decided in time order
    assert all(not a.test for a in got)


@settings(deadline=None)  # its work grows with the drawn times: no per-example deadline
@given(st.sampled_from(RULES), st.lists(steps, max_size=40))
def test_walk_test_mode_flags_every_alert(rules: dict[str, Any], stream: list[Step]) -> None:
    rc = core(rules, nodes("a", "b", "c"))
    rc.test_mode = True
    got = rc.event(event("a", 0.0, c.EV_BUTTON, c.SRC_BUTTON))
    more, at = play(rc, stream)
    got += more + calm(rc, at)
    assert got and all(a.test for a in got)
