"""The demo's processes: the virtual RS-485 bus, the emulated nodes and the gateway, in a
working directory the caller owns (a temporary one), and their orderly or forced stop.

Every part is a process of its own, as on a street:
- the bus: `python -m hil_tests.bus` (its relay thread paces bytes at the baud rate; in a
  process of its own it never waits for this process's GIL, which runs the broker and the
  display, so frames are not torn by a late relay);
- each node: hil_tests.emulator.process.EmulatorProcess (the real firmware, one process each);
- the gateway: `firelane gateway run --config FILE`, the command systemd runs, with a config
  written here; its log goes to a file, shown when it fails.

The blocking methods are called from worker threads (asyncio.to_thread). stop() is the
orderly end (the gateway first, on SIGTERM, so it flushes to the broker and says offline);
kill() is the last resort for any path that could not finish stop() (a second Ctrl-C), and
both may be called any number of times.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # hil_tests/ is on sys.path only once source_root() ran
    from hil_tests.emulator.control import Control
    from hil_tests.emulator.process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[1]
BUS_START_S = 15.0
NODE_START_S = 60.0  # 32 boards booting on two busy cores
GATEWAY_STOP_S = 10.0
NODE_STOP_S = 5.0
HEARTBEAT_S = 5  # push mode: the node's HEARTBEAT register (its minimum)
STATUS_EVERY_S = 0.2  # polled: each node's status read as often as the line allows
# Polled: the response timeout. Derived from the baud rate it is 50 ms at 19200, which a real
# node meets with room to spare; an emulated one shares a busy machine with a dozen processes
# and can be starved for longer, and a late answer would then count as none (offline after
# two) and collide with the next request. Only the power-cut node costs this wait, once per
# back-off retry.
TIMEOUT_MS = 300


class RigError(Exception):
    """A part of the demo could not start or died; the message says which and why."""


def source_root() -> Path:
    """The repository root, put on sys.path for hil_tests/; RigError outside a checkout."""
    if not ((ROOT / "hil_tests" / "emulator").is_dir() and (ROOT / "firmware").is_dir()):
        raise RigError(
            "firelane demo: needs a Firelane source checkout (the emulated board in "
            f"hil_tests/emulator/ and the firmware in firmware/, next to {ROOT / 'demo'}); "
            "run it from a clone of the repository: make demo"
        )
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return ROOT


@dataclass(frozen=True)
class NodeSpec:
    name: str
    address: int
    house: str
    zone: str
    key: bytes | None  # push mode: its authentication key

    @property
    def uid(self) -> str:
        """machine.unique_id() of the emulated board: its node id is the last four bytes."""
        return f"02f11a{self.address:06x}"

    @property
    def node_id(self) -> int:
        return int(self.uid[-8:], 16)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def gateway_config(
    *,
    workdir: Path,
    serial: Path,
    broker: BrokerAddress,
    gateway_id: str,
    site: str,
    baud: int,
    push: bool,
    nodes: Iterable[NodeSpec],
    supervision_s: float,
) -> str:
    """The gateway's TOML (docs/gateway.example.toml): one bus on the virtual line (a pty,
    so no parity), the outbox in workdir, the broker given."""
    lines = [
        f"site = {_toml(site)}",
        f"gateway_id = {_toml(gateway_id)}",
        "",
        "[storage]",
        f"path = {_toml(str(workdir / 'gateway.sqlite3'))}",
        "",
        "[mqtt]",
        f"host = {_toml(broker.host)}",
        f"port = {broker.port}",
    ]
    if broker.username is not None:
        lines.append(f"username = {_toml(broker.username)}")
    if broker.password is not None:
        lines.append(f"password = {_toml(broker.password)}")
    lines += [
        "",
        "[[buses]]",
        'name = "street"',
        f'kind = "{"push" if push else "rtu"}"',
        f"port = {_toml(str(serial))}",
        f"baud = {baud}",
        'parity = "N"  # a pseudo-terminal refuses parity settings',
    ]
    if not push:
        lines += [
            f"timeout_ms = {TIMEOUT_MS}",
            f"status_every_s = {STATUS_EVERY_S}",
            "offline_backoff_max_s = 5",
        ]
    for node in nodes:
        lines += [
            "",
            "[[nodes]]",
            f"name = {_toml(node.name)}",
            'bus = "street"',
            f"address = {node.address}",
            f"house = {_toml(node.house)}",
            f"zone = {_toml(node.zone)}",
        ]
        if push:
            lines.append(f"node_id = 0x{node.node_id:08X}")
        if node.key is not None:
            lines.append(f'key = "{node.key.hex()}"')
    lines += ["", "[rules]", f"supervision_s = {supervision_s:g}", ""]
    return "\n".join(lines)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class Rig:
    """The bus, the nodes and the gateway of one demo run, in workdir."""

    def __init__(self, workdir: Path, baud: int, push: bool, nodes: list[NodeSpec]) -> None:
        self.workdir = workdir
        self.baud = baud
        self.push = push
        self.nodes = nodes
        self.bus_log = workdir / "bus.log"
        self.gateway_log = workdir / "gateway.log"
        self.paths: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._bus: subprocess.Popen[bytes] | None = None
        self._gateway: subprocess.Popen[bytes] | None = None
        self._emulators: dict[int, EmulatorProcess] = {}
        self._logs: list[IO[bytes]] = []
        self._closing = False  # stop() or kill() began: start nothing more

    # --- start ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        """Under self._lock: RigError once stopping began (a start racing a Ctrl-C)."""
        if self._closing:
            raise RigError("stopping: nothing more is started")

    def _popen(self, command: list[str], log: Path, stdout: int) -> subprocess.Popen[bytes]:
        self._check_open()
        log_file = open(log, "wb")  # noqa: SIM115 (closed in kill())
        self._logs.append(log_file)
        return subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=log_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def start_bus(self) -> dict[str, Path]:
        """The virtual bus with a device per node and one for the gateway; their paths."""
        names = ["gateway", *(f"node{n.address}" for n in self.nodes)]
        command = [sys.executable, "-m", "hil_tests.bus", "--baud", str(self.baud)]
        command += ["--devices", ",".join(names), "--dir", str(self.workdir / "bus")]
        with self._lock:
            self._bus = self._popen(command, self.bus_log, subprocess.PIPE)
            bus = self._bus
        line = _first_line(bus, BUS_START_S)
        try:
            devices = json.loads(line)["devices"] if line else None
        except (ValueError, KeyError, TypeError):
            devices = None
        if not isinstance(devices, dict):
            raise RigError(f"the virtual bus did not start:\n{_tail(self.bus_log)}")
        self.paths = {name: Path(path) for name, path in devices.items()}
        return self.paths

    def start_nodes(self) -> None:
        """Every node, booted, its firmware listening on the line."""
        from hil_tests.emulator.process import EmulatorError, EmulatorProcess

        for node in self.nodes:
            fs = self.workdir / f"n{node.address}"  # short: a socket path holds 107 bytes
            fs.mkdir()
            config: dict[str, object] = {"address": node.address, "baud": self.baud}
            if self.push:
                config |= {"link_mode": "push", "heartbeat_s": HEARTBEAT_S}
                if node.key is not None:
                    config["key"] = node.key.hex()
            (fs / "config.json").write_text(json.dumps(config) + "\n")
            serial = self.paths[f"node{node.address}"]
            emu = EmulatorProcess(fs, serial, uid=node.uid, control=fs.with_suffix(".sock"))
            with self._lock:
                self._check_open()
                self._emulators[node.address] = emu
                emu.start(wait=False)
        with self._lock:
            started = list(self._emulators.items())
        for address, emu in started:
            try:
                emu.wait_event("uart", NODE_START_S)
            except EmulatorError as exc:
                raise RigError(f"node {address} did not start: {exc}") from None

    def start_gateway(self, config_text: str) -> Path:
        """`firelane gateway run` with this config (written to workdir/gateway.toml)."""
        config = self.workdir / "gateway.toml"
        config.write_text(config_text)
        command = [sys.executable, "-m", "gateway", "gateway", "run", "--config", str(config)]
        with self._lock:
            self._gateway = self._popen(command, self.gateway_log, subprocess.DEVNULL)
        return config

    # --- while running --------------------------------------------------------------------

    def check_alive(self) -> None:
        """RigError, with its log, if the gateway or the bus has exited."""
        for what, proc, log in (
            ("gateway", self._gateway, self.gateway_log),
            ("virtual bus", self._bus, self.bus_log),
        ):
            if proc is not None and proc.poll() is not None:
                raise RigError(f"the {what} exited (status {proc.returncode}):\n{_tail(log)}")

    def control(self, address: int) -> Control:
        return self._emulators[address].control()

    def gateway_log_tail(self, lines: int = 30) -> str:
        return _tail(self.gateway_log, lines)

    # --- stop -----------------------------------------------------------------------------

    def stop(self) -> None:
        """The gateway first (SIGTERM: it flushes its outbox and says offline), then the
        nodes (all at once), then the bus."""
        _terminate(self._take_gateway(), GATEWAY_STOP_S)
        emulators = self._take_emulators()
        if emulators:
            with ThreadPoolExecutor(len(emulators)) as pool:
                list(pool.map(lambda emu: emu.stop(NODE_STOP_S), emulators))
        _terminate(self._take_bus(), NODE_STOP_S)
        self._close_logs()

    def kill(self) -> None:
        """Whatever still runs, at once."""
        _terminate(self._take_gateway(), 0.0)
        for emu in self._take_emulators():
            emu.stop(1.0)
        _terminate(self._take_bus(), 0.0)
        self._close_logs()

    def _take_gateway(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            self._closing = True
            proc, self._gateway = self._gateway, None
        return proc

    def _take_bus(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            proc, self._bus = self._bus, None
        return proc

    def _take_emulators(self) -> list[EmulatorProcess]:
        with self._lock:
            emulators, self._emulators = list(self._emulators.values()), {}
        return emulators

    def _close_logs(self) -> None:
        with self._lock:
            logs, self._logs = self._logs, []
        for log in logs:
            log.close()


def _first_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The first line proc prints on stdout; b"" if none within timeout (or it exited)."""
    stdout = proc.stdout
    assert stdout is not None
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0] if got else b""


def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM, wait up to timeout, then SIGKILL (at once with timeout 0)."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL if timeout <= 0 else signal.SIGTERM)
        try:
            proc.wait(timeout if timeout > 0 else None)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
