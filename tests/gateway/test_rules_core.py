"""The rule core, table by table: node status words and pushed events to alerts, measurement
rules, walk-test mode and ordering. Time is the `at` of each input and of tick(at)."""

from __future__ import annotations

import pytest

from gateway.model import Priority, Silent
from gateway.rules import COUNTERS, RuleCore
from protocol import codes as c
from protocol import names
from protocol import registers as r

from .rules_kit import BUTTON, LEAKAGE, SMOKE, TEMPERATURE, brief, core, event, nodes, sample


def test_an_alarm_bit_alarms_at_the_first_sample_and_restores_after_the_debounce() -> None:
    rc = core()
    assert rc.sample(sample("a", 0.0)) == []
    [alarm] = rc.sample(sample("a", 1.0, SMOKE, smoke=3.1))
    assert (alarm.kind, alarm.node, alarm.house, alarm.zone) == ("alarm", "a", "h1", "z1")
    assert (alarm.source, alarm.detail, alarm.value, alarm.unit) == ("smoke", "", 3.1, "%/m")
    assert (alarm.at, alarm.priority, alarm.test) == (1.0, Priority.ALARM, False)
    assert rc.sample(sample("a", 2.0)) == []  # one clear poll: no quorum (2 of 3)
    assert rc.sample(sample("a", 3.0)) == []  # the quorum: off_s (5 s) starts here
    assert rc.tick(7.9) == []
    [restore] = rc.tick(8.0)
    assert brief([restore]) == [("restore", "a", "smoke", "alarm")]
    assert restore.priority == Priority.ALARM and restore.at == 8.0


def test_one_corrupted_poll_in_an_hour_neither_restores_nor_re_alarms() -> None:
    rc = core(infos=nodes("a"))
    alerts = []
    for t in range(3600):  # 1 Hz polls and ticks; poll 1800 read the bit clear (a bit error)
        alerts += rc.sample(sample("a", float(t), 0 if t == 1800 else LEAKAGE))
        alerts += rc.tick(t + 0.5)
    assert brief(alerts) == [("alarm", "a", "leakage", "")]


def test_each_source_bit_alarms_with_its_reading() -> None:
    rc = core()
    got = rc.sample(
        sample("a", 5.0, SMOKE | LEAKAGE | TEMPERATURE | BUTTON, smoke=2.5, leakage=350,
               temperature=61.5)
    )  # fmt: skip
    assert [(a.source, a.value, a.unit) for a in got] == [
        ("smoke", 2.5, "%/m"),
        ("leakage", 350.0, "mA"),
        ("temperature", 61.5, "degC"),
        ("button", None, ""),
    ]


FAULT_SOURCES = {
    c.FAULT_SMOKE_DIRTY: "smoke",
    c.FAULT_SMOKE_INPUT: "smoke",
    c.FAULT_CT_OPEN: "leakage",
    c.FAULT_TEMP_SENSOR: "temperature",
    c.FAULT_LOW_SUPPLY: "supply",
    c.FAULT_SELF_TEST: "node",
    c.FAULT_SAFE_MODE: "node",
    c.FAULT_CONFIG: "node",
}


@pytest.mark.parametrize("bit", sorted(names.FAULTS), ids=list(names.FAULTS.values()))
def test_fault_bits_raise_faults_by_name_and_restore(bit: int) -> None:
    rc = core()
    [fault] = rc.sample(sample("a", 0.0, faults=1 << bit))
    assert (fault.kind, fault.detail, fault.priority) == (
        "fault",
        names.FAULTS[bit],
        Priority.FAULT,
    )
    assert fault.source == FAULT_SOURCES[bit]
    assert rc.sample(sample("a", 1.0)) == [] and rc.sample(sample("a", 2.0)) == []
    assert brief(rc.tick(7.0)) == [("fault_restore", "a", FAULT_SOURCES[bit], names.FAULTS[bit])]


@pytest.mark.parametrize(
    ("smoke", "leakage", "source"),
    [(1.2, 220, "leakage"), (1.5, 100, "smoke"), (1.6, 240, "smoke"), (0.0, 0, "node")],
)
def test_a_polled_pre_alarm_is_named_by_the_largest_relative_reading(
    smoke: float, leakage: int, source: str
) -> None:
    # Against the default pre-alarm thresholds: 1.60 %/m and 240 mA (docs/registers.md).
    rc = core()
    [pre] = rc.sample(sample("a", 0.0, status=r.ST_PRE_ALARM, smoke=smoke, leakage=leakage))
    assert (pre.kind, pre.source, pre.priority) == ("pre_alarm", source, Priority.ALARM)
    assert rc.sample(sample("a", 1.0)) == [] and rc.sample(sample("a", 2.0)) == []
    assert brief(rc.tick(7.0)) == [("restore", "a", source, "pre_alarm")]


def test_no_pre_alarm_beside_an_alarm_but_one_after_it() -> None:
    rc = core()
    both = r.ST_ALARM | r.ST_PRE_ALARM
    assert brief(rc.sample(sample("a", 0.0, SMOKE, status=both, leakage=250))) == [
        ("alarm", "a", "smoke", "")
    ]
    assert rc.sample(sample("a", 1.0, status=r.ST_PRE_ALARM, leakage=250)) == []
    assert rc.sample(sample("a", 2.0, status=r.ST_PRE_ALARM, leakage=250)) == []
    assert brief(rc.tick(7.0)) == [
        ("restore", "a", "smoke", "alarm"),
        ("pre_alarm", "a", "leakage", ""),  # uncovered when the alarm restored
    ]


def test_silenced_is_raised_once_per_hush() -> None:
    rc = core()
    hushed = r.ST_ALARM | r.ST_SILENCED
    got = [
        rc.sample(sample("a", t, SMOKE | (LEAKAGE if t == 2 else 0),
                         status=hushed if 1 <= t <= 3 else None))
        for t in range(6)
    ]  # fmt: skip
    assert [brief(g) for g in got] == [
        [("alarm", "a", "smoke", "")],
        [("silenced", "a", "node", "")],
        [("alarm", "a", "leakage", "")],  # still hushed: not silenced again
        [],
        [],
        [],
    ]
    assert rc.sample(sample("a", 6.0, SMOKE, status=hushed))[0].priority == Priority.TELEMETRY


def test_an_event_seq_jump_with_nothing_visible_is_counted_only() -> None:
    rc = core()
    assert rc.sample(sample("a", 0.0, seq=7)) == []
    assert rc.sample(sample("a", 1.0, seq=9)) == []  # an alarm came and went between polls
    assert rc.sample(sample("a", 2.0, seq=9)) == []
    assert rc.counters["seq_jumps"] == 1
    assert rc.sample(sample("a", 3.0, SMOKE, seq=10)) != []
    assert rc.counters["seq_jumps"] == 1


def test_unknown_nodes_and_bits_are_counted() -> None:
    rc = core()
    assert rc.sample(sample("zz", 0.0, SMOKE)) == []
    assert rc.event(event("zz", 0.0, c.EV_ALARM, c.SRC_SMOKE)) == []
    assert rc.silent(Silent("zz", 0.0)) == []
    assert rc.sample(sample("a", 0.0, 1 << 9, faults=1 << 12)) == []
    assert rc.counters["unknown_nodes"] == 3 and rc.counters["unknown_bits"] == 1
    assert set(rc.counters) == set(COUNTERS)


# Pushed events (docs/protocol.md, Events) on a fresh core: what each becomes.
PUSH = [
    ("alarm-smoke", c.EV_ALARM, c.SRC_SMOKE, 0, 250,
     ("alarm", "smoke", "", 2.5, "%/m", Priority.ALARM)),
    ("alarm-cold", c.EV_ALARM, c.SRC_TEMPERATURE, 0, -55,
     ("alarm", "temperature", "", -5.5, "degC", Priority.ALARM)),
    ("alarm-button", c.EV_ALARM, c.SRC_BUTTON, 0, 0,
     ("alarm", "button", "", None, "", Priority.ALARM)),
    ("pre-alarm", c.EV_PRE_ALARM, c.SRC_LEAKAGE, 0, 260,
     ("pre_alarm", "leakage", "", 260.0, "mA", Priority.ALARM)),
    ("fault-ct", c.EV_FAULT, c.SRC_LEAKAGE, c.FAULT_CT_OPEN, 0,
     ("fault", "leakage", "ct_open_circuit", 0.0, "mA", Priority.FAULT)),
    ("fault-safe-mode", c.EV_FAULT, c.SRC_NODE, c.FAULT_SAFE_MODE, 0,
     ("fault", "node", "safe_mode", None, "", Priority.FAULT)),
    ("fault-unnamed", c.EV_FAULT, c.SRC_NODE, 11, 0,
     ("fault", "node", "fault_11", None, "", Priority.FAULT)),
    ("fault-restore", c.EV_RESTORE, c.SRC_NODE, 0x80 | c.FAULT_LOW_SUPPLY, 11900,
     ("fault_restore", "supply", "low_supply", None, "", Priority.FAULT)),
    ("restore-unheard-of", c.EV_RESTORE, c.SRC_SMOKE, 0, 10,
     ("restore", "smoke", "", 0.1, "%/m", Priority.ALARM)),
    ("button", c.EV_BUTTON, c.SRC_BUTTON, 0, 0,
     ("button", "button", "", None, "", Priority.TELEMETRY)),
    ("test-passed", c.EV_TEST, c.SRC_NODE, 0, 0,
     ("test", "node", "passed", None, "", Priority.TELEMETRY)),
    ("test-failed", c.EV_TEST, c.SRC_NODE, 1 << c.FAULT_CT_OPEN | 1 << c.FAULT_LOW_SUPPLY, 0,
     ("test", "node", "ct_open_circuit,low_supply", None, "", Priority.FAULT)),
    ("silenced", c.EV_SILENCED, c.SRC_NODE, 0, 0,
     ("silenced", "node", "", None, "", Priority.TELEMETRY)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("code", "source", "detail", "value", "want"), [p[1:] for p in PUSH], ids=[p[0] for p in PUSH]
)
def test_pushed_events_map_by_code(
    code: int, source: int, detail: int, value: int, want: tuple[object, ...]
) -> None:
    [got] = core().event(event("a", 3.0, code, source, detail, value))
    assert (got.kind, got.source, got.detail, got.value, got.unit, got.priority) == want
    assert got.at == 3.0 and got.node == "a"


def test_a_pushed_alarm_falls_to_pre_alarm_then_normal() -> None:
    rc = core()
    steps = [
        (c.EV_ALARM, 0, [("alarm", "a", "smoke", "")]),
        (c.EV_RESTORE, 1, [("restore", "a", "smoke", "alarm"), ("pre_alarm", "a", "smoke", "")]),
        (c.EV_RESTORE, 0, [("restore", "a", "smoke", "pre_alarm")]),
        (c.EV_RESTORE, 0, []),  # nothing left to restore
        (c.EV_PRE_ALARM, 0, [("pre_alarm", "a", "smoke", "")]),
        (c.EV_ALARM, 0, [("alarm", "a", "smoke", "")]),
        (c.EV_ALARM, 0, [("alarm", "a", "smoke", "")]),  # it restored and alarmed again
        (c.EV_PRE_ALARM, 0, [("restore", "a", "smoke", "alarm"), ("pre_alarm", "a", "smoke", "")]),
    ]
    for t, (code, detail, want) in enumerate(steps):
        assert brief(rc.event(event("a", float(t), code, c.SRC_SMOKE, detail))) == want, t
    assert rc.counters["unmatched_restores"] == 1


def test_fault_events_and_their_restores() -> None:
    rc = core()
    ct = c.FAULT_CT_OPEN
    assert brief(rc.event(event("a", 0.0, c.EV_FAULT, c.SRC_LEAKAGE, ct))) == [
        ("fault", "a", "leakage", "ct_open_circuit")
    ]
    assert rc.sample(sample("a", 0.5, faults=1 << ct, seq=1)) == []  # the heartbeat agrees
    assert brief(rc.event(event("a", 1.0, c.EV_RESTORE, c.SRC_NODE, 0x80 | ct))) == [
        ("fault_restore", "a", "leakage", "ct_open_circuit")
    ]
    assert rc.event(event("a", 2.0, c.EV_RESTORE, c.SRC_NODE, 0x80 | ct)) == []
    assert rc.counters["unmatched_restores"] == 1


def test_a_push_heartbeat_does_not_repeat_what_events_said() -> None:
    rc = core()
    alerts = rc.event(event("a", 0.0, c.EV_ALARM, c.SRC_LEAKAGE, 0, 400))
    alerts += rc.sample(sample("a", 0.5, LEAKAGE, seq=1, leakage=400))
    alerts += rc.event(event("a", 20.0, c.EV_RESTORE, c.SRC_LEAKAGE))
    for t in range(21, 60, 10):
        alerts += rc.sample(sample("a", float(t), seq=2))
        alerts += rc.tick(t + 5.0)
    assert brief(alerts) == [("alarm", "a", "leakage", ""), ("restore", "a", "leakage", "alarm")]


def test_a_heartbeat_older_than_the_events_received_is_skipped_once() -> None:
    rc = core()
    assert rc.sample(sample("a", 0.0, seq=5)) == []
    assert rc.event(event("a", 1.0, c.EV_ALARM, c.SRC_SMOKE))  # seq 6 on the node
    assert rc.event(event("a", 2.0, c.EV_RESTORE, c.SRC_SMOKE))  # seq 7
    # A heartbeat built between the two (seq 6, smoke on) arrives last: stale.
    assert rc.sample(sample("a", 3.0, SMOKE, seq=6)) == []
    assert rc.counters["stale_samples"] == 1
    # The next one is taken whatever its seq (a node that rebooted counts from 0 again).
    assert brief(rc.sample(sample("a", 4.0, SMOKE, seq=0))) == [("alarm", "a", "smoke", "")]


def test_bad_pushed_events_are_counted() -> None:
    rc = core()
    assert rc.event(event("a", 0.0, 99)) == []
    assert rc.event(event("a", 0.0, c.EV_ALARM, 9)) == []
    assert rc.counters["unknown_events"] == 2 and rc.counters["events"] == 2


def test_walk_test_mode_marks_every_alert() -> None:
    rc = core({"measure": [{"reading": "supply_v", "below": 11, "kind": "fault"}]})
    rc.test_mode = True
    got = rc.sample(sample("a", 0.0, SMOKE | BUTTON, faults=1, supply=10.0))
    got += rc.event(event("a", 1.0, c.EV_BUTTON, c.SRC_BUTTON))
    got += rc.tick(100.0)
    # 2 alarms, 2 faults (a FAULTS bit, the measurement rule), button, a and b offline
    assert len(got) == 7 and all(a.test for a in got)
    rc.test_mode = False
    assert not rc.sample(sample("a", 101.0, SMOKE | BUTTON, faults=1, supply=10.0))[0].test


def test_alerts_of_one_call_come_by_priority_then_as_decided() -> None:
    rc = core(infos=nodes("a", "b", "c"))
    got = rc.sample(sample("a", 0.0, LEAKAGE, faults=1 << c.FAULT_LOW_SUPPLY,
                           status=r.ST_ALARM | r.ST_SILENCED))  # fmt: skip
    assert [a.kind for a in got] == ["alarm", "fault", "silenced"]
    rc.sample(sample("b", 30.0))
    got = rc.tick(60.0)  # a and c offline (c never heard since the first input at 0)
    assert brief(got) == [("fault", "a", "node", "offline"), ("fault", "c", "node", "offline")]
    got = rc.sample(sample("c", 61.0, SMOKE))
    assert brief(got) == [("alarm", "c", "smoke", ""), ("fault_restore", "c", "node", "offline")]


def test_a_measured_alarm_goes_before_a_fault_of_the_same_sample() -> None:
    rc = core({"measure": [{"reading": "leakage_ma", "above": 500, "kind": "alarm"}]})
    got = rc.sample(sample("a", 0.0, faults=1 << c.FAULT_CT_OPEN, leakage=600))
    assert [a.kind for a in got] == ["alarm", "fault"]


def feed(rc: RuleCore) -> list[tuple[object, ...]]:
    out = []
    for t in range(200):
        at = float(t)
        bits = SMOKE if t % 37 < 9 else 0
        out += rc.sample(sample("ab"[t % 2], at, bits, faults=(t // 50) % 2, leakage=t * 3))
        if t % 23 == 0:
            out += rc.event(event("b", at, c.EV_BUTTON, c.SRC_BUTTON))
        out += rc.tick(at + 0.5)
    return [tuple(vars_of(a)) for a in out]


def vars_of(a: object) -> list[object]:
    return [getattr(a, f) for f in a.__slots__]  # type: ignore[attr-defined]


def test_the_same_inputs_give_the_same_alerts() -> None:
    rules = {
        "verify": [{"sources": ["smoke"], "retard_s": 4}],
        "coincidence": {"window_s": 30},
        "measure": [{"reading": "leakage_ma", "above": 300, "below": 250, "kind": "alarm"}],
    }
    first, second = feed(core(rules)), feed(core(rules))
    assert first == second and len(first) > 10


def test_offline_query() -> None:
    rc = core()
    rc.sample(sample("a", 0.0))
    rc.tick(60.0)
    assert rc.offline("a") and rc.offline("b")
    rc.sample(sample("a", 61.0))
    assert not rc.offline("a")


def test_measured_thresholds_with_hysteresis_and_delays() -> None:
    rc = core({"measure": [{"name": "leakage-high", "reading": "leakage_ma", "above": 500,
                            "below": 450, "kind": "alarm", "for_s": 2}]})  # fmt: skip
    readings = {0: 100, 1: 600, 2: 100, 3: 650, 4: 600, 5: 470, 6: 460, 7: 440, 8: 440, 9: 440}
    got = []
    for t, ma in readings.items():
        got += [
            (t, a.kind, a.detail, a.value) for a in rc.sample(sample("a", float(t), leakage=ma))
        ]
    # 600 for 1 s is a glitch; from 3 it holds 2 s; 470 and 460 are inside the band; below
    # 450 from 7, off_s (= for_s) later it restores.
    assert got == [(5, "alarm", "leakage-high", 470.0), (9, "restore", "leakage-high", 440.0)]
    assert rc.sample(sample("a", 10.0, leakage=440)) == []


def test_a_low_supply_rule_is_a_fault_with_its_release_level() -> None:
    rc = core({"measure": [{"reading": "supply_v", "below": 10.8, "release": 11.1,
                            "kind": "fault"}]})  # fmt: skip
    volts = [12.0, 10.7, 11.0, 11.2]
    got = [brief(rc.sample(sample("a", float(t), supply=v))) for t, v in enumerate(volts)]
    assert got == [
        [],
        [("fault", "a", "supply", "supply_v-below")],
        [],
        [("fault_restore", "a", "supply", "supply_v-below")],
    ]


@pytest.mark.parametrize(("per_min", "alarms"), [(9.5, True), (8.5, False)])
def test_a_rate_of_rise_rule(per_min: float, alarms: bool) -> None:
    rc = core({"measure": [{"reading": "temperature_c", "rate_per_min": 9, "kind": "alarm"}]})
    got = []
    for t in range(0, 120, 2):
        temperature = 20.0 + per_min * max(0, t - 30) / 60
        got += rc.sample(sample("a", float(t), temperature=temperature))
    if alarms:
        [alarm] = got
        assert (alarm.source, alarm.unit) == ("temperature", "degC/min")
        assert alarm.value == pytest.approx(9.5)
        assert 60 < alarm.at <= 92  # about a window (60 s) after the rise began at 30 s
    else:
        assert got == []
