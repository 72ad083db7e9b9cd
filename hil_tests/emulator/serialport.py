"""The emulated board's end of the RS-485 line: a pseudo-terminal, or a device given to it.

Either PATH already is a character device (say a pty end handed out by a virtual bus) and is
opened raw, or a new pty pair is made, PATH becomes a symlink to its slave end for any Modbus
master (pymodbus, pyserial) to open, and the board keeps the master end. A pty ignores baud
rates: pacing is the virtual bus's job (../../shared/TOOLING.md).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import tty
from pathlib import Path

_CHUNK = 4096


class SerialLine:
    """Non-blocking byte I/O on the board's end of the line, safe to use from any thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._link = False
        self._pty = False
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            mode = 0
        if stat.S_ISCHR(mode):
            self._fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(self._fd)
            self.device = str(self.path)
        else:
            if self.path.is_symlink():
                self.path.unlink()  # left behind by an emulator that was killed
            elif self.path.exists():
                raise FileExistsError(f"{self.path} exists and is not a character device")
            master, slave = os.openpty()
            try:
                tty.setraw(master)
                tty.setraw(slave)  # raw, no echo: what a master opening the other end expects
                self.device = os.ttyname(slave)
                os.set_blocking(master, False)
                self.path.symlink_to(self.device)
            except BaseException:
                os.close(master)
                os.close(slave)
                raise
            # The slave end is not held open here: with nobody on it, reading the master
            # fails with EIO, which is how the board knows nothing is listening on the line.
            os.close(slave)
            self._fd = master
            self._link = self._pty = True

    def read(self) -> bytes:
        """What has arrived since the last call (b"" when nothing has)."""
        data, _ = self._read()
        return data

    def _read(self) -> tuple[bytes, bool]:
        """(bytes that arrived, whether anyone has the other end open)."""
        chunks: list[bytes] = []
        with self._lock:
            while True:
                try:
                    chunk = os.read(self._fd, _CHUNK)
                except BlockingIOError:
                    return b"".join(chunks), True
                except OSError as exc:
                    if exc.errno == errno.EIO:  # pty with no slave open
                        return b"".join(chunks), False
                    raise
                if not chunk:
                    return b"".join(chunks), False
                chunks.append(chunk)

    def write(self, data: bytes) -> tuple[bytes, int]:
        """Send data; returns (bytes that arrived meanwhile, bytes sent). Nothing is sent while
        nobody has the other end open (a bus with no master) or when its buffer is full."""
        arrived, listening = self._read() if self._pty else (b"", True)
        if not listening:
            return arrived, 0
        sent = 0
        with self._lock:
            while sent < len(data):
                try:
                    sent += os.write(self._fd, data[sent:])
                except (BlockingIOError, OSError):
                    break
        return arrived, sent

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        if self._link and self.path.is_symlink():
            self.path.unlink()
            self._link = False

    def __enter__(self) -> SerialLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
