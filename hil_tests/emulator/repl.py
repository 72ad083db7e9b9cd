"""Running REPL code (console.py) in CPython as a MicroPython board would.

- `import os` / `import sys` in REPL code give thin views of CPython's modules with what
  mpremote and the installer look for on a board: os.ilistdir, os.uname (sysname "esp32",
  machine "Firelane emulated board with ESP32"), sys.implementation.name "micropython"
  version 1.29.0, sys.platform "esp32", sys.print_exception. There is no
  sys.implementation._mpy: this board cannot load .mpy files, it runs source.
- OSError tracebacks read as MicroPython's ("OSError: [Errno 2] ENOENT"), which mpremote
  turns back into the right error.
- Output: StdoutRouter replaces sys.stdout once; a thread running REPL code writes into its
  own buffer, every other thread (the firmware's print()) to the console and stderr.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterator
from typing import Any, TextIO

VERSION = (1, 29, 0, "")
MACHINE = "Firelane emulated board with ESP32"


def _ilistdir(path: str = ".") -> Iterator[tuple[str, int, int, int]]:
    for entry in os.scandir(path or "."):
        is_dir = entry.is_dir()
        yield entry.name, 0x4000 if is_dir else 0x8000, 0, 0 if is_dir else entry.stat().st_size


def _uname() -> tuple[str, ...]:
    release = ".".join(map(str, VERSION[:3]))
    fields = ("sysname", "nodename", "release", "version", "machine")
    values = ("esp32", "esp32", release, f"v{release} on 2026-08-29", MACHINE)
    return types.SimpleNamespace(**dict(zip(fields, values, strict=True)))  # type: ignore[return-value]


def _print_exception(exc: BaseException, file: TextIO | None = None) -> None:
    (file or sys.stdout).write(traceback_text(exc))


def _view(name: str, real: types.ModuleType, extra: dict[str, Any]) -> types.ModuleType:
    view = types.ModuleType(name)
    view.__dict__.update(extra)
    view.__dict__["__getattr__"] = lambda attr: getattr(real, attr)
    return view


OS = _view("os", os, {"ilistdir": _ilistdir, "uname": _uname, "sync": lambda: None})
SYS = _view(
    "sys",
    sys,
    {
        "implementation": types.SimpleNamespace(
            name="micropython", version=VERSION, _machine=MACHINE
        ),
        "platform": "esp32",
        "print_exception": _print_exception,
    },
)
_VIEWS = {"os": OS, "sys": SYS}


def _import(name: str, *args: Any, **kwargs: Any) -> Any:
    view = _VIEWS.get(name)
    return view if view is not None else builtins.__import__(name, *args, **kwargs)


BUILTINS: dict[str, Any] = {**vars(builtins), "__import__": _import}


def traceback_text(exc: BaseException) -> str:
    """A traceback as MicroPython prints it (OSError with its errno name)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        last = f"OSError: [Errno {exc.errno}] {name}\n"
        lines = traceback.format_exception(exc)
        return "".join(lines[:-1]) + last
    return "".join(traceback.format_exception(exc))


class StdoutRouter(io.TextIOBase):
    """sys.stdout for the emulator: per-thread capture for REPL code, else console + stderr."""

    def __init__(self, stderr: TextIO) -> None:
        self._stderr = stderr
        self._captures: dict[int, io.StringIO] = {}
        self.console: Callable[[str], None] | None = None

    def capture(self) -> io.StringIO:
        buf = io.StringIO()
        self._captures[threading.get_ident()] = buf
        return buf

    def release(self) -> None:
        self._captures.pop(threading.get_ident(), None)

    def write(self, text: str) -> int:
        buf = self._captures.get(threading.get_ident())
        if buf is not None:
            return buf.write(text)
        self._stderr.write(text)
        if self.console is not None:
            self.console(text)
        return len(text)

    def flush(self) -> None:
        self._stderr.flush()
