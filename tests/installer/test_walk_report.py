"""installer/walklog.py and installer/report.py: what a walk test records from the gateway's
readings and alerts, what it shows live, and the report it writes (Markdown and CSV)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from gateway.config import GatewayConfig, parse
from gateway.model import Alert, Priority, Sample, Silent
from installer import report
from installer.walklog import FAILED, PARTLY, TESTED, WalkLog
from protocol import registers as r

T0 = 1_764_486_000.0  # 2025-11-30 07:00:00 UTC


def config(tmp: Path) -> GatewayConfig:
    nodes = [
        {"name": f"n{i}", "bus": "b", "address": i, "house": f"H{i}", "zone": "z"}
        for i in (1, 2, 3)
    ]
    return parse(
        {
            "site": "Old Town",
            "gateway_id": "gw-1",
            "storage": {"path": str(tmp / "db")},
            "mqtt": {"host": "h"},
            "buses": [{"name": "b", "kind": "rtu", "port": "/dev/ttyX"}],
            "nodes": nodes,
        },
        check_paths=False,
    )


def sample(node: str, status: int = 0, sources: int = 0, faults: int = 0) -> Sample:
    return Sample(node, 0.0, status, sources, faults, 0, 0.25, 12, 21.5, 11.9)


def alert(kind: str, node: str, source: str, detail: str = "", value: float | None = None) -> Alert:
    return Alert(kind, node, f"H{node[-1]}", "z", source, detail, value, "%/m", 0.0,
                 Priority.ALARM, True)  # fmt: skip


@pytest.fixture
def walk(tmp_path: Path) -> WalkLog:
    log = WalkLog(config(tmp_path), ("smoke", "leakage", "button"))
    log.started = T0
    return log


def test_live_lines_name_the_node_house_and_zone_and_say_test(walk: WalkLog) -> None:
    first = walk.reading(sample("n1"), T0 + 1)
    assert first is not None and first.endswith("seen      n1 (house H1, zone z)  answers")
    assert walk.reading(sample("n1"), T0 + 2) is None
    line = walk.alert(alert("alarm", "n1", "smoke", value=3.5), T0 + 3)
    assert line is not None and line.split()[1] == "TEST"
    assert line.endswith("n1 (house H1, zone z)  alarm smoke  3.5 %/m")
    real = walk.alert(Alert("fault", "n2", "H2", "z", "node", "offline", None, "", 0.0,
                            Priority.FAULT), T0 + 4)  # fmt: skip
    assert real is not None and " REAL " in real and "fault node (offline)" in real
    running = walk.reading(sample("n1", status=r.ST_TEST), T0 + 5)
    assert running is not None and running.endswith("self-test running")
    assert walk.reading(sample("unknown"), T0) is None


def test_what_counts_as_tested(walk: WalkLog) -> None:
    for item in (sample("n1"), sample("n2")):
        walk.reading(item, T0)
    walk.alert(alert("pre_alarm", "n1", "smoke"), T0)
    assert walk.nodes["n1"].tested["smoke"] == PARTLY
    walk.alert(alert("alarm", "n1", "smoke"), T0)
    walk.alert(alert("pre_alarm", "n1", "smoke"), T0)  # a later pre-alarm keeps the alarm
    assert walk.nodes["n1"].tested["smoke"] == TESTED
    walk.alert(alert("alarm", "n1", "button"), T0)
    walk.alert(alert("button", "n2", "button"), T0)
    assert walk.nodes["n1"].tested["button"] == walk.nodes["n2"].tested["button"] == TESTED
    walk.alert(alert("test", "n2", "node", "self_test_failed"), T0)
    assert walk.nodes["n2"].tested["self_test"] == FAILED
    walk.alert(alert("fault", "n2", "leakage", "ct_open_circuit"), T0)
    walk.alert(alert("fault", "n2", "smoke", "smoke_input"), T0)
    walk.alert(alert("fault_restore", "n2", "smoke", "smoke_input"), T0)
    assert walk.nodes["n2"].faults_seen == ["ct_open_circuit", "smoke_input"]
    assert walk.nodes["n2"].faults_present == {"ct_open_circuit"}


def test_polls_and_answers(walk: WalkLog) -> None:
    walk.reading(Silent("n3", 0.0), T0)
    walk.reading(Silent("n3", 0.0), T0)
    walk.reading(sample("n1"), T0)
    assert (walk.nodes["n3"].polls, walk.nodes["n3"].answers) == (2, 0)
    assert (walk.nodes["n1"].polls, walk.nodes["n1"].answers) == (1, 1)
    assert not walk.nodes["n3"].seen and walk.nodes["n1"].seen


def test_todo_in_the_order_to_do_it(walk: WalkLog) -> None:
    assert report.todo(walk.nodes["n3"], walk.required)[0].startswith(
        "never answered: check its power and the A/B wiring, and that it has address 3"
    )
    n1 = walk.nodes["n1"]
    walk.reading(sample("n1", status=r.ST_ALARM, sources=1 << 4, faults=1 << 2), T0)
    walk.alert(alert("pre_alarm", "n1", "smoke"), T0)
    walk.alert(alert("alarm", "n1", "leakage"), T0)
    assert report.todo(n1, walk.required) == [
        "smoke: reached pre-alarm only: hold the smoke tester (aerosol) to the detector until "
        "the node alarms",
        "button: not tested: press the manual call point (hold it 1 s), then reset it",
        "fault ct_open_circuit: check the current transformer's plug",
        "still in alarm (button) at the end: clear the cause and reset it (the call point "
        "latches until a reset_alarm command)",
    ]


def finished(walk: WalkLog) -> WalkLog:
    """n1 fully tested, n2 seen with smoke only, n3 never heard."""
    walk.reading(sample("n1"), T0 + 1)
    walk.reading(sample("n2"), T0 + 1)
    for src in ("smoke", "leakage", "button"):
        walk.alert(alert("alarm", "n1", src), T0 + 2)
    walk.alert(alert("alarm", "n2", "smoke"), T0 + 3)
    walk.finish(T0 + 600)
    return walk


def test_csv_has_a_row_per_configured_node(walk: WalkLog) -> None:
    rows = list(csv.DictReader(io.StringIO(report.render_csv(finished(walk)))))
    assert [row["node"] for row in rows] == ["n1", "n2", "n3"]
    n1, n2, n3 = rows
    assert n1["complete"] == "yes" and n1["todo"] == ""
    assert (n1["smoke"], n1["leakage"], n1["button"], n1["self_test"]) == (
        "tested", "tested", "tested", "no",
    )  # fmt: skip
    assert (n1["smoke_pct_m"], n1["leakage_ma"], n1["temperature_c"], n1["supply_v"]) == (
        "0.25", "12", "21.5", "11.90",
    )  # fmt: skip
    assert n2["complete"] == "no" and n2["todo"].startswith("leakage: not tested")
    assert n3["seen"] == "no" and n3["smoke_pct_m"] == "" and "never answered" in n3["todo"]
    assert list(rows[0]) == list(report.CSV_FIELDS)
    assert not report.complete(walk)


def test_markdown_report(walk: WalkLog) -> None:
    up = report.Upstream(True, 12, 0)
    text = report.render_markdown(finished(walk), up)
    assert text.startswith("# Walk test: Old Town (gateway gw-1)\n")
    assert "- From 2025-11-30 07:00:00 UTC to 2025-11-30 07:10:00 UTC (10.0 min)" in text
    assert "- Nodes commissioned: 1 of 3" in text
    assert "reached the broker; 12 messages published (every event marked test)" in text
    assert (
        "| n1 | 1 | H1 | z | yes | tested | tested | no | tested | no | 0.25 | 12 | 21.5 |" in text
    )
    assert "- **n2** (address 2, house H2, zone z)\n  - leakage: not tested" in text
    assert "- **n1**" not in text


def test_a_complete_walk_and_the_files(tmp_path: Path, walk: WalkLog) -> None:
    walk.reading(sample("n1"), T0)
    for name in ("n1", "n2", "n3"):
        walk.reading(sample(name), T0)
        for src in ("smoke", "leakage", "button"):
            walk.alert(alert("alarm", name, src), T0)
    walk.finish(T0 + 60)
    assert report.complete(walk)
    md, table = report.write(tmp_path / "out", walk, report.Upstream(False, 0, 7, "refused"))
    assert md.name == "walktest-gw-1-20251130-070000.md" and table.suffix == ".csv"
    text = md.read_text()
    assert "Nothing: every node answered and passed every required test." in text
    assert "NEVER reached the broker; 0 messages published" in text and "7 still waiting" in text


def test_unknown_required_kinds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        WalkLog(config(tmp_path), ("smoke", "fire"))
