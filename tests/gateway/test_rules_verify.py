"""Alarm verification (retard, then confirm) and coincidence (house or zone), with time
passed in: alarms held, confirmed, dropped and confirmed by a neighbour."""

from __future__ import annotations

from typing import Any

from gateway.model import Alert
from gateway.rules import RuleCore
from protocol import codes as c

from .rules_kit import BUTTON, LEAKAGE, SMOKE, brief, core, event, nodes, sample

SMOKE_10 = {"verify": [{"sources": ["smoke"], "retard_s": 10, "confirm_s": 60}]}


def run(
    rc: RuleCore, node: str, bits: dict[int, int], until: int, step: float = 1.0
) -> list[Alert]:
    """Poll `node` every step s from 0 to `until`, its bits as given per whole second (else
    the last ones), with a tick between polls."""
    out: list[Alert] = []
    current, k = 0, 0
    while k * step <= until:
        at = k * step
        current = bits.get(int(at), current) if at == int(at) else current
        out += rc.sample(sample(node, at, current, smoke=2.8 if current & SMOKE else 0.0))
        out += rc.tick(at + step / 2)
        k += 1
    return out


def test_without_verification_an_alarm_goes_at_once() -> None:
    assert brief(run(core(), "a", {3: SMOKE}, 3)) == [("alarm", "a", "smoke", "")]


def test_a_held_alarm_still_there_after_the_retard_is_confirmed_then() -> None:
    rc = core(SMOKE_10, nodes("a"))
    got = run(rc, "a", {3: SMOKE}, 30)
    assert brief(got) == [("alarm", "a", "smoke", "")]
    assert got[0].at == 13.0 and got[0].value == 2.8  # the reading when it appeared
    assert rc.counters["verified"] == 1


def test_the_retard_ends_on_a_tick_with_the_last_sample_held() -> None:
    rc = core(SMOKE_10, nodes("a"))
    assert rc.sample(sample("a", 0.0, SMOKE)) == []
    assert rc.tick(9.99) == []
    assert brief(rc.tick(10.0)) == [("alarm", "a", "smoke", "")]


def test_a_held_alarm_that_never_comes_back_is_dropped_and_its_restore_too() -> None:
    rc = core(SMOKE_10, nodes("a"))
    assert run(rc, "a", {3: SMOKE, 5: 0}, 200) == []
    assert rc.counters["unverified_dropped"] == 1 and rc.counters["verified"] == 0


def test_back_within_the_confirm_window_confirms_at_once() -> None:
    rc = core(SMOKE_10, nodes("a"))
    got = run(rc, "a", {3: SMOKE, 5: 0, 70: SMOKE}, 71)  # window: 13 .. 73
    assert brief(got) == [("alarm", "a", "smoke", "")] and got[0].at == 70.0


def test_back_after_the_window_is_a_new_alarm_held_again() -> None:
    rc = core(SMOKE_10, nodes("a"))
    got = run(rc, "a", {3: SMOKE, 5: 0, 80: SMOKE}, 100)
    assert [a.at for a in got] == [90.0]
    assert rc.counters["unverified_dropped"] == 1


def test_only_configured_sources_and_nodes_are_held_and_never_the_button() -> None:
    rules = {"verify": [{"sources": ["smoke", "leakage"], "retard_s": 30, "nodes": ["a"]}]}
    rc = core(rules, nodes("a", "b"))
    got = rc.sample(sample("a", 0.0, SMOKE | LEAKAGE | BUTTON))
    got += rc.sample(sample("b", 0.0, SMOKE))
    assert brief(got) == [("alarm", "a", "button", ""), ("alarm", "b", "smoke", "")]


def test_a_pushed_alarm_is_held_too() -> None:
    rc = core(SMOKE_10, nodes("a", supervision_s=90))
    assert rc.event(event("a", 0.0, c.EV_ALARM, c.SRC_SMOKE, 0, 300)) == []
    assert rc.event(event("a", 4.0, c.EV_RESTORE, c.SRC_SMOKE)) == []
    assert rc.tick(69.9) == [] and rc.tick(70.0) == []
    assert rc.counters["unverified_dropped"] == 1 and rc.counters["unmatched_restores"] == 0
    assert rc.event(event("a", 80.0, c.EV_ALARM, c.SRC_SMOKE, 0, 300)) == []
    [alarm] = rc.tick(90.0)
    assert (alarm.kind, alarm.value, alarm.at) == ("alarm", 3.0, 90.0)
    assert rc.event(event("a", 95.0, c.EV_ALARM, c.SRC_SMOKE)) != []  # a fresh one, forwarded


def test_a_pushed_alarm_back_in_the_window_is_confirmed() -> None:
    rc = core(SMOKE_10, nodes("a"))
    rc.event(event("a", 0.0, c.EV_ALARM, c.SRC_SMOKE))
    rc.event(event("a", 2.0, c.EV_RESTORE, c.SRC_SMOKE))
    assert rc.tick(10.0) == []
    assert brief(rc.event(event("a", 30.0, c.EV_ALARM, c.SRC_SMOKE))) == [
        ("alarm", "a", "smoke", "")
    ]


def coincidence(scope: str, window_s: float = 120) -> dict[str, Any]:
    return SMOKE_10 | {"coincidence": {"scope": scope, "window_s": window_s}}


def test_two_detectors_of_one_house_confirm_each_other_at_once() -> None:
    rc = core(coincidence("house"), nodes("a@h1/z1", "b@h1/z2", "x@h2/z1"))
    assert rc.sample(sample("a", 0.0, SMOKE)) == []
    assert rc.sample(sample("x", 1.0, SMOKE)) == []  # another house
    got = rc.sample(sample("b", 2.0, SMOKE))
    assert brief(got) == [("alarm", "a", "smoke", ""), ("alarm", "b", "smoke", "")]
    assert {a.at for a in got} == {2.0}
    assert rc.counters["coincidence_confirmed"] == 2
    assert brief(rc.tick(11.0)) == [("alarm", "x", "smoke", "")]  # its own retard


def test_zone_scope_groups_by_zone() -> None:
    rc = core(coincidence("zone"), nodes("a@h1/z1", "b@h1/z2", "x@h2/z1"))
    assert rc.sample(sample("a", 0.0, SMOKE)) == []
    assert rc.sample(sample("b", 1.0, SMOKE)) == []  # same house, another zone
    assert brief(rc.sample(sample("x", 2.0, SMOKE))) == [
        ("alarm", "a", "smoke", ""),
        ("alarm", "x", "smoke", ""),
    ]


def test_a_neighbour_alarm_older_than_the_window_confirms_nothing() -> None:
    rc = core(coincidence("house", window_s=30), nodes("a", "b"))
    assert run(rc, "a", {0: SMOKE, 2: 0}, 40) == []  # held, now in its confirm window
    assert rc.sample(sample("b", 41.0, SMOKE)) == []  # a's alarm was 41 s ago
    assert brief(rc.tick(51.0)) == [("alarm", "b", "smoke", "")]


def test_an_unverified_neighbour_alarm_confirms_a_held_one() -> None:
    rc = core(SMOKE_10 | {"coincidence": {}}, nodes("a", "b"))
    assert rc.sample(sample("a", 0.0, SMOKE)) == []
    assert brief(rc.sample(sample("b", 5.0, LEAKAGE))) == [
        ("alarm", "b", "leakage", ""),
        ("alarm", "a", "smoke", ""),
    ]


def test_a_measured_neighbour_alarm_confirms_a_held_one() -> None:
    rules = coincidence("house") | {
        "measure": [{"reading": "leakage_ma", "above": 500, "kind": "alarm", "nodes": ["b"]}]
    }
    rc = core(rules, nodes("a", "b"))
    assert rc.sample(sample("a", 0.0, SMOKE)) == []
    assert brief(rc.sample(sample("b", 3.0, leakage=700))) == [
        ("alarm", "b", "leakage", "leakage_ma-above"),
        ("alarm", "a", "smoke", ""),
    ]


def test_a_held_alarm_already_over_is_confirmed_and_restored_together() -> None:
    rc = core(coincidence("house"), nodes("a", "b"))
    assert run(rc, "a", {0: SMOKE, 2: 0}, 30) == []  # over, in its confirm window
    got = rc.sample(sample("b", 31.0, SMOKE))
    assert brief(got) == [
        ("alarm", "a", "smoke", ""),
        ("restore", "a", "smoke", "alarm"),
        ("alarm", "b", "smoke", ""),
    ]


def test_nodes_without_a_house_never_coincide() -> None:
    rc = core(coincidence("house"), nodes("a@-/z", "b@-/z") | nodes("p", "q", house=""))
    assert rc.sample(sample("p", 0.0, SMOKE)) == []
    assert rc.sample(sample("q", 1.0, SMOKE)) == []
    assert rc.counters["coincidence_confirmed"] == 0


def test_one_node_twice_is_no_coincidence() -> None:
    rules = {
        "verify": [{"sources": ["smoke", "temperature"], "retard_s": 10}],
        "coincidence": {},
    }
    rc = core(rules, nodes("a", "b"))
    assert rc.sample(sample("a", 0.0, SMOKE)) == []
    assert rc.sample(sample("a", 1.0, SMOKE | (1 << c.SRC_TEMPERATURE))) == []


def test_only_alarms_held_within_the_window_are_confirmed() -> None:
    rc = core(coincidence("house", window_s=30), nodes("a", "b", "c"))
    assert run(rc, "a", {0: SMOKE, 2: 0}, 34) == []  # held since 0, in its confirm window
    assert rc.sample(sample("c", 35.0, SMOKE)) == []  # a's alarm is 35 s old: no pair
    got = rc.sample(sample("b", 41.0, SMOKE))
    assert brief(got) == [("alarm", "b", "smoke", ""), ("alarm", "c", "smoke", "")]  # not a
