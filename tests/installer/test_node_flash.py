"""`firelane node flash` without a board: the copy procedure on a flash directory, the config,
the MicroPython check, the progress bar, and the messages for bad input."""

from __future__ import annotations

import io
import json
import os
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial  # type: ignore[import-untyped]

from gateway import cli
from installer import bundle, flash, micropython
from installer.errors import InstallError
from installer.progress import Progress
from installer.target import FLAG, DirTarget

ESP32_MPY = 6 | 3 << 8 | 10 << 10  # mpy v6.3, xtensawin: what MicroPython 1.29 on an ESP32 says


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> bundle.Bundle:
    return bundle.build(tmp_path_factory.mktemp("build"))


CONFIG = {"address": 12, "house": "No. 7 Lantern Lane", "zone": "A"}


def quiet() -> Progress:
    return Progress(1, io.StringIO(), tty=False)


def run_flash(target: DirTarget, built: bundle.Bundle, **kw: object) -> flash.Report:
    lines: list[str] = []
    return flash.flash(target, built, CONFIG, quiet(), lines.append, **kw)  # type: ignore[arg-type]


# The copy procedure.
def test_a_flash_writes_every_file_the_config_and_the_record(
    built: bundle.Bundle, tmp_path: Path
) -> None:
    report = run_flash(DirTarget(str(tmp_path)), built)
    assert report.file_set == "py" and report.copied[-2:] == ["boot.py", "main.py"]
    for f in built.files("py"):
        assert (tmp_path / f.path).read_bytes() == built.data("py", f.path)
    assert json.loads((tmp_path / "config.json").read_text()) == CONFIG
    record = json.loads((tmp_path / "firelane.json").read_text())
    assert record["set"] == "py" and record["firmware_version"] == built.version
    assert not (tmp_path / FLAG).exists()
    assert not list(tmp_path.rglob("*.new"))
    assert report.restart.startswith("not restarted: no emulator")


def test_a_second_flash_copies_only_the_config(built: bundle.Bundle, tmp_path: Path) -> None:
    run_flash(DirTarget(str(tmp_path)), built)
    report = run_flash(DirTarget(str(tmp_path)), built)
    assert report.copied == ["config.json"] and len(report.unchanged) == len(built.files("py"))


def test_stale_firmware_files_are_removed(built: bundle.Bundle, tmp_path: Path) -> None:
    (tmp_path / "protocol").mkdir()
    (tmp_path / "app.mpy").write_bytes(b"old")  # MicroPython would prefer it to nothing
    (tmp_path / "protocol" / "names.py").write_text("# gateway only")
    (tmp_path / "counter").write_text("1024")  # the node's own data stays
    report = run_flash(DirTarget(str(tmp_path)), built)
    assert sorted(report.removed) == ["app.mpy", "protocol/names.py"]
    assert (tmp_path / "counter").read_text() == "1024"


def test_an_interrupted_flash_leaves_the_flag_and_the_next_one_completes(
    built: bundle.Bundle, tmp_path: Path
) -> None:
    seen: list[str] = []

    def pull_the_cable(path: str) -> None:
        seen.append(path)
        if len(seen) == 5:
            (tmp_path / (path + ".new")).write_bytes(b"half a fi")  # a torn temporary file
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_flash(DirTarget(str(tmp_path)), built, hook=pull_the_cable)
    assert (tmp_path / FLAG).read_text().startswith(flash.FLASHING)  # boots into maintenance
    assert not (tmp_path / "main.py").exists()  # the scripts go last
    report = run_flash(DirTarget(str(tmp_path)), built)
    assert report.recovered
    assert len(report.unchanged) == 4  # what was copied before the interruption
    assert not (tmp_path / FLAG).exists() and not list(tmp_path.rglob("*.new"))
    for f in built.files("py"):
        assert (tmp_path / f.path).read_bytes() == built.data("py", f.path)


class Damaging(DirTarget):
    def write(self, path: str, data: bytes, advance: Callable[[int], None]) -> None:
        (self.root / path).write_bytes(data[:-1] + b"?")


def test_a_file_that_arrives_damaged_is_not_installed(built: bundle.Bundle, tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="arrived damaged") as exc:
        run_flash(Damaging(str(tmp_path)), built)
    assert "run the same flash command again" in exc.value.hint
    assert (tmp_path / FLAG).exists() and not list(tmp_path.rglob("*.new"))


# config.json.
def test_the_config_is_checked_by_the_firmwares_own_schema() -> None:
    cfg = flash.make_config(12, "No. 7", "A", ["leakage_alarm_ma=350", "link_mode=push"])
    assert cfg == {
        "address": 12,
        "house": "No. 7",
        "zone": "A",
        "leakage_alarm_ma": 350,
        "link_mode": "push",
    }
    with pytest.raises(InstallError, match=r"'leakage_alarm_ma': 5000 is outside 20\.\.1000"):
        flash.make_config(12, "H", "Z", ["leakage_alarm_ma=5000"])
    with pytest.raises(InstallError, match="config key 'colour' is unknown"):
        flash.make_config(12, "H", "Z", ["colour=red"])
    with pytest.raises(InstallError, match="give key=value"):
        flash.make_config(12, "H", "Z", ["leakage_alarm_ma"])


# MicroPython on the board.
@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (("micropython", (1, 29, 0), ESP32_MPY, "esp32", "Generic ESP32 module with ESP32"), "mpy"),
        (("micropython", (1, 24, 1), ESP32_MPY, "esp32", "Generic ESP32 module with ESP32"), "mpy"),
        (("micropython", (1, 22, 0), 6 | 2 << 8, "esp32", "Generic ESP32 module with ESP32"), None),
        (("micropython", (1, 29, 0), None, "esp32", "Generic ESP32 module with ESP32"), None),
        (("micropython", (1, 29, 0), None, "esp32", "Firelane emulated board with ESP32"), "py"),
        (("cpython", (3, 11, 7), None, "Linux", "x86_64"), None),
    ],
)
def test_which_set_a_board_runs(reply: tuple[object, ...], kind: str | None) -> None:
    assert micropython.parse(repr(reply)).file_set() == kind


def test_the_esptool_hint_names_the_port_and_how_to_get_esptool() -> None:
    hint = micropython.install_hint("/dev/ttyUSB0")
    assert "python -m esptool --chip esp32 --port /dev/ttyUSB0 erase_flash" in hint
    assert "write_flash -z 0x1000 ESP32_GENERIC-<date>-v1.29.0.bin" in hint
    assert "pip install esptool" in hint and "--install-micropython" in hint


# The progress bar.
def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    plain = io.StringIO()
    bar = Progress(200, plain, tty=False)
    bar.file("app.py")
    bar.advance(100)
    bar.done("app.py", 100)
    bar.finish()
    assert plain.getvalue() == "  copied    app.py (100 B)   50%\n"
    term = io.StringIO()
    bar = Progress(200, term, tty=True)
    bar.file("app.py")
    bar.advance(200)
    bar.finish()
    assert "\r  [##############################] 100%" in term.getvalue()
    assert term.getvalue().endswith("\n")


# Bad input on the command line: one message, what to do, a non-zero exit, no traceback.
def flash_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    base = ["node", "flash", "--house", "H", "--zone", "Z"]
    code = cli.main([*base, *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_an_address_out_of_range(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = flash_cli(capsys, "--target", f"dir:{tmp_path}", "--address", "248")
    assert code == 2
    assert err.startswith("firelane node flash: --address 248 is out of range: a node address")


def test_a_missing_port(capsys: pytest.CaptureFixture[str], built: bundle.Bundle) -> None:
    code, err = flash_cli(
        capsys, "--port", "/dev/ttyUSB97", "--address", "3", "--bundle", str(built.dir)
    )
    assert code == 1
    assert "no such port: /dev/ttyUSB97" in err and "plug in the node's USB cable" in err


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_a_port_held_exclusively_is_busy(
    capsys: pytest.CaptureFixture[str], built: bundle.Bundle, pty_pair: tuple[int, str]
) -> None:
    _, port = pty_pair
    with serial.Serial(port, exclusive=True):
        code, err = flash_cli(capsys, "--port", port, "--address", "3", "--bundle", str(built.dir))
    assert code == 1
    assert f"port {port} is busy: another program has it open" in err and "fuser" in err


def test_a_board_that_does_not_answer(
    capsys: pytest.CaptureFixture[str], built: bundle.Bundle, pty_pair: tuple[int, str]
) -> None:
    _, port = pty_pair
    code, err = flash_cli(
        capsys, "--port", port, "--address", "3", "--bundle", str(built.dir), "--timeout", "0.5"
    )
    assert code == 1
    assert f"the board on {port} does not answer with a MicroPython REPL" in err
    assert f"python -m esptool --chip esp32 --port {port} erase_flash" in err


def test_a_bundle_that_is_not_one(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = flash_cli(
        capsys, "--target", f"dir:{tmp_path}", "--address", "3", "--bundle", str(tmp_path)
    )
    assert code == 1 and "is not a node bundle" in err and "firelane node build" in err


def test_install_micropython_without_esptool_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(InstallError, match="needs esptool") as exc:
        micropython.install("/dev/ttyUSB0", "image.bin")
    assert "pip install esptool" in exc.value.hint


class OldMicroPython(DirTarget):
    port = "/dev/ttyUSB0"

    def identify(self) -> micropython.BoardInfo:
        return micropython.BoardInfo("micropython", (1, 22, 0), 6 | 2 << 8, "esp32", "ESP32")


def test_a_board_with_the_wrong_micropython_gets_the_esptool_commands(
    built: bundle.Bundle, tmp_path: Path
) -> None:
    with pytest.raises(InstallError, match=r"runs MicroPython 1\.22\.0 on ESP32") as exc:
        run_flash(OldMicroPython(str(tmp_path)), built)
    assert "--port /dev/ttyUSB0 erase_flash" in exc.value.hint
    assert not list(tmp_path.iterdir())  # nothing was written


def test_an_interrupted_flash_command_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    built: bundle.Bundle,
    tmp_path: Path,
) -> None:
    def interrupted(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(flash, "flash", interrupted)
    code, err = flash_cli(
        capsys, "--target", f"dir:{tmp_path}", "--address", "3", "--bundle", str(built.dir)
    )
    assert code == 130
    assert "interrupted" in err and "run the same command again" in err
