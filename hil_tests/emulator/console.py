"""The emulated board's USB console: MicroPython's REPL protocol on a second pseudo-terminal.

Enough of it for mpremote (tools/mpremote/mpremote/transport_serial.py) and the installer:

- while the firmware runs, Ctrl-C interrupts it (KeyboardInterrupt in boot.py or main.py);
  every other byte waits in the receive buffer until the REPL reads it, as on a board;
- friendly REPL (">>> "): one line at a time, echoed; Ctrl-A raw REPL, Ctrl-B banner,
  Ctrl-C clears the line, Ctrl-D soft reset;
- raw REPL ("raw REPL; CTRL-B to exit\\r\\n>"): code, then Ctrl-D: "OK", its stdout, \\x04,
  the traceback, \\x04, ">". Ctrl-D on an empty line soft-resets (boot.py only: main.py runs
  after a soft reset only from the friendly REPL). Raw-paste mode ("\\x05A\\x01") is
  answered "R\\x01" with a flow-control window, or "R\\x00" (unsupported) with paste=False,
  after which mpremote falls back to the plain raw REPL.

The code runs in CPython on the emulator's side (Cpu.execute in runner.py), in the flash
directory, with just enough of MicroPython's sys and os (repl.py) for mpremote's fs commands.
Ctrl-C does not interrupt code run from the raw REPL.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

BANNER = (
    "MicroPython v1.29.0 on 2026-08-29; Firelane emulated board with ESP32\r\n"
    'Type "help()" for more information.\r\n'
)
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
PASTE_WINDOW = 4096  # bytes the host may send before the next \x01 (a board grants 128)
_CTRL_A, _CTRL_B, _CTRL_C, _CTRL_D, _CTRL_E = 1, 2, 3, 4, 5


class Cpu(Protocol):
    """What the console needs from the emulated CPU (runner.Node)."""

    def interrupt(self) -> None:
        """Ctrl-C while the firmware runs: raise KeyboardInterrupt in it."""

    def soft_reset(self) -> None:
        """Ctrl-D at the REPL."""

    def execute(self, code: str, single: bool) -> tuple[str, str] | None:
        """Run REPL code: (stdout, traceback text), or None when it reset the board."""


class Console:
    """The REPL's byte protocol; out() sends bytes to the host. Thread-safe."""

    def __init__(self, out: Callable[[bytes], None], cpu: Cpu, paste: bool = True) -> None:
        self._out = out
        self.cpu = cpu
        self.paste = paste
        self.raw = False  # pyexec_mode_kind: survives a soft reset, not a hard one
        self.at_repl = False  # False while boot.py/main.py run (or the board is off)
        self._pending = bytearray()  # received while the firmware ran
        self._line = bytearray()
        self._pasting = False
        self._granted = 0
        self._lock = threading.RLock()

    # From the emulated CPU.
    def booting(self, soft: bool) -> None:
        with self._lock:
            self.at_repl = False
            if soft:
                self._out(b"MPY: soft reboot\r\n")
            else:
                self.raw = False
                self._pending.clear()  # a reset empties the UART's buffer
            self._line.clear()
            self._pasting = False

    def run_main(self) -> bool:
        """Whether main.py runs after boot.py (only when the REPL is the friendly one)."""
        return not self.raw

    def repl(self) -> None:
        """boot.py and main.py are done (or stopped): the REPL takes the console."""
        with self._lock:
            self.at_repl = True
            self._out(RAW_PROMPT if self.raw else BANNER.encode() + b">>> ")
            pending, self._pending = bytes(self._pending), bytearray()
        if pending:
            self.feed(pending)

    def write(self, text: str) -> None:
        """The firmware's print(): console output, newlines as the board sends them."""
        self._out(text.replace("\r\n", "\n").replace("\n", "\r\n").encode(errors="replace"))

    # From the host.
    def feed(self, data: bytes) -> None:
        with self._lock:
            for byte in data:
                if not self.at_repl:
                    if byte == _CTRL_C:
                        self.cpu.interrupt()
                    else:
                        self._pending.append(byte)
                elif self._pasting:
                    self._paste_byte(byte)
                elif self.raw:
                    self._raw_byte(byte)
                else:
                    self._friendly_byte(byte)

    def _raw_byte(self, byte: int) -> None:
        line = self._line
        if byte == _CTRL_A:
            if len(line) == 2 and line[0] == _CTRL_E:  # "\x05A\x01": raw-paste request
                line.clear()
                if self.paste:
                    self._pasting, self._granted = True, PASTE_WINDOW
                    self._out(b"R\x01" + struct.pack("<H", PASTE_WINDOW))
                else:
                    self._out(b"R\x00")
                return
            line.clear()
            self._out(b"\r\n" + RAW_PROMPT)
        elif byte == _CTRL_B:
            line.clear()
            self.raw = False
            self._out(b"\r\n" + BANNER.encode() + b">>> ")
        elif byte == _CTRL_C:
            line.clear()
        elif byte == _CTRL_D:
            self._out(b"OK")
            if not line:
                self._out(b"\r\n")
                self._soft_reset()
                return
            self._run(bytes(line), False)
        else:
            line.append(byte)

    def _paste_byte(self, byte: int) -> None:
        line = self._line
        if byte == _CTRL_D:
            self._pasting = False
            self._out(b"\x04")
            self._run(bytes(line), False)
            return
        line.append(byte)
        self._granted -= 1
        if self._granted == 0:
            self._granted = PASTE_WINDOW
            self._out(b"\x01")

    def _run(self, code: bytes, single: bool) -> None:
        self._line.clear()
        result = self.cpu.execute(code.decode(errors="replace"), single)
        if result is None:  # machine.reset(): the board goes quiet and boots
            self.at_repl = False
            return
        stdout, stderr = result
        if single:
            self.write(stdout + stderr)
            self._out(b">>> ")
            return
        self._out(stdout.encode(errors="replace") + b"\x04" + stderr.encode() + b"\x04>")

    def _friendly_byte(self, byte: int) -> None:
        line = self._line
        if byte == _CTRL_A:
            line.clear()
            self.raw = True
            self._out(b"\r\n" + RAW_PROMPT)
        elif byte == _CTRL_B:
            line.clear()
            self._out(b"\r\n" + BANNER.encode() + b">>> ")
        elif byte == _CTRL_C:
            line.clear()
            self._out(b"\r\n>>> ")
        elif byte == _CTRL_D:
            if not line:
                self._out(b"\r\n")
                self._soft_reset()
        elif byte == 0x0D:
            self._out(b"\r\n")
            code = bytes(line).strip()
            line.clear()
            if code:
                self._run(code, True)
            else:
                self._out(b">>> ")
        elif byte in (0x08, 0x7F):
            if line:
                line.pop()
                self._out(b"\x08 \x08")
        elif byte >= 0x20:
            line.append(byte)
            self._out(bytes([byte]))

    def _soft_reset(self) -> None:
        self.at_repl = False
        self.cpu.soft_reset()


class ConsolePort:
    """A pseudo-terminal for a Console: PATH becomes a symlink to its slave end (the "USB
    serial port" mpremote opens). The slave end stays open here, so the master never reads
    EIO while no host is attached; output nobody reads fills the pty and is then dropped."""

    def __init__(self, path: Path, cpu: Cpu, paste: bool = True) -> None:
        self.path = path
        if path.is_symlink():
            path.unlink()  # left behind by an emulator that was killed
        elif path.exists():
            raise FileExistsError(f"{path} exists and is not a symlink to a console")
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.device = os.ttyname(self._slave)
        path.symlink_to(self.device)
        self._stop_r, self._stop_w = os.pipe()
        self._write_lock = threading.Lock()
        self.console = Console(self._send, cpu, paste)
        self._thread = threading.Thread(target=self._read, name="board.console", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _send(self, data: bytes) -> None:
        with self._write_lock:
            while data:
                try:
                    n = os.write(self._master, data)
                except BlockingIOError:
                    ready = select.select([], [self._master], [], 1.0)[1]
                    if not ready:
                        return  # nobody reads the console: drop, as a UART would
                    continue
                except OSError:
                    return
                data = data[n:]

    def _read(self) -> None:
        while True:
            ready = select.select([self._master, self._stop_r], [], [])[0]
            if self._stop_r in ready:
                return
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            if data:
                self.console.feed(data)

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.path.is_symlink():
            self.path.unlink()
