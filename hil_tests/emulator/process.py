"""Start an emulated node as a process and wait for its events: for tests and scripts.

    with EmulatorProcess(tmp / "flash", tmp / "ttyNODE", address=17) as node:
        node.wait_event("boot")
        ...  # open node.serial with any Modbus master; node.control() drives the board

Synchronisation is by the JSON events the emulator prints (runner.py), never by sleeping.
The emulator's stderr (tracebacks, the firmware's print()) goes to a log file next to the
flash directory; the last lines of it are in every timeout error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from hil_tests.emulator.control import Control

ROOT = Path(__file__).resolve().parents[2]


class EmulatorError(Exception):
    """The emulator did not do what was awaited; the message ends with its stderr."""


class EmulatorProcess:
    """One `firelane node emulate` process."""

    def __init__(
        self,
        fs: str | os.PathLike[str],
        serial: str | os.PathLike[str],
        *,
        address: int | None = None,
        baud: int | None = None,
        uid: str | None = None,
        control: str | os.PathLike[str] | None = None,
        log: str | os.PathLike[str] | None = None,
        console: str | os.PathLike[str] | None = None,
    ) -> None:
        self.fs = Path(fs)
        self.serial = Path(serial)
        self.control_path = Path(control) if control else self.fs / "control.sock"
        self.log = Path(log) if log else self.fs.with_name(self.fs.name + ".stderr.log")
        self.args = ["--serial", str(self.serial), "--fs", str(self.fs)]
        self.args += ["--control", str(self.control_path)]
        self.console = Path(console) if console else None  # the USB console's pty (REPL)
        for flag, value in (
            ("--address", address),
            ("--baud", baud),
            ("--uid", uid),
            ("--console", console),
        ):
            if value is not None:
                self.args += [flag, str(value)]
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._eof = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._log_file: IO[bytes] | None = None

    def start(self, timeout: float = 10.0, wait: bool = True) -> dict[str, Any] | None:
        """Start the process; returns its ready event (None with wait=False: start many
        nodes, then wait_event("ready") on each)."""
        command = [sys.executable, "-m", "gateway", "node", "emulate", *self.args]
        self._log_file = open(self.log, "wb")  # noqa: SIM115 (closed in stop())
        self._proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
        )
        self._reader = threading.Thread(target=self._read, name="emulator.events", daemon=True)
        self._reader.start()
        if not wait:
            return None
        try:
            return self.wait_event("ready", timeout)
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"event": "text", "line": raw.decode(errors="replace").rstrip()}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def mark(self) -> int:
        """A position in the event list, for wait_event(since=...)."""
        with self._cond:
            return len(self.events)

    def wait_event(
        self, name: str, timeout: float = 10.0, since: int = 0, **fields: Any
    ) -> dict[str, Any]:
        """The first event called name (with the given field values) at or after since."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = since
            while True:
                while i < len(self.events):
                    event = self.events[i]
                    i += 1
                    if event.get("event") == name and all(
                        event.get(k) == v for k, v in fields.items()
                    ):
                        return event
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    why = "exited" if self._eof else f"sent no such event in {timeout} s"
                    raise EmulatorError(
                        f"waiting for {name} {fields or ''}: the emulator {why}; "
                        f"events: {self.events[-10:]}\n--- stderr (tail) ---\n{self.stderr(40)}"
                    )
                self._cond.wait(left)

    def control(self) -> Control:
        return Control(self.control_path)

    def stderr(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait (SIGKILL after timeout); the exit status."""
        proc, self._proc = self._proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if self._reader is not None:
                self._reader.join(timeout)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
