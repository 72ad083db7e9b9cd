"""The emulator process: boots, resets, power, watchdog, crashes, the control socket, the CLI.

A small stand-in firmware is flashed into the node's directory (a flashed bundle overrides the
repository's firmware/), so these tests pin down the emulator, not the application.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import cli
from hil_tests.emulator import runner
from hil_tests.emulator.control import ControlError
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.pty_kit import open_client, read_for

BOOT_PY = """
# flashed stand-in
import os

if "boot-crash" in os.listdir():
    raise RuntimeError("stand-in boot.py crashed")
"""
CONFIG_PY = """
# Flashed stand-in for firmware/config.py: the emulator takes the pin map from load().
class _Config:
    pins = {"uart_tx": 17, "uart_rx": 16, "de": 4, "led": 2, "button": 25}
    cal = {}


def load():
    return _Config()
"""
MAIN_PY = """
import asyncio
import time

import machine

try:
    with open("behaviour") as f:
        behaviour = f.read().strip()
except OSError:
    behaviour = "echo"
rtc = machine.RTC()
boots = rtc.memory()
rtc.memory(bytes([boots[0] + 1 if boots else 1]))  # boots since power-on
print("stand-in firmware:", behaviour, "cause", machine.reset_cause())
led = machine.Pin(2, machine.Pin.OUT, value=1)
de = machine.Pin(4, machine.Pin.OUT, value=0)
uart = machine.UART(1, baudrate=19200, tx=17, rx=16, bits=8, parity=0, stop=1, rxbuf=512)


async def echo():
    while True:
        n = uart.any()
        if n:
            data = uart.read(n)
            de.value(1)
            uart.write(data.upper())
            uart.flush()
            time.sleep_us(600)
            de.value(0)
        await asyncio.sleep(0.002)


if behaviour == "crash":
    raise ValueError("stand-in firmware crashed")
elif behaviour == "crash-after-wdt":
    wdt = machine.WDT(timeout=300)
    raise ValueError("stand-in firmware crashed with the watchdog running")
elif behaviour == "hang":  # the event loop runs, but nothing feeds the watchdog
    wdt = machine.WDT(timeout=300)
    asyncio.run(asyncio.sleep(3600))
elif behaviour == "busy":  # never yields, never touches the hardware
    wdt = machine.WDT(timeout=300)
    while True:
        pass
elif behaviour == "echo":
    asyncio.run(echo())
# "halt": main.py returns, as in maintenance mode
"""


def flash(fs: Path, behaviour: str) -> None:
    fs.mkdir(parents=True, exist_ok=True)
    (fs / "boot.py").write_text(BOOT_PY)
    (fs / "config.py").write_text(CONFIG_PY)
    (fs / "main.py").write_text(MAIN_PY)
    (fs / "behaviour").write_text(behaviour)


@pytest.fixture
def node(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    behaviour = getattr(request, "param", "echo")
    flash(tmp_path / "flash", behaviour)
    emu = EmulatorProcess(tmp_path / "flash", tmp_path / "ttyNODE", address=17)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def test_ready_boot_and_uart_events(node: EmulatorProcess) -> None:
    ready = node.events[0]
    assert ready["event"] == "ready"
    assert ready["serial"] == str(node.serial) and ready["control"] == str(node.control_path)
    assert ready["uid"] == "02f11a000011"  # derived from --address 17
    assert node.wait_event("boot") == {
        "event": "boot",
        "cause": "PWRON_RESET",
        "why": "power on",
        "boots": 1,
    }
    assert node.wait_event("uart")["baud"] == 19200
    assert json.loads((node.fs / "config.json").read_text()) == {"address": 17}  # commissioned


def test_uart_echo_through_the_pty(node: EmulatorProcess) -> None:
    node.wait_event("uart")
    fd = open_client(node.serial)
    try:
        os.write(fd, b"hello")
        assert read_for(fd, 5) == b"HELLO"
    finally:
        os.close(fd)
    with node.control() as ctl:
        # The reply has arrived; the firmware releases DE one character time later.
        state = ctl.wait_state(lambda s: s["outputs"]["de"]["level"] == 0, timeout=2.0)
    assert state["uart"]["rx_bytes"] == 5 and state["uart"]["tx_bytes"] == 5
    assert state["outputs"]["de"]["transitions"] == 2  # raised for the reply, then released


def test_resets_brownout_and_power_cycle(node: EmulatorProcess) -> None:
    node.wait_event("uart")
    with node.control() as ctl:
        assert ctl.state()["rtc_memory"] == "01"
        mark = node.mark()
        ctl.reset()
        assert node.wait_event("boot", since=mark)["cause"] == "HARD_RESET"
        node.wait_event("uart", since=mark)
        assert ctl.state()["rtc_memory"] == "02"  # RTC memory kept across a reset

        mark = node.mark()
        ctl.brownout()
        boot = node.wait_event("boot", since=mark)
        assert (boot["cause"], boot["why"], boot["boots"]) == ("PWRON_RESET", "brownout", 3)
        node.wait_event("uart", since=mark)
        assert ctl.state()["rtc_memory"] == "03"  # and across a brownout

        mark = node.mark()
        ctl.power(False)
        node.wait_event("power", since=mark, on=False)
        state = ctl.state()
        assert (state["powered"], state["firmware"]) == (False, "off")
        assert state["outputs"]["led"]["level"] == 0
        with pytest.raises(ControlError, match="powered off"):
            ctl.reset()

        mark = node.mark()
        ctl.power(True)
        boot = node.wait_event("boot", since=mark)
        assert (boot["cause"], boot["why"], boot["boots"]) == ("PWRON_RESET", "power on", 4)
        node.wait_event("uart", since=mark)
        state = ctl.state()
        assert state["rtc_memory"] == "01"  # lost with the power
        assert state["outputs"]["led"]["level"] == 1
    assert "stand-in firmware: echo cause 2" in node.stderr()  # print() goes to stderr


@pytest.mark.parametrize("node", ["hang", "busy"], indirect=True)
def test_watchdog_resets_a_stuck_firmware(node: EmulatorProcess) -> None:
    node.wait_event("reset", cause="WDT_RESET", why="watchdog")
    boot = node.wait_event("boot", cause="WDT_RESET")
    assert boot["boots"] == 2
    assert node.stop() == 0  # even a busy loop is stopped on SIGTERM


@pytest.mark.parametrize("node", ["crash"], indirect=True)
def test_a_crash_prints_the_traceback_and_waits_for_a_reset(node: EmulatorProcess) -> None:
    crash = node.wait_event("crash")
    assert crash["error"] == "ValueError: stand-in firmware crashed"
    assert 'main.py", line' in node.stderr() and "Traceback" in node.stderr()
    with node.control() as ctl:
        state = ctl.state()
        assert (state["firmware"], state["boots"], state["watchdog_ms"]) == ("crashed", 1, 0)
        mark = node.mark()
        ctl.reset()
        assert node.wait_event("boot", since=mark)["boots"] == 2


@pytest.mark.parametrize("node", ["crash-after-wdt"], indirect=True)
def test_a_crash_with_the_watchdog_running_ends_in_a_watchdog_reset(
    node: EmulatorProcess,
) -> None:
    crash = node.wait_event("crash")
    node.wait_event("reset", since=node.events.index(crash), cause="WDT_RESET")
    assert node.wait_event("boot", cause="WDT_RESET")["boots"] == 2


def test_main_py_runs_even_when_boot_py_raises(tmp_path: Path) -> None:
    flash(tmp_path / "flash", "echo")
    (tmp_path / "flash" / "boot-crash").write_text("")
    with EmulatorProcess(tmp_path / "flash", tmp_path / "tty") as emu:
        assert "RuntimeError: stand-in boot.py crashed" in emu.wait_event("crash")["error"]
        emu.wait_event("uart")  # main.py ran: MicroPython does the same
        with emu.control() as ctl:
            assert ctl.state()["firmware"] == "running"


@pytest.mark.parametrize("node", ["halt"], indirect=True)
def test_main_returning_leaves_the_board_up(node: EmulatorProcess) -> None:
    node.wait_event("halt")
    with node.control() as ctl:
        state = ctl.state()
    assert (state["powered"], state["firmware"]) == (True, "halted")
    assert state["outputs"]["led"]["level"] == 1


def test_control_socket_names_what_is_wrong(node: EmulatorProcess) -> None:
    requests = [
        (b"not json\n", "bad JSON"),
        (b'{"set": {"smok_pct": 1}}\n', "unknown input 'smok_pct'; known inputs: smoke_pct"),
        (b'{"set": {"leakage_ma": "lots"}}\n', "input 'leakage_ma': 'lots' is not a number"),
        (b'{"set": {"temperature_c": 1000}}\n', "outside -60..400"),
        (b'{"frob": 1}\n', "unknown request 'frob'"),
        (b"[]\n", "exactly one of set, power, brownout, reset, get"),
        (b'{"power": "maybe"}\n', '\'power\' takes "on" or "off"'),
        (b'{"reset": "warm"}\n', '\'reset\' takes "hard" or "soft"'),
        (b'{"get": "everything"}\n', "'get' takes \"state\""),
    ]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(node.control_path))
        f = sock.makefile("rb")
        try:
            for request, message in requests:
                sock.sendall(request)
                reply = json.loads(f.readline())
                assert reply["ok"] is False
                assert message in reply["error"]
            sock.sendall(b'{"set": {"leakage_ma": 350, "button": true}}\n')
            reply = json.loads(f.readline())
            assert reply["ok"] is True
            assert reply["inputs"]["leakage_ma"] == 350 and reply["inputs"]["button"] is True
        finally:
            f.close()


def test_sigterm_stops_cleanly(node: EmulatorProcess) -> None:
    node.wait_event("uart")
    assert node.serial.is_symlink() and node.control_path.is_socket()
    assert node.stop() == 0
    assert node.events[-1] == {"event": "exit"}
    assert not node.serial.is_symlink() and not node.serial.exists()
    assert not node.control_path.exists()


def test_serial_may_be_a_device_given_by_a_bus(tmp_path: Path) -> None:
    flash(tmp_path / "flash", "echo")
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    try:
        device = Path(os.ttyname(slave))
        with EmulatorProcess(tmp_path / "flash", device, uid="0200000000aa") as emu:
            assert emu.events[0]["uid"] == "0200000000aa"
            emu.wait_event("uart")
            os.write(master, b"bus")
            assert read_for(master, 3) == b"BUS"
        assert device.exists()  # not ours to remove
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--address", "0"], "--address 0: a node address is 1-247"),
        (["--baud", "12345"], "--baud 12345: one of 9600"),
        (["--uid", "xyz"], "--uid xyz: six bytes as 12 hex digits"),
    ],
)
def test_cli_refuses_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = ["--serial", str(tmp_path / "tty"), "--fs", str(tmp_path / "flash")]
    with pytest.raises(SystemExit) as exc:
        cli.main(["node", "emulate", *base, *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.main([*base, *args])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "flash").exists()  # refused before anything was made


def test_a_serial_path_that_is_a_regular_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a port")
    args = ["--serial", str(tmp_path / "notes.txt"), "--fs", str(tmp_path / "flash")]
    assert runner.main(args) == 2
    assert "is not a character device" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "not a port"


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def _command(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise AssertionError(f"no subcommand {name}")


def test_cli_and_module_take_the_same_options() -> None:
    emulate = _command(_command(cli.build_parser(), "node"), "emulate")
    assert _options(emulate) == _options(runner.build_parser())
