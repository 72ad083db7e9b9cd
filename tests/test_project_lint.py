"""The project lint (tools/lint_project.py) passes on the repository and catches violations."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import lint_project  # noqa: E402


def test_repository_is_clean() -> None:
    assert lint_project.check(ROOT) == []


@pytest.mark.parametrize(
    ("path", "source", "needle"),
    [
        ("protocol/bad.py", "import time\n", "sans-IO"),
        ("protocol/bad.py", "from asyncio import sleep\n", "sans-IO"),
        ("protocol/bad.py", "def f():\n    import socket\n", "sans-IO"),
        ("protocol/bad.py", "import serial.tools\n", "sans-IO"),
        ("firmware/sensors.py", "from machine import Pin\n", "only firmware/board.py"),
        ("gateway/x.py", "import machine\n", "only firmware/board.py"),
    ],
)
def test_violations_are_named(tmp_path: Path, path: str, source: str, needle: str) -> None:
    target = tmp_path / path
    target.parent.mkdir(parents=True)
    target.write_text(source)
    problems = lint_project.check(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith(path) and needle in problems[0]


def test_board_may_import_machine_and_protocol_may_import_struct(tmp_path: Path) -> None:
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "board.py").write_text("import machine\n")
    (tmp_path / "protocol").mkdir()
    (tmp_path / "protocol" / "ok.py").write_text("import struct\nfrom . import crc\n")
    assert lint_project.check(tmp_path) == []
