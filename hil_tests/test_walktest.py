"""`firelane walktest` end to end: emulated nodes (real firmware) on a virtual RS-485 bus, the
walk test as a child process (the gateway runs inside it, in test mode), a real mosquitto and a
subscriber standing in for the centre.

A scripted walk: the smoke tester at node-1, its call point held (an alarm that latches) and
reset from the centre, a smoke test at node-2, while node-3 is configured but not there. Each
activation is shown live with house and zone; every event that reaches the centre is marked
test; Ctrl-C writes a report that says which node is done and what is left for the others.
The longer walk (marked slow) adds a leakage test and a self-test command, finishes every
present node, and stops by --duration.
"""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest

from hil_tests.bus.virtual_bus import VirtualBus
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.gateway_kit import GATEWAY, PREFIX, write_config
from hil_tests.installer_kit import LiveCommand, firelane, no_traceback, nodes_on_bus, uid
from tests.gateway.mosquitto import Mosquitto
from tests.gateway.subscriber import Collector, Received

BAUD = 19200
NODES = [
    ("node-1", 1, "1 Lantern Lane", "east"),
    ("node-2", 2, "2 Lantern Lane", "east"),
    ("node-3", 3, "3 Lantern Lane", "west"),  # configured, never installed
]
STEP_S = 20.0  # the most one activation may take to show (a loaded 2-core machine)


@pytest.fixture
def bus() -> Iterator[VirtualBus]:
    with VirtualBus(BAUD) as b:
        yield b


@pytest.fixture
def emus(tmp_path: Path, bus: VirtualBus) -> Iterator[list[EmulatorProcess]]:
    with nodes_on_bus(tmp_path, bus, [(1, uid(1)), (2, uid(2))]) as e:
        yield e


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as m:
        yield m


def config(tmp_path: Path, bus: VirtualBus, broker: Mosquitto) -> Path:
    return write_config(
        tmp_path, broker.port, bus.attach("laptop"), NODES, site="Lantern Lane", baud=BAUD
    )


def shows(node: str, *words: str) -> Callable[[str], bool]:
    return lambda line: node in line and all(w in line for w in words)


def events(got: list[Received]) -> list[dict[str, object]]:
    return [m.json() for m in got if m.topic == f"{PREFIX}/{GATEWAY}/event"]


def report(directory: Path) -> tuple[str, dict[str, dict[str, str]]]:
    (md,) = directory.glob("walktest-*.md")
    (table,) = directory.glob("walktest-*.csv")
    with table.open(newline="") as f:
        rows = {row["node"]: row for row in csv.DictReader(f)}
    return md.read_text(), rows


async def command(port: int, name: str, node: str, cid: str) -> None:
    """The centre sends a command (QoS 1, not retained)."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        doc = {"id": cid, "command": name, "node": node}
        await client.publish(f"{PREFIX}/{GATEWAY}/command", json.dumps(doc), qos=1)


async def wait(walk: LiveCommand, match: Callable[[str], bool], what: str) -> str:
    return await asyncio.to_thread(walk.wait_line, match, STEP_S, what)


def test_a_walk_test_shows_each_activation_marks_it_test_and_reports_what_is_left(
    tmp_path: Path, bus: VirtualBus, emus: list[EmulatorProcess], broker: Mosquitto
) -> None:
    cfg = config(tmp_path, bus, broker)
    out = tmp_path / "report"
    walk = LiveCommand(
        "walktest", "--config", str(cfg), "--report", str(out), "--require", "smoke,button",
        log=tmp_path / "walktest.stderr",
    )  # fmt: skip
    node1, node2 = emus

    async def scenario() -> list[Received]:
        async with Collector(broker.port, f"{PREFIX}/{GATEWAY}/#") as centre:
            await wait(walk, shows("node-1", "seen", "1 Lantern Lane", "east"), "node-1 seen")
            await wait(walk, shows("node-2", "seen"), "node-2 seen")
            # Activations overlap as on a real walk: the smoke clears while the next goes on.
            with node1.control() as ctl:
                ctl.set(smoke_pct=3.5)
                line = await wait(walk, shows("node-1", "alarm smoke"), "smoke at node-1")
                assert line.split()[1] == "TEST" and "house 1 Lantern Lane, zone east" in line
                ctl.set(smoke_pct=0.0, button=True)
                await wait(walk, shows("node-1", "alarm button"), "call point at node-1")
                ctl.set(button=False)
            with node2.control() as ctl:
                ctl.set(smoke_pct=3.5)
                await wait(walk, shows("node-2", "alarm smoke"), "smoke at node-2")
                ctl.set(smoke_pct=0.0)
            await command(broker.port, "reset_alarm", "node-1", "walk-1")  # the call point
            await wait(walk, shows("node-1", "restore button"), "call point reset")
            await wait(walk, shows("node-1", "restore smoke"), "smoke cleared at node-1")
            await wait(walk, shows("node-2", "restore smoke"), "smoke cleared at node-2")
            await centre.wait_for(lambda got: len(events(got)) >= 6, STEP_S)
            return list(centre.got)

    try:
        got = asyncio.run(scenario())
    finally:
        status = walk.stop(signal.SIGINT)  # Ctrl-C
    assert "Traceback" not in walk.stderr(), walk.stderr()
    assert status == 1, walk.lines  # node-2 lacks its button test, node-3 never answered
    sent = events(got)
    assert sent and all(e["test"] is True for e in sent), sent
    kinds = {(e["node"], e["kind"], e["source"]) for e in sent}
    assert {("node-1", "alarm", "smoke"), ("node-1", "alarm", "button")} <= kinds, kinds
    assert ("node-2", "alarm", "smoke") in kinds, kinds
    assert any(line.startswith("report: ") for line in walk.lines), walk.lines

    text, rows = report(out)
    print("\n".join(walk.lines), "\n", text)
    assert rows["node-1"]["smoke"] == "tested" and rows["node-1"]["button"] == "tested"
    assert rows["node-1"]["complete"] == "yes" and rows["node-1"]["todo"] == ""
    assert abs(float(rows["node-1"]["supply_v"]) - 12.0) < 0.1, rows["node-1"]  # as set
    assert float(rows["node-1"]["smoke_pct_m"]) < 0.5, rows["node-1"]  # the tester removed
    assert rows["node-2"]["smoke"] == "tested" and rows["node-2"]["button"] == "no"
    assert rows["node-2"]["todo"].startswith("button: not tested: press the manual call point")
    assert rows["node-3"]["seen"] == "no" and rows["node-3"]["complete"] == "no"
    assert "never answered" in rows["node-3"]["todo"]
    assert "Nodes commissioned: 1 of 3" in text
    assert "- **node-3** (address 3, house 3 Lantern Lane, zone west)" in text
    assert "messages published (every event marked test)" in text


@pytest.mark.slow
def test_a_complete_walk_test_with_leakage_and_a_self_test_command(
    tmp_path: Path, bus: VirtualBus, emus: list[EmulatorProcess], broker: Mosquitto
) -> None:
    cfg = write_config(
        tmp_path, broker.port, bus.attach("laptop"), NODES[:2], site="Lantern Lane", baud=BAUD
    )
    out = tmp_path / "report"
    walk = LiveCommand(
        "walktest", "--config", str(cfg), "--report", str(out), "--duration", "60",
        "--require", "smoke,leakage,button,self_test", log=tmp_path / "walktest.stderr",
    )  # fmt: skip

    async def scenario() -> None:
        for emu, name in zip(emus, ("node-1", "node-2"), strict=True):
            await wait(walk, shows(name, "seen"), f"{name} seen")
            with emu.control() as ctl:
                ctl.set(smoke_pct=3.5)
                await wait(walk, shows(name, "alarm smoke"), f"smoke at {name}")
                ctl.set(smoke_pct=0.0, leakage_ma=400.0)
                await wait(walk, shows(name, "alarm leakage"), f"leakage at {name}")
                ctl.set(leakage_ma=0.0, button=True)
                await wait(walk, shows(name, "alarm button"), f"call point at {name}")
                ctl.set(button=False)
            await command(broker.port, "reset_alarm", name, f"reset-{name}")
            await wait(walk, shows(name, "restore button"), f"{name} reset")
            await command(broker.port, "self_test", name, f"test-{name}")
            await wait(walk, shows(name, "self-test running"), f"self-test at {name}")

    try:
        asyncio.run(scenario())
    except BaseException:
        walk.stop(signal.SIGTERM)
        raise
    status = walk.stop(None, timeout=90.0)  # --duration ends it
    assert status == 0, walk.lines
    text, rows = report(out)
    print(text)
    for name in ("node-1", "node-2"):
        row = rows[name]
        assert [row[k] for k in ("smoke", "leakage", "button", "self_test")] == ["tested"] * 4
        assert row["complete"] == "yes", row
    assert "Nothing: every node answered and passed every required test." in text


def test_walktest_refuses_a_bad_config_a_missing_or_busy_port_and_unknown_kinds(
    tmp_path: Path, bus: VirtualBus
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("site = \n")
    done = firelane("walktest", "--config", str(bad), "--report", str(tmp_path / "r"))
    no_traceback(done)
    assert done.returncode == 2 and "TOML syntax error" in done.stderr, done.stderr

    missing = write_config(tmp_path, 1883, tmp_path / "ttyNOPE", NODES, baud=BAUD)
    done = firelane("walktest", "--config", str(missing), "--report", str(tmp_path / "r"))
    no_traceback(done)
    assert done.returncode == 2
    assert "ttyNOPE does not exist: plug in the USB-RS485 adapter" in done.stderr, done.stderr

    done = firelane("walktest", "--config", str(missing), "--require", "smoke,fire")
    assert done.returncode == 2 and "unknown ['fire']" in done.stderr, done.stderr

    port = bus.attach("laptop")
    busy = write_config(tmp_path, 1883, port, NODES, baud=BAUD)
    with open(port, "rb") as tty:  # the gateway service holds the port
        service = [sys.executable, "-c", "import time; time.sleep(120)", "gateway", "run"]
        holder = subprocess.Popen(service, stdin=tty)
    try:
        done = firelane("walktest", "--config", str(busy), "--report", str(tmp_path / "r"))
    finally:
        holder.kill()
        holder.wait()
    no_traceback(done)
    assert done.returncode == 2
    assert "stop it first with `sudo systemctl stop firelane-gateway`" in done.stderr
