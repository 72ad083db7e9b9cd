"""Reading and writing a pseudo-terminal from a test, as a serial device's far end would."""

from __future__ import annotations

import os
import select
import time
import tty
from pathlib import Path


def open_client(path: Path) -> int:
    """Open a pty (or its symlink) raw, without making it our controlling terminal."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def read_for(fd: int, n: int, timeout: float = 2.0) -> bytes:
    """Up to n bytes, waiting for them until timeout (a deadline, not a sleep)."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n and select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
        data += os.read(fd, 1024)
    return data
