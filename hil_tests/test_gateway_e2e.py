"""The real gateway process end to end: an emulated node (real firmware) on a pseudo-terminal,
`firelane gateway run` polling it, a real mosquitto, and a subscriber standing in for the
monitoring centre. A smoke fire in the house must arrive upstream as one alarm event with the
house and zone; the node's retained state and the gateway's status are there for a late
subscriber; SIGTERM stops the gateway cleanly, saying offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from hil_tests.emulator.process import EmulatorProcess
from hil_tests.gateway_kit import (
    GATEWAY,
    PREFIX,
    events,
    start_gateway,
    stop_gateway,
    write_config,
)
from tests.gateway.mosquitto import Mosquitto
from tests.gateway.subscriber import Collector

NODE = [("house-7", 7, "No. 7 Lantern Lane", "A")]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as m:
        yield m


@pytest.fixture
def node(tmp_path: Path) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tmp_path / "flash", tmp_path / "ttyNODE", address=7)
    emu.start()
    try:
        emu.wait_event("uart")
        yield emu
    finally:
        emu.stop()


def queued_alarm_ids(db: Path) -> list[str]:
    """event_ids of alarm events waiting in the outbox (read-only, beside the running gateway)."""
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT event_id, payload FROM outbox WHERE priority = 0").fetchall()
    conn.close()
    return [eid for eid, payload in rows if b'"kind":"alarm"' in payload]


def test_a_smoke_fire_reaches_the_centre_and_sigterm_stops_cleanly(
    tmp_path: Path, broker: Mosquitto, node: EmulatorProcess
) -> None:
    config = write_config(tmp_path, broker.port, node.serial, NODE)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "gateway.log", "wb") as log:
        gw = subprocess.Popen(
            [sys.executable, "-m", "gateway", "gateway", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    try:

        async def scenario() -> None:
            async with Collector(broker.port, f"{PREFIX}/{GATEWAY}/#") as centre:
                # The node's retained state shows up once the gateway has polled it.
                await centre.wait_for(
                    lambda got: any(m.topic.endswith("/node/house-7/state") for m in got), 20.0
                )
                with node.control() as ctl:
                    ctl.set(smoke_pct=3.5)
                await centre.wait_for(lambda got: bool(events(got, "alarm")), 20.0)
                (alarm,) = events(centre.got, "alarm")
                assert alarm["node"] == "house-7" and alarm["source"] == "smoke"
                assert alarm["house"] == "No. 7 Lantern Lane" and alarm["zone"] == "A"
                assert alarm["schema"] == 1 and alarm["test"] is False and alarm["event_id"]
                # The centre hushes the house: the command reaches the node over the bus.
                async with aiomqtt.Client("127.0.0.1", broker.port) as centre_client:
                    command = {"id": "c-1", "command": "silence", "node": "house-7"}
                    await centre_client.publish(
                        f"{PREFIX}/{GATEWAY}/command", json.dumps(command), qos=1
                    )
                await centre.wait_for(
                    lambda got: any(m.topic.endswith("/command/result") for m in got), 20.0
                )
                (result,) = [m.json() for m in centre.got if m.topic.endswith("/command/result")]
                assert result["id"] == "c-1" and result["status"] == "ok", result
                await centre.wait_for(  # the node's retained state shows it hushed
                    lambda got: any(
                        m.topic.endswith("/node/house-7/state") and "silenced" in m.json()["status"]
                        for m in got
                    ),
                    20.0,
                )
                # `firelane status` reads the running gateway's snapshot.
                status = subprocess.run(
                    [sys.executable, "-m", "gateway", "status", "--config", str(config)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert status.returncode == 0, status.stderr
                assert "gw-test-01" in status.stdout and "house-7" in status.stdout
                assert "bus street" in status.stdout, status.stdout
                gw.send_signal(signal.SIGTERM)
                await centre.wait_for(
                    lambda got: any(
                        m.topic == f"{PREFIX}/{GATEWAY}/status" and b"offline" in m.payload
                        for m in got
                    ),
                    20.0,
                )

        asyncio.run(scenario())
        assert gw.wait(timeout=20) == 0, (tmp_path / "gateway.log").read_text()[-3000:]
    finally:
        if gw.poll() is None:
            gw.kill()
            gw.wait()


def test_an_alarm_queued_while_the_broker_is_down_survives_sigkill(
    tmp_path: Path, node: EmulatorProcess
) -> None:
    """The gateway takes the alarm while the broker is down (it waits in the outbox), is killed
    with SIGKILL, and restarted after the broker is back: the centre gets the alarm, with the
    event_id it had on disk before the kill."""
    broker = Mosquitto(tmp_path / "broker")  # not started: the centre is unreachable
    config = write_config(tmp_path, broker.port, node.serial, NODE)
    db = tmp_path / "gateway.sqlite3"
    gw = start_gateway(tmp_path, config, "gateway-1.log")
    try:
        with node.control() as ctl:
            ctl.set(smoke_pct=3.5)
        deadline = time.monotonic() + 30
        while not (ids := queued_alarm_ids(db)):
            assert time.monotonic() < deadline, (tmp_path / "gateway-1.log").read_text()[-2000:]
            assert gw.poll() is None, (tmp_path / "gateway-1.log").read_text()[-2000:]
            time.sleep(0.1)  # polling a file written by another process, with a deadline
        gw.kill()
        gw.wait(timeout=10)
        assert queued_alarm_ids(db) == ids  # on disk across the kill
        broker.start()
        gw = start_gateway(tmp_path, config, "gateway-2.log")

        async def centre() -> None:
            async with Collector(broker.port, f"{PREFIX}/{GATEWAY}/#") as c:
                await c.wait_for(lambda got: bool(events(got, "alarm")), 30.0)
                assert [e["event_id"] for e in events(c.got, "alarm")] == ids

        asyncio.run(centre())
    finally:
        stop_gateway(gw)
        if broker.running:
            broker.stop()
