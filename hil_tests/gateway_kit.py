"""What the end-to-end tests share: a gateway config for test nodes on one serial line, the
real gateway process, and reading the centre's side (events on the broker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.gateway.subscriber import Received

GATEWAY = "gw-test-01"
PREFIX = "firelane"


def write_config(
    tmp_path: Path,
    port: int,
    serial: Path,
    nodes: Iterable[tuple[str, int, str, str]],
    *,
    site: str = "Test Street",
    baud: int = 19200,
    supervision_s: float = 30.0,
    kind: str = "rtu",
    status_every_s: float = 0.2,
    offline_backoff_max_s: float | None = None,
    node_ids: Mapping[str, int] | None = None,
    keys: Mapping[str, str] | None = None,
    timeout_ms: int = 0,
) -> Path:
    """gateway.toml for one rtu bus on `serial` (a pty: no parity) and nodes given as
    (name, address, house, zone), broker on 127.0.0.1:port, outbox in tmp_path.

    kind="push" makes it a push bus (no poll settings; give every node its NODE_ID in
    node_ids, and optionally its hex key in keys). offline_backoff_max_s: the bus's cap of the
    offline back-off (default: the gateway's). timeout_ms: the bus's response timeout (0:
    derived from the baud rate)."""
    ids = node_ids or {}
    secrets = keys or {}

    def extra(name: str) -> str:
        lines = f"node_id = {ids[name]:#x}\n" if name in ids else ""
        return lines + (f'key = "{secrets[name]}"\n' if name in secrets else "")

    node_tables = "".join(
        textwrap.dedent(
            f"""
            [[nodes]]
            name = "{name}"
            bus = "street"
            address = {address}
            house = "{house}"
            zone = "{zone}"
            """
        )
        + extra(name)
        for name, address, house, zone in nodes
    )
    poll = f"timeout_ms = {timeout_ms}\n" if timeout_ms else ""
    if kind != "push":
        poll += f"status_every_s = {status_every_s}\n"
        if offline_backoff_max_s is not None:
            poll += f"offline_backoff_max_s = {offline_backoff_max_s}\n"
    path = tmp_path / "gateway.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            site = "{site}"
            gateway_id = "{GATEWAY}"

            [storage]
            path = "{tmp_path / "gateway.sqlite3"}"

            [mqtt]
            host = "127.0.0.1"
            port = {port}

            [[buses]]
            name = "street"
            kind = "{kind}"
            port = "{serial}"
            baud = {baud}
            parity = "N"  # a pseudo-terminal refuses parity settings
            """
        )
        + poll
        + node_tables
        + f"\n[rules]\nsupervision_s = {supervision_s}\n"
    )
    return path


def start_gateway(
    tmp_path: Path, config: Path, log_name: str = "gateway.log"
) -> subprocess.Popen[bytes]:
    """`firelane gateway run` as a child process, its log in tmp_path/log_name."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / log_name, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "gateway", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )


def stop_gateway(gw: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the gateway flushes and says offline), then SIGKILL if it does not exit."""
    if gw.poll() is None:
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(timeout=20)
        except subprocess.TimeoutExpired:
            gw.kill()
            gw.wait()


def events(got: list[Received], kind: str) -> list[dict[str, object]]:
    """The `event` messages of one kind the centre received, as JSON documents."""
    out = []
    for m in got:
        if m.topic == f"{PREFIX}/{GATEWAY}/event":
            doc = m.json()
            if doc["kind"] == kind:
                out.append(doc)
    return out
