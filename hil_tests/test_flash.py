"""`firelane node build` then `firelane node flash` into emulated nodes, end to end.

Each test flashes a running emulated node, through its flash directory (--target dir:) or
through its USB console with mpremote's transport (--port), lets the command restart it and
confirm over RS-485, then reads version and address back over Modbus itself. The bad cases
(a busy port, a board that does not answer, an interrupted copy) end in one message, a
non-zero exit and a node that still boots.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import cli
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.node_helpers import Bus
from installer import bundle, flash
from installer.errors import InstallError
from installer.progress import Progress
from installer.target import FLAG, BoardTarget
from protocol import registers as r

HOUSE = ["--house", "No. 7 Lantern Lane", "--zone", "A"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> bundle.Bundle:
    return bundle.build(tmp_path_factory.mktemp("build"))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """An uncommissioned-looking node at address 17 running the repository's firmware, with
    a USB console."""
    emu = EmulatorProcess(
        tmp_path / "flash", tmp_path / "tty", address=17, console=tmp_path / "con"
    )
    emu.start()
    try:
        emu.wait_event("uart")
        yield emu
    finally:
        emu.stop()


def flash_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["node", "flash", *HOUSE, *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def read_back(node: EmulatorProcess, address: int) -> tuple[int, int, int]:
    """FW_VERSION, MAP_VERSION, ADDRESS over Modbus on the node's RS-485 pty."""
    with Bus(node.serial, unit=address) as bus:
        return bus.word(r.FW_VERSION), bus.word(r.MAP_VERSION_REG), bus.word(r.ADDRESS)


def expected_version() -> int:
    major, minor, _ = bundle.firmware_version()
    return major << 8 | minor


def test_flash_into_the_flash_directory_restart_and_read_back(
    node: EmulatorProcess, built: bundle.Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    mark = node.mark()
    code, out, err = flash_cli(
        capsys,
        *("--target", f"dir:{node.fs}", "--address", "12", "--bundle", str(built.dir)),
        *("--bus", str(node.serial), "--set", "leakage_alarm_ma=350"),
    )
    assert code == 0, err
    assert f"confirmed over {node.serial}: firmware {built.version}, register map v1" in out
    assert out.rstrip().endswith("address 12") or "address 12" in out
    node.wait_event("halt", since=mark)  # it went through maintenance mode
    assert read_back(node, 12) == (expected_version(), r.MAP_VERSION, 12)
    assert (node.fs / "app.py").read_bytes() == built.data("py", "app.py")
    assert not (node.fs / FLAG).exists()


def test_flash_over_the_usb_console_with_mpremote(
    node: EmulatorProcess, built: bundle.Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert node.console is not None
    mark = node.mark()
    code, out, err = flash_cli(
        capsys,
        *("--port", str(node.console), "--address", "21", "--bundle", str(built.dir)),
        *("--bus", str(node.serial)),
    )
    assert code == 0, err
    assert "MicroPython 1.29.0 on Firelane emulated board with ESP32" in out
    assert f"installed {built.name} (py set)" in out
    assert "confirmed over" in out and "address 21" in out
    node.wait_event("halt", since=mark, interrupted=True)  # Ctrl-C stopped the app
    node.wait_event("boot", since=mark, cause="HARD_RESET")
    assert read_back(node, 21) == (expected_version(), r.MAP_VERSION, 21)
    assert "boot check (soft reset, app not started): firmware" in out
    with Bus(node.serial, unit=21) as bus:  # the flash cleared the boot record: a fresh count
        assert bus.word(r.BOOT_FAILURES) == 1
    record = (node.fs / "firelane.json").read_text()
    assert '"set": "py"' in record


def test_an_interrupted_copy_leaves_a_bootable_node_and_the_next_flash_recovers(
    node: EmulatorProcess, built: bundle.Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert node.console is not None
    copied: list[str] = []

    def cable_pulled(path: str) -> None:
        copied.append(path)
        if len(copied) == 6:
            raise KeyboardInterrupt

    target = BoardTarget(str(node.console), 5.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            flash.flash(
                target,
                built,
                {"address": 30},
                Progress(1, tty=False),
                lambda s: None,
                hook=cable_pulled,
            )
    finally:
        target.close()
    assert (node.fs / FLAG).exists()
    with node.control() as ctl:
        mark = node.mark()
        ctl.power(False)  # the installer gives up and unplugs the node; later powers it again
        ctl.power(True)
        node.wait_event("halt", since=mark)  # boots, into maintenance mode
        state = ctl.state()
    assert state["mode"] == "maintenance" and state["outputs"]["led"]["level"] == 1
    code, out, err = flash_cli(
        capsys,
        *("--port", str(node.console), "--address", "30", "--bundle", str(built.dir)),
        *("--bus", str(node.serial)),
    )
    assert code == 0, err
    assert "a previous flash was interrupted; completing it" in out
    assert read_back(node, 30) == (expected_version(), r.MAP_VERSION, 30)


def test_a_console_held_by_another_process_is_busy(
    node: EmulatorProcess, built: bundle.Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import serial, sys; s = serial.Serial(sys.argv[1], exclusive=True); "
            "print('held', flush=True); sys.stdin.read()",
            str(node.console),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        code, _, err = flash_cli(
            capsys, "--port", str(node.console), "--address", "5", "--bundle", str(built.dir)
        )
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
        assert holder.stdout is not None
        holder.stdout.close()
    assert code == 1
    assert f"port {node.console} is busy: another program has it open" in err


def test_a_board_without_power_does_not_answer(
    node: EmulatorProcess, built: bundle.Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    with node.control() as ctl:
        ctl.power(False)
    code, _, err = flash_cli(
        capsys,
        *("--port", str(node.console), "--address", "5", "--bundle", str(built.dir)),
        *("--timeout", "1"),
    )
    assert code == 1
    assert "does not answer with a MicroPython REPL" in err and "esptool" in err


def test_flash_refuses_a_bad_config_before_touching_the_node(
    node: EmulatorProcess, built: bundle.Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = flash_cli(
        capsys,
        *("--target", f"dir:{node.fs}", "--address", "5", "--bundle", str(built.dir)),
        *("--set", "baud=12345"),
    )
    assert code == 1 and "config key 'baud': 12345 baud is not one of" in err
    assert not (node.fs / FLAG).exists()
    with pytest.raises(InstallError):
        flash.make_config(0, "H", "Z", [])


def test_firmware_that_does_not_start_is_caught_and_the_node_stays_in_maintenance(
    node: EmulatorProcess,
    built: bundle.Bundle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / built.name
    shutil.copytree(built.dir, broken)
    bad = b"raise ImportError('a broken build')\n"
    (broken / "py" / "app.py").write_bytes(bad)
    manifest = json.loads((broken / "manifest.json").read_text())
    for f in manifest["sets"]["py"]:
        if f["path"] == "app.py":
            f["size"], f["sha256"] = len(bad), hashlib.sha256(bad).hexdigest()
    (broken / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = flash_cli(
        capsys, "--port", str(node.console), "--address", "9", "--bundle", str(broken)
    )
    assert code == 1
    assert "the new firmware does not start" in err and "a broken build" in err
    assert "stays in maintenance mode" in err
    assert (node.fs / FLAG).exists()
    with node.control() as ctl:
        assert ctl.state()["mode"] == "maintenance"
