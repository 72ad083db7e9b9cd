"""Where `firelane node flash` writes: a board on its USB console, or an emulated node's flash.

Both give flash.py the same few operations (Target). A board is driven over its raw REPL
(board.py, mpremote); `--target dir:PATH` writes into the flash directory of an emulated node
(the emulator's --fs) and, when that emulator runs, resets it through its control socket
(PATH/control.sock) as the button and the REPL would on a board.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from installer import micropython
from installer.board import REPL_PROMPT, Board
from installer.errors import InstallError

FLAG = "maintenance"  # firmware/startup.py FLAG: on flash, the node boots into maintenance mode
BOOT_TIMEOUT_S = 15.0  # a reset until the REPL (maintenance mode) or the app is up
# After a soft reset (boot.py ran the new startup.boot(), main.py did not run): what the new
# firmware made of its flash, and whether the app's modules import.
BOOT_PROBE = """\
import sys
_s = sys.modules.get('startup')
_r = {'startup': _s is not None}
if _s:
    _r['mode'] = _s.mode
    _r['address'] = _s.cfg.raw.get(0x40)
    _r['config_error'] = _s.cfg.error
try:
    import version
    _r['version'] = '%d.%d.%d' % (version.MAJOR, version.MINOR, version.PATCH)
    import app
    _r['app'] = 'ok'
except Exception as e:
    _r['app'] = repr(e)
print(repr(_r))
"""
# Clear this firmware's boot record in RTC memory: a reflash starts with no failed boots, so
# a node in safe mode leaves it and quick successive flashes never add up to one.
CLEAR_BOOT_RECORD = "import machine\nmachine.RTC().memory(b'')"


class Target(Protocol):
    description: str

    def identify(self) -> micropython.BoardInfo: ...
    def enter_maintenance(self, flag_text: str) -> str: ...
    def listing(self) -> dict[str, int]: ...
    def sha256(self, path: str) -> str | None: ...
    def write(self, path: str, data: bytes, advance: Callable[[int], None]) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def remove(self, path: str) -> None: ...
    def mkdir(self, path: str) -> None: ...
    def check_boot(self) -> dict[str, Any] | None: ...
    def restart(self) -> str: ...
    def console_output(self) -> str: ...
    def close(self) -> None: ...


def parse(text: str) -> tuple[str, str]:
    """--target dir:PATH -> ("dir", PATH); a bare port -> ("port", PORT)."""
    if text.startswith("dir:"):
        return "dir", text[4:]
    return "port", text


class BoardTarget:
    """A MicroPython board on its USB console."""

    def __init__(self, port: str, timeout: float) -> None:
        self.board = Board(port, timeout)
        self.description = f"the board on {port}"
        self.port = port
        self._after_reset = b""
        self.board.enter()

    def identify(self) -> micropython.BoardInfo:
        return self.board.info()

    def _mode(self) -> int | None:
        """startup.mode of the running boot (1: maintenance), None without Firelane firmware."""
        mode: int | None = self.board.eval(
            "getattr(__import__('sys').modules.get('startup'), 'mode', None)"
        )
        return mode

    def enter_maintenance(self, flag_text: str) -> str:
        already = self._mode() == 1
        self.board.write(FLAG, flag_text.encode(), lambda n: None)
        if already:
            return "already in maintenance mode"
        # Ctrl-C stopped the app, but a watchdog it started still runs: reset now, with the
        # flag on flash, so the node comes back in maintenance mode (no app, no watchdog).
        self.board.reset()
        self._after_reset = self.board.read_until(REPL_PROMPT, BOOT_TIMEOUT_S)
        self.board.enter()
        mode = self._mode()
        if mode not in (1, None):
            raise InstallError(
                f"{self.description} did not start in maintenance mode after a reset",
                "hold the node's manual button while pressing EN (reset) until the LED stays "
                "lit, then run the same flash command again",
            )
        return "maintenance mode (flag file set, node reset)"

    def listing(self) -> dict[str, int]:
        return self.board.listing()

    def sha256(self, path: str) -> str | None:
        return self.board.sha256(path)

    def write(self, path: str, data: bytes, advance: Callable[[int], None]) -> None:
        self.board.write(path, data, advance)

    def rename(self, src: str, dst: str) -> None:
        self.board.rename(src, dst)

    def remove(self, path: str) -> None:
        self.board.remove(path)

    def mkdir(self, path: str) -> None:
        self.board.mkdir(path)

    def check_boot(self) -> dict[str, Any] | None:
        """Soft-reset the node (the flag still on flash: it boots the new boot.py and
        startup.py into maintenance mode) and report what the new firmware found."""
        printed = self.board.soft_reset(BOOT_TIMEOUT_S)
        found: dict[str, Any] = self.board.eval_code(BOOT_PROBE)
        found["printed"] = printed
        return found

    def restart(self) -> str:
        self.board.exec(CLEAR_BOOT_RECORD)
        self.board.reset()
        return "reset (boot record cleared, machine.reset())"

    def console_output(self) -> str:
        """What the board printed since the last reset (without waiting)."""
        data = self.board.read_until(b"\x00\xff", 0.5)
        return data.decode(errors="replace")

    def close(self) -> None:
        self.board.close()


class DirTarget:
    """An emulated node's flash directory; its emulator, if running, through control.sock."""

    def __init__(self, path: str) -> None:
        self.root = Path(path)
        if not self.root.is_dir():
            raise InstallError(
                f"--target dir:{path}: no such directory",
                "give the emulated node's flash directory (the emulator's --fs DIR)",
            )
        self.description = f"the emulated node's flash {self.root}"
        self.control = self.root / "control.sock"

    def _request(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """One control request to the running emulator; None when none runs there."""
        if not self.control.is_socket():
            return None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5.0)
                sock.connect(str(self.control))
                sock.sendall(json.dumps(request).encode() + b"\n")
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return None  # a socket left by an emulator that is gone
        answer: dict[str, Any] = json.loads(reply or b"{}")
        return answer

    def running(self) -> bool:
        return self._request({"get": "state"}) is not None

    def _wait_state(self, done: Callable[[dict[str, Any]], bool], what: str) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while True:
            reply = self._request({"get": "state"})
            if reply is None or done(reply.get("state", reply)):
                return
            if time.monotonic() > deadline:
                raise InstallError(
                    f"{self.description}: the emulated node did not {what} within "
                    f"{BOOT_TIMEOUT_S:g} s",
                    "look at the emulator's stderr for a traceback; restart it and flash again",
                )
            time.sleep(0.05)  # polling pace against a deadline, not synchronisation

    def identify(self) -> micropython.BoardInfo:
        release = (1, 29, 0)
        machine = "Firelane emulated board (its flash directory)"
        return micropython.BoardInfo("micropython", release, None, "esp32", machine)

    def enter_maintenance(self, flag_text: str) -> str:
        self._put(FLAG, flag_text.encode())
        if not self.running():
            return "flag file set (no emulator running on it)"
        self._request({"reset": "hard"})
        self._wait_state(
            lambda s: s.get("mode") == "maintenance" or s.get("firmware") == "crashed",
            "start in maintenance mode",
        )
        return "maintenance mode (flag file set, emulated node reset)"

    def _put(self, path: str, data: bytes) -> None:
        tmp = self.root / (path + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.root / path)

    def listing(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for sub in ("", "protocol"):
            folder = self.root / sub
            if folder.is_dir():
                for entry in folder.iterdir():
                    if entry.is_file() and not entry.is_symlink():
                        found[f"{sub}/{entry.name}" if sub else entry.name] = entry.stat().st_size
        return found

    def sha256(self, path: str) -> str | None:
        try:
            return hashlib.sha256((self.root / path).read_bytes()).hexdigest()
        except OSError:
            return None

    def write(self, path: str, data: bytes, advance: Callable[[int], None]) -> None:
        with open(self.root / path, "wb") as f:
            for i in range(0, len(data), 4096):
                f.write(data[i : i + 4096])
                advance(len(data[i : i + 4096]))
            f.flush()
            os.fsync(f.fileno())

    def rename(self, src: str, dst: str) -> None:
        os.replace(self.root / src, self.root / dst)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / path).unlink()

    def mkdir(self, path: str) -> None:
        (self.root / path).mkdir(exist_ok=True)

    def check_boot(self) -> dict[str, Any] | None:
        return None  # no REPL here: the confirmation over RS-485 (--bus) is the check

    def restart(self) -> str:
        if self._request({"reset": "hard"}) is None:
            return "not restarted: no emulator runs on it (start one with firelane node emulate)"
        self._wait_state(lambda s: s.get("firmware") in ("running", "halted", "crashed"), "boot")
        return "reset (emulator control socket)"

    def console_output(self) -> str:
        return ""

    def close(self) -> None:
        pass
