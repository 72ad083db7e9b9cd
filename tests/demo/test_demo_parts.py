"""`firelane demo`'s parts that need no process: the options, the script, the centre's picture
and its rendering, the broker URL, the gateway config it writes, and the embedded broker.
The demo end to end is hil_tests/test_demo.py."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import aiomqtt
import pytest

from demo import story
from demo.broker import EmbeddedBroker, parse_mqtt_url
from demo.cli import run as cli_run
from demo.rig import BrokerAddress, NodeSpec, gateway_config
from demo.view import Picture, frame, node_table, summary
from gateway.cli import build_parser, main
from gateway.config import load


# --- options ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "3"], "firelane demo: error: argument --nodes: 3 is outside 4..32"),
        (["--nodes", "eight"], "argument --nodes: 'eight' is not a whole number"),
        (["--baud", "12345"], "argument --baud: '12345' is not a node baud rate: one of 9600"),
        (["--duration", "5"], "argument --duration: 5 s is outside 15..600 s"),
        (["--duration", "nan"], "argument --duration: nan s is outside"),
        (["--mode", "shout"], "argument --mode: invalid choice: 'shout'"),
        (["--mqtt", "http://x:1"], "argument --mqtt: 'http://x:1' has scheme 'http'"),
        (["--mqtt", "mqtt://:1883"], "names no host"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_a_bad_option_exits_2_naming_it(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: firelane"), err
    assert message in err, err


def test_the_command_exits_2_on_a_bad_option_before_starting_anything() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--duration", "9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert done.stdout == "", done.stdout
    assert "firelane demo: error: argument --duration: 9 s is outside 15..600 s" in done.stderr


def test_outside_a_source_checkout_it_says_so_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("demo.rig.ROOT", tmp_path)
    args = build_parser().parse_args(["demo"])
    assert cli_run(args) == 2
    out = capsys.readouterr().out
    assert "needs a Firelane source checkout" in out and "make demo" in out


def test_the_tour_is_still_there(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--tour"]) == 0
    assert "every check passed" in capsys.readouterr().out


def test_mqtt_urls() -> None:
    assert parse_mqtt_url("mqtt://broker.lan") == BrokerAddress("broker.lan", 1883)
    assert parse_mqtt_url("mqtt://u:p%40ss@10.0.0.2:8883") == BrokerAddress(
        "10.0.0.2", 8883, "u", "p@ss"
    )
    for bad in ("broker:1883", "mqtts://h", "mqtt://h:99999", "mqtt://h/topic"):
        with pytest.raises(ValueError, match="mqtt://"):
            parse_mqtt_url(bad)


# --- the script ---------------------------------------------------------------------------
def test_the_cast_takes_four_distinct_nodes_for_every_size() -> None:
    for n in range(story.MIN_NODES, story.MAX_NODES + 1):
        c = story.cast(n)
        parts = [c.smoke, c.leakage, c.power, c.button]
        assert len(set(parts)) == 4 and all(1 <= a <= n for a in parts), (n, c)
    assert story.cast(8) == story.Cast(smoke=1, leakage=3, power=6, button=8)


def test_the_script_scales_to_the_duration_and_expects_five_events() -> None:
    short = story.script(8, 15, 10)
    nominal = story.script(8, 30, 10)
    assert [s.at_s for s in short] == [s.at_s / 2 for s in nominal]
    assert max(s.at_s for s in nominal) < 30
    assert nominal[-1].request == {"set": {"button": True}}  # broken glass: stays pressed
    keys = [e.key for e in story.expectations(nominal)]
    assert keys == [
        "smoke-alarm",
        "leakage-pre-alarm",
        "leakage-alarm",
        "offline-fault",
        "button-alarm",
    ]
    fault = story.expectations(nominal)[3]
    assert fault.bound_s == 10 + story.FAULT_MARGIN_S and fault.detail == "offline"
    with pytest.raises(ValueError, match="duration"):
        story.script(8, 10, 10)


# --- the centre's picture -----------------------------------------------------------------
BASE = "firelane/demo-abc/"


def _event(node: str, kind: str, source: str, detail: str = "") -> bytes:
    doc = {"node": node, "kind": kind, "source": source, "detail": detail, "value": 3.5}
    return json.dumps({**doc, "unit": "%/m"}).encode()


def _state(node: str, online: bool, status: list[str], sources: list[str]) -> bytes:
    readings = {"smoke": {"value": 3.5, "unit": "%/m"}, "leakage": {"value": 0, "unit": "mA"}}
    doc = {"node": node, "online": online, "status": status, "sources": sources}
    return json.dumps({**doc, "faults": [], "readings": readings}).encode()


def _picture() -> tuple[Picture, list[story.Step]]:
    steps = story.script(4, 30, 10)
    rows = [(story.node_name(a), story.house(a)) for a in range(1, 5)]
    return Picture(rows, "demo-abc", "firelane", story.expectations(steps)), steps


def test_an_event_counts_only_after_the_step_that_causes_it() -> None:
    picture, steps = _picture()
    picture.start(100.0)
    # node-1's smoke alarm before the fire was lit: not the scripted one.
    picture.on_message(BASE + "event", _event("node-1", "alarm", "smoke"), 100.2)
    lines = picture.on_step(steps[0], 101.0)
    assert lines == [f"   1.00 s  story     {steps[0].text}"]
    (line,) = picture.on_message(BASE + "event", _event("node-1", "alarm", "smoke"), 103.5)
    assert "alarm" in line and "latency  2.50 s (bound 10 s)" in line
    smoke = picture.outcomes[0]
    assert smoke.latency == pytest.approx(2.5) and smoke.verdict == "ok"
    assert [a.event["node"] for a in picture.unscripted_alarms()] == ["node-1"]


def test_an_event_received_twice_counts_once() -> None:
    picture, steps = _picture()
    picture.start(0.0)
    picture.on_step(steps[0], 1.0)
    doc = {**json.loads(_event("node-1", "alarm", "smoke")), "event_id": "3f0c"}
    assert picture.on_message(BASE + "event", json.dumps(doc).encode(), 3.0)
    assert picture.on_message(BASE + "event", json.dumps(doc).encode(), 4.0) == []
    assert picture.outcomes[0].latency == 2.0 and picture.kinds == {"alarm": 1}
    assert picture.duplicates == 1 and not picture.unscripted_alarms()


def test_state_messages_fill_the_table_and_log_changes_only() -> None:
    picture, _ = _picture()
    for n in range(1, 5):  # before the story: taken in, not logged
        assert (
            picture.on_message(BASE + f"node/node-{n}/state", _state(f"node-{n}", True, [], []), 1)
            == []
        )
    assert picture.all_online()
    picture.start(10.0)
    assert picture.on_message(BASE + "node/node-2/state", _state("node-2", True, [], []), 11) == []
    lines = picture.on_message(
        BASE + "node/node-1/state", _state("node-1", True, ["alarm", "sounding"], ["smoke"]), 12
    )
    assert lines == ["   2.00 s  node      node-1   online   ALARM smoke"]
    assert "3.50" in node_table(picture)[1]
    # Supervision's fault marks the node offline at once; a foreign topic is ignored.
    picture.on_message(BASE + "event", _event("node-3", "fault", "node", "offline"), 13)
    assert picture.rows["node-3"].link == "OFFLINE"
    assert (
        picture.on_message("firelane/other-gw/event", _event("node-4", "alarm", "smoke"), 14) == []
    )


def test_the_summary_says_what_arrived_in_time() -> None:
    picture, steps = _picture()
    picture.start(0.0)
    for step in steps:
        picture.on_step(step, step.at_s)
    for outcome in picture.outcomes[:-1]:
        e = outcome.expect
        picture.on_message(
            BASE + "event",
            _event(e.node, e.kind, e.source or "node", e.detail or ""),
            (outcome.driven_at or 0) + (12.0 if e.key == "leakage-alarm" else 2.0),
        )
    lines, ok = summary(picture)
    assert not ok
    text = "\n".join(lines)
    assert re.search(r"smoke alarm, node-1 +yes +2\.00 s +10 s \(EN 54-2\) +ok", text), text
    assert re.search(r"leakage alarm, node-2 +yes +12\.00 s .* LATE", text), text
    assert re.search(r"call point alarm, node-4 +no +- .* MISSING", text), text
    assert "3 of 5 scripted events arrived in time" in text
    picture.on_message(BASE + "event", _event("node-4", "alarm", "button"), steps[-1].at_s + 1)
    picture.close()
    picture.on_message(BASE + "event", _event("node-4", "alarm", "button"), 99)  # too late


def test_an_alarm_nobody_scripted_fails_the_demo() -> None:
    picture, steps = _picture()
    picture.start(0.0)
    for step in steps:
        picture.on_step(step, step.at_s)
    for outcome in picture.outcomes:
        e = outcome.expect
        picture.on_message(
            BASE + "event",
            _event(e.node, e.kind, e.source or "node", e.detail or ""),
            (outcome.driven_at or 0) + 1.0,
        )
    assert summary(picture)[1]  # every scripted event in time, nothing else: ok
    picture.on_message(BASE + "event", _event("node-2", "alarm", "temperature"), 20.0)
    lines, ok = summary(picture)
    assert not ok
    assert "FALSE ALARM: 1 alarm(s) nobody scripted: node-2 temperature" in "\n".join(lines)


def test_the_frame_fits_the_terminal() -> None:
    picture, steps = _picture()
    picture.start(0.0)
    for step in steps:
        picture.on_step(step, step.at_s)
    lines = frame(picture, 5.0, "header " * 40, width=60, height=20)
    assert len(lines) <= 19 and all(len(line) <= 59 for line in lines)
    assert "\x1b" not in "".join(lines)


def test_a_short_terminal_shows_the_nodes_with_news_first() -> None:
    rows = [(story.node_name(a), story.house(a)) for a in range(1, 33)]
    picture = Picture(rows, "demo-abc", "firelane", [])
    for n in range(1, 33):
        alarm = n == 30
        doc = _state(f"node-{n}", True, ["alarm"] if alarm else [], ["smoke"] if alarm else [])
        picture.on_message(BASE + f"node/node-{n}/state", doc, 1.0)
    picture.start(0.0)
    lines = frame(picture, 5.0, "header", width=120, height=24)
    assert len(lines) <= 23
    assert any(line.startswith("node-30 ") and "ALARM smoke" in line for line in lines)
    assert any("more nodes, online and normal" in line for line in lines)
    assert lines[-1].startswith("UPSTREAM") or "(none yet)" in lines[-1]


# --- the gateway config -------------------------------------------------------------------
@pytest.mark.parametrize("push", [False, True])
def test_the_gateway_config_passes_the_gateways_own_checks(tmp_path: Path, push: bool) -> None:
    nodes = [
        NodeSpec(
            story.node_name(a), a, story.house(a), story.zone(a, 4), b"k" * 16 if push else None
        )
        for a in range(1, 5)
    ]
    serial = tmp_path / "tty"
    serial.touch()
    text = gateway_config(
        workdir=tmp_path,
        serial=serial,
        broker=BrokerAddress("127.0.0.1", 1883, "user", 'pa"ss'),
        gateway_id="demo-abc123",
        site="Lantern Lane (demo)",
        baud=19200,
        push=push,
        nodes=nodes,
        supervision_s=12 if push else 10,
    )
    (tmp_path / "gateway.toml").write_text(text)
    config = load(tmp_path / "gateway.toml", check_paths=False)
    assert [n.name for n in config.nodes] == ["node-1", "node-2", "node-3", "node-4"]
    assert config.buses[0].kind == ("push" if push else "rtu")
    assert config.mqtt.password == 'pa"ss'
    if push:
        assert [n.node_id for n in config.nodes] == [0x1A000001, 0x1A000002, 0x1A000003, 0x1A000004]
        assert tomllib.loads(text)["nodes"][0]["key"] == (b"k" * 16).hex()


# --- the embedded broker ------------------------------------------------------------------
def test_the_embedded_broker_relays_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    """Under filterwarnings=error: amqtt warns about nothing that reaches the demo, and
    prints nothing."""

    async def scenario() -> bytes:
        async with EmbeddedBroker() as broker:
            assert broker.port is not None
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                await client.publish("firelane/x/status", b"online", qos=1, retain=True)
                await client.subscribe("firelane/#", qos=1)
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    return message.payload
        raise AssertionError("no message")

    assert asyncio.run(scenario()) == b"online"
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)
