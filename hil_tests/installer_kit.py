"""What the installer-tool scenarios share (test_scan.py, test_set_address.py,
test_walktest.py): emulated nodes on one virtual bus, and the `firelane` command run as the
installer runs it, a child process whose exit status, stdout and stderr are checked."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hil_tests.bus.virtual_bus import VirtualBus
from hil_tests.emulator.process import ROOT, EmulatorProcess

CLI_TIMEOUT_S = 120.0


@contextmanager
def nodes_on_bus(
    tmp: Path, bus: VirtualBus, nodes: Sequence[tuple[int, str]]
) -> Iterator[list[EmulatorProcess]]:
    """Emulated nodes given as (address, uid: 12 hex digits) on bus, each listening when this
    yields; all stopped afterwards. Two nodes may share an address (distinct uids, distinct
    node ids): an address conflict."""
    emus: list[EmulatorProcess] = []
    try:
        for i, (address, uid) in enumerate(nodes):
            emu = EmulatorProcess(
                tmp / f"fs{i}", bus.attach(f"node{i}"), address=address, baud=bus.baud, uid=uid
            )
            emus.append(emu)
            emu.start(wait=False)
        for emu in emus:
            emu.wait_event("uart", 30.0)
        yield emus
    finally:
        for emu in emus:
            emu.stop()


def uid(n: int) -> str:
    """A distinct machine.unique_id() per n: node id 0x1A00xxxx."""
    return f"02f11a00{n:04x}"


def firelane(*args: str, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """`firelane ARGS` (python -m gateway) from the source tree; never raises on its status."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr


class LiveCommand:
    """A long-running `firelane` command (walktest) whose stdout lines are collected as they
    come, to wait on (no sleeps: a condition with a deadline)."""

    def __init__(self, *args: str, log: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._err = open(log, "wb")  # noqa: SIM115 (closed in stop())
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, name="cli.stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_line(self, match: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            i = 0
            while True:
                while i < len(self.lines):
                    if match(self.lines[i]):
                        return self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    why = "exited" if self._eof else f"printed no such line in {timeout} s"
                    raise AssertionError(
                        f"{what}: the command {why}; stdout:\n"
                        + "\n".join(self.lines[-30:])
                        + f"\n--- stderr ---\n{self.stderr()[-3000:]}"
                    )
                self._cond.wait(left)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int | None, timeout: float = 30.0) -> int:
        """Send sig (SIGINT is Ctrl-C; None: let it end by itself) and wait; the exit status
        (SIGKILL after timeout)."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()
        return code
