"""The MQTT scheme (docs/mqtt.md): topics, payload fields, schema version, command parsing."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gateway import messages as m
from gateway.model import Alert, Priority, Sample
from protocol import codes
from protocol import registers as r

WHERE: dict[str, Any] = {"site": "old-town-3", "gateway_id": "gw-7", "prefix": "firelane"}
UTC = 1_740_816_902.25  # 2025-03-01T08:15:02.250Z
NODES = frozenset({"house12-kitchen", "n1"})


def alert(**changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "kind": "alarm",
        "node": "house12-kitchen",
        "house": "12",
        "zone": "east",
        "source": "smoke",
        "detail": "",
        "value": 3.12,
        "unit": "%/m",
        "at": 1234.5,
        "priority": Priority.ALARM,
    }
    fields.update(changes)
    return Alert(**fields)


def doc(payload: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(payload)
    return parsed


def test_topics() -> None:
    t = m.Topics.of("firelane/district-3", "gw-7")
    assert t.event == "firelane/district-3/gw-7/event"
    assert t.status == "firelane/district-3/gw-7/status"
    assert t.command == "firelane/district-3/gw-7/command"
    assert t.command_result == "firelane/district-3/gw-7/command/result"
    assert t.node_state("n1") == "firelane/district-3/gw-7/node/n1/state"


@pytest.mark.parametrize(
    ("prefix", "gateway_id", "complaint"),
    [
        ("firelane", "", "gateway id is empty"),
        ("firelane", "gw/7", "one MQTT topic level"),
        ("firelane", "gw+", "one MQTT topic level"),
        ("firelane", "gw#", "one MQTT topic level"),
        ("", "gw", "prefix is empty"),
        ("$SYS", "gw", "broker's"),
        ("a//b", "gw", "non-empty"),
        ("a/#", "gw", "without + #"),
    ],
)
def test_bad_topic_parts_are_refused_with_the_reason(
    prefix: str, gateway_id: str, complaint: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        m.Topics.of(prefix, gateway_id)


def test_iso_utc_has_milliseconds_and_z() -> None:
    assert m.iso_utc(UTC) == "2025-03-01T08:15:02.250Z"
    assert m.iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert m.iso_utc(0.9999) == "1970-01-01T00:00:00.999Z"  # truncated, never a second ahead


def test_event_message_fields_topic_priority() -> None:
    out = m.event_message(alert(), event_id="e1", utc=UTC, **WHERE)
    assert out.topic == "firelane/gw-7/event"
    assert (out.priority, out.event_id, out.retain, out.coalesce) == (
        Priority.ALARM,
        "e1",
        False,
        False,
    )
    assert doc(out.payload) == {
        "schema": m.SCHEMA,
        "event_id": "e1",
        "utc": "2025-03-01T08:15:02.250Z",
        "gateway": "gw-7",
        "site": "old-town-3",
        "node": "house12-kitchen",
        "house": "12",
        "zone": "east",
        "kind": "alarm",
        "priority": "alarm",
        "source": "smoke",
        "detail": "",
        "value": 3.12,
        "unit": "%/m",
        "test": False,
    }
    assert m.SCHEMA == 1


def test_event_priority_follows_the_alert_and_non_finite_values_are_null() -> None:
    fault = alert(kind="fault", detail="offline", value=float("nan"), priority=Priority.FAULT)
    out = m.event_message(fault, event_id="e2", utc=UTC, **WHERE)
    assert out.priority is Priority.FAULT
    assert doc(out.payload)["value"] is None
    assert (
        doc(m.event_message(alert(value=None), event_id="e", utc=UTC, **WHERE).payload)["value"]
        is None
    )


def test_walk_test_events_say_so() -> None:
    out = m.event_message(alert(kind="button", test=True), event_id="e3", utc=UTC, **WHERE)
    assert doc(out.payload)["test"] is True


def test_stamp_adds_the_outbox_seq_after_the_schema_and_is_repeatable() -> None:
    out = m.event_message(alert(), event_id="e1", utc=UTC, **WHERE)
    stamped = m.stamp(out.payload, 41)
    assert stamped.startswith(b'{"schema":1,"seq":41,"event_id":"e1",')
    assert doc(stamped) == {**doc(out.payload), "seq": 41}
    assert m.stamp(out.payload, 41) == stamped  # a resend is the same bytes
    assert m.stamp(b"raw bytes", 41) == b"raw bytes"  # not ours: unchanged


def test_state_message_names_bits_and_units() -> None:
    sample = Sample(
        node="house12-kitchen",
        at=10.0,
        status=r.ST_ALARM | r.ST_SOUNDING,
        sources=1 << codes.SRC_SMOKE,
        faults=1 << codes.FAULT_LOW_SUPPLY,
        event_seq=7,
        smoke_pct_m=3.12,
        leakage_ma=40,
        temperature_c=23.1,
        supply_v=11.2,
    )
    out = m.state_message(
        "house12-kitchen",
        house="12",
        zone="east",
        sample=sample,
        online=True,
        last_seen_utc=UTC - 1,
        utc=UTC,
        **WHERE,
    )
    assert out.topic == "firelane/gw-7/node/house12-kitchen/state"
    assert (out.priority, out.event_id, out.retain, out.coalesce) == (
        Priority.TELEMETRY,
        None,
        True,
        True,
    )
    assert doc(out.payload) == {
        "schema": 1,
        "utc": "2025-03-01T08:15:02.250Z",
        "gateway": "gw-7",
        "site": "old-town-3",
        "node": "house12-kitchen",
        "house": "12",
        "zone": "east",
        "online": True,
        "last_seen": "2025-03-01T08:15:01.250Z",
        "status": ["alarm", "sounding"],
        "sources": ["smoke"],
        "faults": ["low_supply"],
        "node_seq": 7,
        "readings": {
            "smoke": {"value": 3.12, "unit": "%/m"},
            "leakage": {"value": 40, "unit": "mA"},
            "temperature": {"value": 23.1, "unit": "degC"},
            "supply": {"value": 11.2, "unit": "V"},
        },
    }


def test_state_of_a_node_never_heard_from() -> None:
    out = m.state_message(
        "house12-hall",
        house="12",
        zone="east",
        sample=None,
        online=False,
        last_seen_utc=None,
        utc=UTC,
        **WHERE,
    )
    d = doc(out.payload)
    assert (d["online"], d["last_seen"], d["status"], d["readings"]) == (False, None, [], {})


def test_status_and_offline_messages() -> None:
    online = m.status_message(
        utc=UTC,
        version="0.1.0",
        uptime_s=12.34567,
        outbox_depth={Priority.ALARM: 2, Priority.TELEMETRY: 5},
        buses={"/dev/ttyUSB0": {"nodes": 3}},
        uplink={"published": 9},
        **WHERE,
    )
    assert online.topic == "firelane/gw-7/status" and online.retain
    assert doc(online.payload) == {
        "schema": 1,
        "state": "online",
        "utc": "2025-03-01T08:15:02.250Z",
        "gateway": "gw-7",
        "site": "old-town-3",
        "version": "0.1.0",
        "uptime_s": 12.346,
        "outbox": {"alarm": 2, "fault": 0, "telemetry": 5},
        "buses": {"/dev/ttyUSB0": {"nodes": 3}},
        "uplink": {"published": 9},
    }
    will = m.offline_status(reason="connection_lost", utc=None, **WHERE)
    assert will.topic == online.topic and will.retain
    assert doc(will.payload) == {
        "schema": 1,
        "state": "offline",
        "reason": "connection_lost",
        "utc": None,
        "gateway": "gw-7",
        "site": "old-town-3",
    }


GOOD = [
    (b'{"id":"c1","command":"silence","node":"house12-kitchen"}', "c1", "silence"),
    (b'{"schema":1,"id":"c2","command":"self_test","node":"n1"}', "c2", "self_test"),
    (b'{"id":"c3","command":"reset_alarm","node":"n1"}', "c3", "reset_alarm"),
    (b'{"id":"c4","command":"identify","node":"n1"}', "c4", "identify"),
]


@pytest.mark.parametrize(("payload", "cid", "command"), GOOD, ids=[g[2] for g in GOOD])
def test_good_commands(payload: bytes, cid: str, command: str) -> None:
    parsed = m.parse_command(payload, NODES)
    assert (parsed.id, parsed.command) == (cid, command)
    assert parsed.node in NODES


def test_every_node_command_name_is_accepted() -> None:
    for name in m.COMMANDS:
        raw = json.dumps({"id": "x", "command": name, "node": "n1"}).encode()
        assert m.parse_command(raw, NODES).command == name


S = b'"command":"silence"'  # the usual command field, to keep the table narrow
BAD = [
    ("not-json", b"silence!", "bad JSON", None),
    ("not-utf8", b"\xff\xfe", "bad JSON", None),
    ("not-object", b'["silence"]', "JSON object", None),
    ("no-id", b'{%s,"node":"n1"}' % S, "missing id", None),
    ("empty-id", b'{"id":"",%s,"node":"n1"}' % S, "missing id", None),
    ("number-id", b'{"id":5,%s,"node":"n1"}' % S, "missing id", None),
    ("long-id", b'{"id":"%s",%s}' % (b"x" * 65, S), "id longer", None),
    ("bad-command", b'{"id":"c","command":"format","node":"n1"}', "unknown command 'format'", "c"),
    ("no-command", b'{"id":"c","node":"n1"}', "unknown command None", "c"),
    ("unknown-node", b'{"id":"c",%s,"node":"n9"}' % S, "unknown node 'n9'", "c"),
    ("no-node", b'{"id":"c",%s}' % S, "missing node", "c"),
    ("extra-field", b'{"id":"c",%s,"node":"n1","all":1}' % S, "unknown field 'all'", "c"),
    ("schema-2", b'{"schema":2,"id":"c",%s,"node":"n1"}' % S, "schema 2", "c"),
    ("schema-true", b'{"schema":true,"id":"c",%s,"node":"n1"}' % S, "schema True", "c"),
    ("too-long", b'{"id":"c","pad":"%s"}' % (b"x" * 1024), "longer than 1024", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "reason", "cid"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_commands_are_refused_with_the_reason(
    payload: bytes, reason: str, cid: str | None
) -> None:
    with pytest.raises(m.CommandError, match=re.escape(reason)) as caught:
        m.parse_command(payload, NODES)
    assert caught.value.command_id == cid
    assert reason in caught.value.reason


def test_command_result_messages() -> None:
    ok = m.command_result(
        "c1", status="ok", detail="", command="silence", node="n1", gateway_id="gw-7",
        prefix="firelane", utc=UTC,
    )  # fmt: skip
    assert ok.topic == "firelane/gw-7/command/result" and not ok.retain
    assert doc(ok.payload) == {
        "schema": 1,
        "id": "c1",
        "status": "ok",
        "detail": "",
        "command": "silence",
        "node": "n1",
        "utc": "2025-03-01T08:15:02.250Z",
        "gateway": "gw-7",
    }
    rejected = m.command_result(
        None, status="rejected", detail="bad JSON", command=None, node=None, gateway_id="gw-7",
        prefix="firelane", utc=UTC,
    )  # fmt: skip
    assert doc(rejected.payload)["id"] is None
    with pytest.raises(ValueError, match="ok, failed or rejected"):
        m.command_result(
            "c", status="done", detail="", command=None, node=None, gateway_id="g",
            prefix="p", utc=0,
        )  # fmt: skip
