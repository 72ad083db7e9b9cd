"""A MicroPython board on its USB console, through mpremote's serial transport (its raw REPL).

Every failure becomes an InstallError that names the port and what to do: a port that does
not exist, one another program holds (pyserial's exclusive lock, as mpremote opens it), one
we may not open, a board that does not answer with a REPL, code the board refused.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import io
import os
from collections.abc import Callable
from typing import Any

import serial  # type: ignore[import-untyped]
import serial.tools.list_ports  # type: ignore[import-untyped]

from installer import micropython
from installer.errors import InstallError

CHUNK = 1024  # bytes of file data per raw-REPL command
REPL_PROMPT = b">>> "
_HELPERS = """\
import os, hashlib, binascii
def _fl_h(p):
    h = hashlib.sha256()
    b = bytearray(512)
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(b if n == 512 else b[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
def _fl_ls():
    r = {}
    for d in ('', 'protocol'):
        try:
            for e in os.ilistdir(d or '.'):
                if e[1] == 0x8000:
                    p = (d + '/' if d else '') + e[0]
                    r[p] = os.stat(p)[6]
        except OSError:
            pass
    return r
def _fl_rm(p):
    try:
        os.remove(p)
    except OSError:
        pass
def _fl_md(p):
    try:
        os.mkdir(p)
    except OSError:
        pass
"""


def ports_seen() -> str:
    found = sorted(p.device for p in serial.tools.list_ports.comports())
    return ", ".join(found) if found else "none"


def check_port(port: str) -> None:
    """Open and close the port as mpremote will (exclusively): InstallError if that fails."""
    if not os.path.exists(port):
        raise InstallError(
            f"no such port: {port}",
            f"plug in the node's USB cable and give its port with --port (ports seen: "
            f"{ports_seen()}); `ls /dev/ttyUSB* /dev/ttyACM*` lists them",
        )
    try:
        handle = serial.Serial(port, 115200, exclusive=True, timeout=0)
    except serial.SerialException as exc:
        text = str(exc)
        if "exclusively lock" in text or getattr(exc, "errno", None) == errno.EBUSY:
            raise InstallError(
                f"port {port} is busy: another program has it open",
                f"close it (a serial terminal, mpremote, the gateway service) and try again; "
                f"`fuser {port}` names the process",
            ) from None
        if getattr(exc, "errno", None) == errno.EACCES or "Permission denied" in text:
            raise InstallError(
                f"no permission to open {port}",
                "add yourself to the dialout group (sudo adduser $USER dialout), log out and in",
            ) from None
        raise InstallError(f"cannot open {port}: {text}", "check the cable and the port") from None
    handle.close()


class Board:
    """One board on one port; enter() stops its program and takes the raw REPL."""

    def __init__(self, port: str, timeout: float = 5.0) -> None:
        from mpremote.transport_serial import (  # type: ignore[import-untyped]
            SerialTransport,
            TransportError,
        )

        self.port = port
        self.timeout = timeout
        check_port(port)
        try:
            # A read timeout: on a /dev/pts device mpremote reads byte by byte and would
            # otherwise block for ever on a board that says nothing.
            self.t = SerialTransport(port, baudrate=115200, timeout=1.0)
        except TransportError:
            raise InstallError(
                f"port {port} is busy: another program has it open",
                f"close it and try again; `fuser {port}` names the process",
            ) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.t.in_raw_repl:
                self.t.exit_raw_repl()
        with contextlib.suppress(Exception):
            self.t.close()

    def enter(self) -> None:
        """Ctrl-C (stop whatever runs), Ctrl-A: the raw REPL, or InstallError."""
        from mpremote.transport_serial import TransportError

        heard = io.StringIO()
        try:
            with contextlib.redirect_stdout(heard):  # mpremote prints what it got instead
                self.t.enter_raw_repl(soft_reset=False, timeout_overall=self.timeout)
        except (TransportError, OSError):
            got = heard.getvalue().strip()
            said = "nothing" if got in ("", "b''") else got[:120]
            raise InstallError(
                f"the board on {self.port} does not answer with a MicroPython REPL "
                f"(within {self.timeout:g} s it sent {said})",
                "check that this is the node's USB port (not the RS-485 adapter) and the "
                "cable carries data; press the board's EN (reset) button and try again.\n"
                "A fresh ESP32 has no MicroPython yet:\n" + micropython.install_hint(self.port),
            ) from None
        self.exec(_HELPERS)

    def exec(self, code: str) -> bytes:
        from mpremote.transport import (  # type: ignore[import-untyped]
            TransportError,
            TransportExecError,
        )

        try:
            out: bytes = self.t.exec(code)
        except TransportExecError as exc:
            last = exc.error_output.strip().splitlines()[-1:] or ["?"]
            raise InstallError(
                f"the board on {self.port} refused a command: {last[0]}",
                "run the same flash command again; if it repeats, the board's flash may be "
                "full or damaged: `mpremote connect PORT df` shows the free space",
            ) from None
        except (TransportError, OSError) as exc:
            raise InstallError(
                f"lost the board on {self.port}: {exc}",
                "check the USB cable and run the same flash command again (a node left half "
                "flashed starts in maintenance mode and the next flash completes it)",
            ) from None
        return out

    def eval_code(self, code: str) -> Any:
        """The value code prints (with repr) as its last line."""
        lines = self.exec(code).decode(errors="replace").strip().splitlines()
        return ast.literal_eval(lines[-1] if lines else "None")

    def eval(self, expression: str) -> Any:
        return ast.literal_eval(self.exec(f"print(repr({expression}))").decode().strip())

    def info(self) -> micropython.BoardInfo:
        return micropython.parse(self.exec(micropython.PROBE).decode())

    # Files.
    def listing(self) -> dict[str, int]:
        listing: dict[str, int] = self.eval("_fl_ls()")
        return listing

    def sha256(self, path: str) -> str | None:
        digest: str | None = self.eval(f"_fl_h({path!r})")
        return digest

    def write(self, path: str, data: bytes, advance: Callable[[int], None]) -> None:
        self.exec(f"_fl_f = open({path!r}, 'wb')")
        for i in range(0, len(data), CHUNK):
            chunk = data[i : i + CHUNK]
            self.exec(f"_fl_f.write({chunk!r})")
            advance(len(chunk))
        self.exec("_fl_f.close()\ndel _fl_f")

    def rename(self, src: str, dst: str) -> None:
        self.exec(f"os.rename({src!r}, {dst!r})")

    def remove(self, path: str) -> None:
        self.exec(f"_fl_rm({path!r})")

    def mkdir(self, path: str) -> None:
        self.exec(f"_fl_md({path!r})")

    def soft_reset(self, timeout: float) -> str:
        """Ctrl-D in the raw REPL: a fresh interpreter runs boot.py (not main.py) and we are
        back in the raw REPL. What boot.py printed, or InstallError."""
        from mpremote.transport_serial import TransportError

        heard = io.StringIO()
        try:
            with contextlib.redirect_stdout(heard):
                self.t.enter_raw_repl(soft_reset=True, timeout_overall=timeout)
        except (TransportError, OSError):
            raise InstallError(
                f"the board on {self.port} did not come back from a soft reset "
                f"(it sent {heard.getvalue().strip()[:200] or 'nothing'})",
                "press the node's EN (reset) button and run the same flash command again",
            ) from None
        self.exec(_HELPERS)  # a soft reset cleared the REPL's globals
        return heard.getvalue()

    def reset(self) -> None:
        """machine.reset(): a hard reset (the watchdog, if the app started one, stops too)."""
        from mpremote.transport import TransportError

        with contextlib.suppress(TransportError, OSError):
            self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        self.t.in_raw_repl = False

    def read_until(self, ending: bytes, timeout: float) -> bytes:
        """Console output until ending (or timeout: what came)."""
        data: bytes = self.t.read_until(1, ending, timeout=None, timeout_overall=timeout)
        return data
