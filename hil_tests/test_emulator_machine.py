"""The simulated machine module, without firmware: watchdog, RTC memory, timers, UART, analog."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil_tests.emulator import inputs, machine, sim, timecompat
from hil_tests.emulator.serialport import SerialLine
from hil_tests.emulator.sim import ResetSignal, SimBoard
from hil_tests.pty_kit import open_client, read_for

UID = bytes.fromhex("02f11a000011")
PINS = {"de": 4, "smoke": 34, "ct": 35, "temperature": 32, "supply": 33, "button": 25}
PINS |= {"hush": 26, "led": 2, "buzzer": 27}


class Resets:
    """Records the board's resets; wait() blocks until one arrives (bounded)."""

    def __init__(self, board: SimBoard) -> None:
        self.seen: list[tuple[int, str]] = []
        self._event = threading.Event()
        board.on_reset = self._on_reset

    def _on_reset(self, cause: int, why: str) -> None:
        self.seen.append((cause, why))
        self._event.set()

    def wait(self, timeout: float) -> tuple[int, str]:
        assert self._event.wait(timeout), "the board did not reset"
        return self.seen[-1]


@pytest.fixture
def board(tmp_path: Path) -> Iterator[SimBoard]:
    b = SimBoard(UID)
    b.set_pin_map(PINS, {})
    b.firmware_thread = threading.get_ident()  # this test plays the firmware
    b.begin_boot()
    undo = [machine.install(b), timecompat.install(b)]
    try:
        yield b
    finally:
        for fn in reversed(undo):
            fn()
        b.close()


def reboot(board: SimBoard) -> None:
    """What runner.py does between two runs of the firmware."""
    assert board.wait_boot(timeout=0) is not None
    board.begin_boot()


def test_install_makes_import_machine_the_simulation(board: SimBoard) -> None:
    assert importlib.import_module("machine") is machine
    assert time.ticks_diff(time.ticks_ms(), 0) >= 0  # type: ignore[attr-defined]


def test_install_is_undone() -> None:
    b = SimBoard(UID)
    undo = [machine.install(b), timecompat.install(b)]
    for fn in reversed(undo):
        fn()
    b.close()
    assert "machine" not in sys.modules
    assert not hasattr(time, "ticks_ms")
    assert "micropython" not in sys.modules


def test_ticks_wrap_at_2_to_the_30() -> None:
    near = (1 << 30) - 5
    later = timecompat.ticks_add(near, 10)
    assert later == 5
    assert timecompat.ticks_diff(later, near) == 10
    assert timecompat.ticks_diff(near, later) == -10


def test_watchdog_not_fed_resets_with_wdt_reset(board: SimBoard) -> None:
    resets = Resets(board)
    wdt = machine.WDT(timeout=50)
    assert resets.wait(5.0) == (sim.WDT_RESET, "watchdog")
    with pytest.raises(ResetSignal):
        wdt.feed()  # the old boot's objects are dead
    reboot(board)
    assert machine.reset_cause() == machine.WDT_RESET
    assert board.boots == 2


def test_watchdog_fed_in_time_does_not_reset(board: SimBoard) -> None:
    resets = Resets(board)
    wdt = machine.WDT(timeout=200)
    end = time.monotonic() + 0.6  # three timeouts' worth of feeding
    while time.monotonic() < end:
        wdt.feed()
        time.sleep(0.02)  # the behaviour under test: a firmware feeding every 20 ms
    assert resets.seen == []


def test_rtc_memory_survives_resets_and_brownout_not_a_power_cut(board: SimBoard) -> None:
    rtc = machine.RTC()
    assert rtc.memory() == b""  # power-on: nothing kept
    rtc.memory(b"\xf1\xa5\x01")
    assert board.request_reset(sim.HARD_RESET, "test")
    reboot(board)
    assert machine.reset_cause() == machine.HARD_RESET
    assert machine.RTC().memory() == b"\xf1\xa5\x01"
    assert board.brownout()
    reboot(board)
    assert machine.reset_cause() == machine.PWRON_RESET  # as the ESP32 reports a brownout
    assert machine.RTC().memory() == b"\xf1\xa5\x01"
    board.power(False)
    assert not board.request_reset(sim.HARD_RESET, "no power, no reset")
    board.power(True)
    reboot(board)
    assert machine.reset_cause() == machine.PWRON_RESET
    assert machine.RTC().memory() == b""


def test_rtc_memory_holds_2_kib(board: SimBoard) -> None:
    machine.RTC().memory(bytes(2048))
    with pytest.raises(ValueError):
        machine.RTC().memory(bytes(2049))


def test_machine_reset_stops_the_caller_and_reports_hard_reset(board: SimBoard) -> None:
    led = machine.Pin(2, machine.Pin.OUT, value=1)
    with pytest.raises(ResetSignal):
        machine.reset()
    with pytest.raises(ResetSignal):
        led.value(0)
    assert board.outputs[2].level == 0  # outputs fall at a reset
    reboot(board)
    assert machine.reset_cause() == machine.HARD_RESET


def test_unique_id_is_the_boards(board: SimBoard) -> None:
    assert machine.unique_id() == UID


def sample_ct(board: SimBoard, n: int = 200) -> tuple[list[int], list[int], list[float]]:
    """Sample the CT input from a 1 ms timer as firmware/board.py does: (mV, tick us, wall s)."""
    adc = machine.ADC(machine.Pin(PINS["ct"]), atten=machine.ADC.ATTN_11DB)
    mv: list[int] = []
    ticks: list[int] = []
    wall: list[float] = []
    done = threading.Event()
    timer = machine.Timer(0)

    def tick(_t: Any) -> None:
        if len(mv) < n:
            mv.append(adc.read_uv() // 1000)
            ticks.append(time.ticks_us())  # type: ignore[attr-defined]
            wall.append(time.monotonic())
        else:
            timer.deinit()
            done.set()

    timer.init(mode=machine.Timer.PERIODIC, period=1, callback=tick)
    assert done.wait(10.0), f"the timer delivered {len(mv)} of {n} ticks"
    return mv, ticks, wall


def rms(x: list[int]) -> float:
    mean = sum(x) / len(x)
    return math.sqrt(sum(v * v for v in x) / len(x) - mean * mean)


@pytest.mark.parametrize("leakage_ma", [30.0, 350.0, 1000.0])
def test_timer_batches_sample_the_ct_at_the_right_phase(board: SimBoard, leakage_ma: float) -> None:
    board.inputs = {**board.inputs, "leakage_ma": leakage_ma}
    mv, ticks, wall = sample_ct(board)
    assert all(b - a == 1000 for a, b in itertools.pairwise(ticks))  # simulated 1 kHz
    batches = 1 + sum(1 for a, b in itertools.pairwise(wall) if b - a > 0.0005)
    assert batches < 60  # delivered in batches, not 200 wake-ups
    measured = rms(mv) * 1000 / sim.DEFAULT_CAL["ct_uv_per_ma"]
    assert abs(measured - leakage_ma) <= 0.02 * leakage_ma + 1.0  # +1 mA: 1 mV steps
    assert abs(sum(mv) / len(mv) - sim.DEFAULT_CAL["ct_bias_mv"]) < 2


def test_with_an_event_loop_timer_batches_run_on_the_firmware_thread(board: SimBoard) -> None:
    """As soft IRQs do on the ESP32: never alongside the firmware's own code."""
    board.inputs = {**board.inputs, "leakage_ma": 350.0}
    undo = board.capture_loops()
    adc = machine.ADC(machine.Pin(PINS["ct"]), atten=machine.ADC.ATTN_11DB)
    samples: list[int] = []
    threads: set[int] = set()

    async def firmware() -> None:
        done = asyncio.Event()
        timer = machine.Timer(0)

        def tick(_t: Any) -> None:
            threads.add(threading.get_ident())
            samples.append(adc.read_uv() // 1000)
            if len(samples) == 200:
                timer.deinit()
                done.set()

        timer.init(mode=machine.Timer.PERIODIC, period=1, callback=tick)
        await asyncio.wait_for(done.wait(), 10.0)

    try:
        asyncio.run(firmware())
    finally:
        undo()
    assert threads == {board.firmware_thread}
    measured = rms(samples) * 1000 / sim.DEFAULT_CAL["ct_uv_per_ma"]
    assert abs(measured - 350) <= 0.02 * 350


def test_ct_open_reads_the_rail(board: SimBoard) -> None:
    board.inputs = {**board.inputs, "ct_open": True, "leakage_ma": 300.0}
    mv, _, _ = sample_ct(board, 20)
    assert set(mv) == {3300}


def mv(name: str) -> int:
    return machine.ADC(machine.Pin(PINS[name]), atten=machine.ADC.ATTN_11DB).read_uv() // 1000


def test_analog_model_inverts_the_calibration(board: SimBoard) -> None:
    board.inputs = {**board.inputs, "smoke_pct": 3.0, "temperature_c": 21.0, "supply_v": 12.0}
    assert mv("smoke") == 400 + 3 * 50
    assert mv("temperature") == 500 + 21 * 10
    assert mv("supply") == 12000 // 11
    board.inputs = {**board.inputs, "smoke_drift_mv": 120.0}
    assert mv("smoke") == 400 + 120 + 3 * 50
    board.set_pin_map(PINS, {"smoke_clean_mv": 300, "supply_divider": 10})
    assert mv("smoke") == 300 + 120 + 3 * 50
    assert mv("supply") == 1200


@pytest.mark.parametrize(
    ("name", "state", "expected"),
    [
        ("smoke_input", "open", 0),
        ("smoke_input", "short", 3300),
        ("temperature_input", "open", 0),
        ("temperature_input", "short", 3300),
    ],
)
def test_faulty_sensor_inputs_leave_the_range(
    board: SimBoard, name: str, state: str, expected: int
) -> None:
    board.inputs = {**board.inputs, name: state}
    assert mv(name.split("_")[0]) == expected


def test_analog_inputs_clamp_to_the_rail(board: SimBoard) -> None:
    board.inputs = {**board.inputs, "smoke_pct": 100.0, "supply_v": 60.0}
    assert mv("smoke") == 3300
    assert mv("supply") == 3300


def test_buttons_are_active_low_and_outputs_are_recorded(board: SimBoard) -> None:
    button = machine.Pin(PINS["button"], machine.Pin.IN, machine.Pin.PULL_UP)
    assert button.value() == 1
    board.inputs = {**board.inputs, "button": True}
    assert button.value() == 0
    buzzer = machine.Pin(PINS["buzzer"], machine.Pin.OUT, value=0)
    for level in (1, 0, 1):
        buzzer.value(level)
    assert board.outputs[PINS["buzzer"]].level == 1
    assert board.outputs[PINS["buzzer"]].transitions == 3


def test_esp32_pin_rules(board: SimBoard) -> None:
    with pytest.raises(ValueError):
        machine.Pin(34, machine.Pin.OUT)  # GPIO 34-39 are input-only
    with pytest.raises(ValueError):
        machine.Pin(24)  # no such GPIO
    with pytest.raises(ValueError):
        machine.ADC(machine.Pin(5))  # not an ADC pin


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"smok_pct": 1}, "unknown input 'smok_pct'"),
        ({"smoke_pct": "3"}, "input 'smoke_pct': '3' is not a number"),
        ({"smoke_pct": True}, "is not a number"),
        ({"leakage_ma": -1}, "outside 0..10000"),
        ({"leakage_ma": float("nan")}, "outside"),
        ({"button": 1}, "input 'button': 1 is not true or false"),
        ({"smoke_input": "broken"}, "is not one of ok, open, short"),
        ([1, 2], "'set' takes an object"),
    ],
)
def test_input_validation_names_the_problem(changes: object, message: str) -> None:
    with pytest.raises(inputs.InputError, match=message):
        inputs.validate(changes)


def uart_any(uart: machine.UART, n: int, timeout: float = 2.0) -> int:
    """Poll uart.any() as the firmware's link task does, until n bytes are there (bounded)."""
    deadline = time.monotonic() + timeout
    while uart.any() < n and time.monotonic() < deadline:
        time.sleep(0.001)
    return uart.any()


def test_pty_uart_round_trip(tmp_path: Path) -> None:
    link = tmp_path / "ttyNODE"
    line = SerialLine(link)
    b = SimBoard(UID, line)
    b.set_pin_map(PINS, {})
    b.begin_boot()
    undo = machine.install(b)
    fd = -1
    try:
        assert link.is_symlink() and os.path.realpath(link).startswith("/dev/pts/")
        uart = machine.UART(1, baudrate=19200, tx=17, rx=16, bits=8, parity=0, stop=1, rxbuf=512)
        de = machine.Pin(PINS["de"], machine.Pin.OUT, value=1)
        assert uart.read() is None
        uart.write(b"nobody listens")  # no master on the line yet: lost
        assert b.uart_stats["tx_bytes"] == 0
        de.value(0)
        fd = open_client(link)
        os.write(fd, b"\x11\x03\x00\x00\x00\x01")
        assert uart_any(uart, 6) == 6
        assert uart.read(4) == b"\x11\x03\x00\x00"
        assert uart.read() == b"\x00\x01"
        assert uart.read() is None
        uart.write(b"DE is low")  # the transceiver does not drive the line
        de.value(1)
        uart.write(b"\x11\x03\x02\x00\x2a")
        uart.flush()
        assert read_for(fd, 100, timeout=0.3) == b"\x11\x03\x02\x00\x2a"  # and nothing else
        assert b.uart_stats["tx_de_low"] == len(b"DE is low")
        assert b.uart_stats["tx_bytes"] == 5
        assert b.uart_config["baud"] == 19200
    finally:
        if fd >= 0:
            os.close(fd)
        undo()
        b.close()
        line.close()
    assert not link.exists() and not link.is_symlink()


def test_uart_rx_buffer_overflow_is_counted(tmp_path: Path) -> None:
    line = SerialLine(tmp_path / "tty")
    b = SimBoard(UID, line)
    b.begin_boot()
    undo = machine.install(b)
    fd = open_client(tmp_path / "tty")
    try:
        uart = machine.UART(1, baudrate=19200, rxbuf=16)
        os.write(fd, bytes(40))
        deadline = time.monotonic() + 2.0
        while b.uart_stats["rx_bytes"] < 40 and time.monotonic() < deadline:
            uart.any()
        assert uart.any() == 16
        assert b.uart_stats["rx_overflow"] == 24
    finally:
        os.close(fd)
        undo()
        b.close()
        line.close()


def test_serial_line_refuses_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "not-a-tty"
    path.write_text("x")
    with pytest.raises(FileExistsError, match="not a character device"):
        SerialLine(path)
