"""The emulated board's USB console (hil_tests/emulator/console.py): MicroPython's REPL
protocol byte for byte against a fake CPU, then real mpremote against an emulated node."""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.emulator.console import BANNER, PASTE_WINDOW, RAW_PROMPT, Console
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.emulator.repl import traceback_text


class FakeCpu:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.results: dict[str, tuple[str, str] | None] = {}

    def interrupt(self) -> None:
        self.calls.append("interrupt")

    def soft_reset(self) -> None:
        self.calls.append("soft_reset")

    def execute(self, code: str, single: bool) -> tuple[str, str] | None:
        self.calls.append(("single:" if single else "exec:") + code)
        return self.results.get(code, (f"ran {code}\n", ""))


def make(paste: bool = True) -> tuple[Console, FakeCpu, bytearray]:
    sent = bytearray()
    cpu = FakeCpu()
    console = Console(sent.extend, cpu, paste)
    return console, cpu, sent


def at_raw_repl(paste: bool = True) -> tuple[Console, FakeCpu, bytearray]:
    console, cpu, sent = make(paste)
    console.repl()
    console.feed(b"\r\x01")
    assert sent.endswith(RAW_PROMPT)
    sent.clear()
    return console, cpu, sent


def test_ctrl_c_interrupts_the_firmware_and_later_bytes_wait_for_the_repl() -> None:
    console, cpu, sent = make()
    console.booting(soft=False)
    console.feed(b"\r\x03\r\x01")
    assert cpu.calls == ["interrupt"] and sent == b""
    console.repl()  # the firmware stopped: the REPL reads what waited
    assert bytes(sent) == BANNER.encode() + b">>> " + b"\r\n>>> " * 2 + b"\r\n" + RAW_PROMPT
    assert console.raw


def test_raw_repl_runs_code_and_frames_its_output() -> None:
    console, cpu, sent = at_raw_repl()
    cpu.results["boom()"] = ("partial\n", "Traceback...\nValueError: x\n")
    console.feed(b"print(1)\x04")
    assert bytes(sent) == b"OKran print(1)\n\x04\x04>"
    sent.clear()
    console.feed(b"boom()\x04")
    assert bytes(sent) == b"OKpartial\n\x04Traceback...\nValueError: x\n\x04>"


def test_raw_paste_with_flow_control() -> None:
    console, _, sent = at_raw_repl()
    console.feed(b"\x05A\x01")
    assert bytes(sent) == b"R\x01" + struct.pack("<H", PASTE_WINDOW)
    sent.clear()
    code = b"x = 1  # " + b"." * PASTE_WINDOW
    console.feed(code[:PASTE_WINDOW])
    assert bytes(sent) == b"\x01"  # the window is used up: another one granted
    console.feed(code[PASTE_WINDOW:] + b"\x04")
    assert bytes(sent) == b"\x01\x04" + f"ran {code.decode()}\n".encode() + b"\x04\x04>"


def test_raw_paste_unsupported_falls_back_to_the_raw_repl() -> None:
    console, _, sent = at_raw_repl(paste=False)
    console.feed(b"\x05A\x01")
    assert bytes(sent) == b"R\x00"
    sent.clear()
    console.feed(b"print(2)\x04")
    assert bytes(sent) == b"OKran print(2)\n\x04\x04>"


def test_ctrl_d_on_an_empty_line_soft_resets_and_keeps_the_raw_repl() -> None:
    console, cpu, sent = at_raw_repl()
    console.feed(b"\x04")
    assert bytes(sent) == b"OK\r\n" and cpu.calls == ["soft_reset"]
    console.booting(soft=True)
    assert not console.run_main()  # main.py does not run after a raw-REPL soft reset
    console.repl()
    assert bytes(sent) == b"OK\r\nMPY: soft reboot\r\n" + RAW_PROMPT


def test_a_hard_reset_returns_to_the_friendly_repl_and_ctrl_b_leaves_raw() -> None:
    console, cpu, sent = at_raw_repl()
    cpu.results["import machine\nmachine.reset()"] = None
    console.feed(b"import machine\nmachine.reset()\x04")
    assert bytes(sent) == b"OK" and not console.at_repl
    console.booting(soft=False)
    assert console.run_main()
    console.repl()
    console.feed(b"\x01\x02")
    assert bytes(sent).endswith(b"\r\n" + BANNER.encode() + b">>> ")


def test_the_friendly_repl_echoes_and_runs_a_line() -> None:
    console, cpu, sent = make()
    console.repl()
    sent.clear()
    console.feed(b"1+x\x7f1\r")
    assert cpu.calls == ["single:1+1"]
    assert bytes(sent) == b"1+x\x08 \x081\r\nran 1+1\r\n>>> "


def test_oserror_tracebacks_read_as_micropythons() -> None:
    try:
        Path("/nonexistent/file").read_text()
    except OSError as exc:
        text = traceback_text(exc)
    assert text.endswith("OSError: [Errno 2] ENOENT\n")


# Real mpremote against an emulated node's console.
@pytest.fixture
def node(tmp_path: Path) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(
        tmp_path / "flash", tmp_path / "tty", address=17, console=tmp_path / "con"
    )
    emu.start()
    try:
        emu.wait_event("uart")  # the app runs
        yield emu
    finally:
        emu.stop()


def mpremote(console: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", str(console), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_mpremote_interrupts_the_app_copies_lists_and_resets(
    node: EmulatorProcess, tmp_path: Path
) -> None:
    assert node.console is not None
    (tmp_path / "hello.txt").write_text("hello from the laptop\n")
    mark = node.mark()
    mpremote(node.console, "fs", "cp", str(tmp_path / "hello.txt"), ":hello.txt")
    node.wait_event("halt", since=mark, interrupted=True)  # Ctrl-C stopped the app
    assert (tmp_path / "flash" / "hello.txt").read_text() == "hello from the laptop\n"
    listing = mpremote(node.console, "fs", "ls")
    assert "hello.txt" in listing and "config.json" in listing
    out = mpremote(node.console, "exec", "import sys; print(sys.implementation.name)")
    assert out.strip() == "micropython"
    mark = node.mark()
    mpremote(node.console, "reset")
    node.wait_event("boot", since=mark, cause="HARD_RESET")
    node.wait_event("uart", since=mark)  # the app runs again after the reset
