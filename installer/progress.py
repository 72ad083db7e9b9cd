"""A copy progress bar: one redrawn line on a terminal, a plain line per file otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

WIDTH = 30


class Progress:
    """Bytes copied out of total. file() names the file being copied, advance() counts bytes,
    done() ends the file; finish() ends the bar."""

    def __init__(self, total: int, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.copied = 0
        self.name = ""
        self._drawn = False

    def file(self, name: str) -> None:
        self.name = name
        self._draw()

    def advance(self, nbytes: int) -> None:
        self.copied = min(self.copied + nbytes, self.total)
        self._draw()

    def done(self, name: str, size: int, note: str = "copied") -> None:
        if self.tty:
            self._draw()
            return
        pct = 100 * self.copied // self.total
        self.stream.write(f"  {note:<9} {name} ({size:,} B)  {pct:3d}%\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def line(self, text: str) -> None:
        """A message that must not be overdrawn."""
        self.finish()
        self.stream.write(text + "\n")
        self.stream.flush()

    def _draw(self) -> None:
        if not self.tty:
            return
        filled = WIDTH * self.copied // self.total
        bar = "#" * filled + "." * (WIDTH - filled)
        pct = 100 * self.copied // self.total
        text = f"\r  [{bar}] {pct:3d}% {self.copied / 1024:6.1f}/{self.total / 1024:.1f} KB  "
        self.stream.write(text + f"{self.name[:28]:<28}")
        self.stream.flush()
        self._drawn = True
