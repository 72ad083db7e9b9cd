"""`firelane demo` end to end, as `make demo` runs it but with its output captured (so in
line mode: no terminal, no ANSI), on fewer nodes and a shorter story to keep CI short.

1. The embedded broker (amqtt), polled: exit 0, every scripted event in the summary, in time.
2. (slow) A real mosquitto with --mqtt: the same, and the run's retained messages are gone
   from the broker afterwards.
3. (slow) Push mode.
4. (slow) Ctrl-C in the middle of the story: exit 130, every process it started is gone, and
   so is its working directory.
5. (slow) --mqtt naming a port nobody listens on: exit 1, saying so, nothing started.

The demo's working directory goes under TMPDIR, set to the test's tmp_path, so the checks
that nothing is left running look for processes naming tmp_path.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from tests.gateway.mosquitto import Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[1]
LABELS = (
    "smoke alarm, node-1",
    "leakage pre-alarm, node-2",
    "offline fault, node-3",
    "leakage alarm, node-2",
    "call point alarm, node-4",
)
RUN_S = 120.0  # a generous ceiling for one demo run (about 25 s) on a loaded machine


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "demo", "--nodes", "4", "--duration", "15", *args]


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}


def running_under(path: Path) -> list[str]:
    """Command lines of live processes that name path (the demo's children do)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(path) in cmdline and state != "Z":
            found.append(cmdline)
    return found


def run_demo(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        demo_command(*args),
        cwd=ROOT,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_S,
    )
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{done.stderr}"
    assert done.stderr == "", done.stderr  # amqtt and the rest stay quiet
    return out


def check_summary(out: str) -> None:
    assert "\x1b" not in out, "ANSI codes with stdout not a terminal"
    summary = out[out.index("Summary:") :]
    for label in LABELS:
        m = re.search(rf"{re.escape(label)} +yes +([\d.]+) s .* ok$", summary, re.M)
        assert m, f"{label} not in time:\n{summary}"
    assert "5 of 5 scripted events arrived in time" in summary
    assert "no alarm that the script did not cause" in summary
    assert re.search(r"^demo: ok; wall time [\d.]+ s$", out, re.M), out
    # Line mode: the events as they arrived, before the summary.
    assert re.search(r"upstream +alarm +node-1 +smoke .* latency", out), out


@pytest.fixture
def no_leftovers(tmp_path: Path) -> Iterator[None]:
    yield
    assert running_under(tmp_path) == []
    assert not list(tmp_path.glob("firelane-demo-*")), "working directory left behind"


@pytest.mark.usefixtures("no_leftovers")
def test_the_demo_on_its_embedded_broker(tmp_path: Path) -> None:
    out = run_demo(tmp_path)
    print(out)
    check_summary(out)
    assert "amqtt, embedded" in out


@pytest.mark.slow
@pytest.mark.usefixtures("no_leftovers")
def test_the_demo_against_a_real_mosquitto(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        out = run_demo(tmp_path, "--mqtt", f"mqtt://127.0.0.1:{broker.port}")
        check_summary(out)
        assert "amqtt" not in out and f"127.0.0.1:{broker.port} (--mqtt)" in out
        assert "New client connected" in broker.log()  # it was this broker
        assert retained_under(broker.port, "firelane/#") == []


def retained_under(port: int, topic: str) -> list[str]:
    """Topics with a retained message under topic: they arrive on subscribing, before a
    marker published after the subscription."""

    async def look() -> list[str]:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe(topic, qos=1)
            await client.subscribe("marker", qos=1)
            await client.publish("marker", b"end", qos=1)
            seen: list[str] = []
            async with asyncio.timeout(10):
                async for message in client.messages:
                    if message.topic.value == "marker":
                        return seen
                    seen.append(message.topic.value)
        raise AssertionError("unreachable")

    return asyncio.run(look())


@pytest.mark.slow
@pytest.mark.usefixtures("no_leftovers")
def test_the_demo_in_push_mode(tmp_path: Path) -> None:
    out = run_demo(tmp_path, "--mode", "push")
    check_summary(out)
    assert "push mode" in out


@pytest.mark.slow
@pytest.mark.usefixtures("no_leftovers")
def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        demo_command(),
        cwd=ROOT,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        seen: list[str] = []
        for line in demo.stdout:  # until the story's first step (everything runs by then)
            seen.append(line)
            if "story     smoke fire" in line:
                break
        else:
            raise AssertionError("".join(seen))
        assert len(running_under(tmp_path)) >= 4 + 2, "the nodes, the bus and the gateway"
        demo.send_signal(signal.SIGINT)
        rest = demo.stdout.read()
        assert demo.wait(RUN_S) == 130, rest
        assert "demo: interrupted (SIGINT); stopped everything it started" in rest
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if demo.stdout is not None:
            demo.stdout.close()


@pytest.mark.slow
@pytest.mark.usefixtures("no_leftovers")
def test_an_unreachable_broker_is_named(tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    done = subprocess.run(
        demo_command("--mqtt", url),
        cwd=ROOT,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_S,
    )
    assert done.returncode == 1, done
    assert "demo: FAILED: cannot reach the MQTT broker at 127.0.0.1:" in done.stdout, done.stdout
    assert "boards booted" not in done.stdout, "started nodes without a broker"
