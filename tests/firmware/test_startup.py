"""startup.py: boot counting, reset causes, maintenance and safe mode, from RTC memory.

board.py is the only door to the hardware; these tests import it with a stand-in machine
module and replace its RTC, reset-cause and button functions, so each test is one boot (or a
run of boots) of a node whose RTC memory and flash they control.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import codes
from protocol import registers as r


class Hardware:
    """What survives between boots (RTC memory) and what the next boot will see."""

    def __init__(self) -> None:
        self.rtc = b""
        self.cause = codes.RESET_POWER_ON
        self.held = False

    def power_cycle(self) -> None:
        self.rtc = b""  # RTC memory does not survive a loss of power
        self.cause = codes.RESET_POWER_ON


@pytest.fixture
def hw(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Hardware]:
    monkeypatch.setitem(sys.modules, "machine", types.ModuleType("machine"))
    monkeypatch.delitem(sys.modules, "board", raising=False)
    board = importlib.import_module("board")
    state = Hardware()

    def rtc_write(data: bytes) -> None:
        state.rtc = bytes(data)

    monkeypatch.setattr(board, "rtc_read", lambda: state.rtc)
    monkeypatch.setattr(board, "rtc_write", rtc_write)
    monkeypatch.setattr(board, "reset_cause", lambda: state.cause)
    monkeypatch.setattr(board, "button_held", lambda gpio: state.held)
    monkeypatch.chdir(tmp_path)  # the node's flash
    yield state
    sys.modules.pop("startup", None)
    sys.modules.pop("board", None)


def boot() -> types.ModuleType:
    """One reset: a fresh startup module (module state does not survive a reset) and boot()."""
    sys.modules.pop("startup", None)
    startup = importlib.import_module("startup")
    startup.boot()
    return startup


def test_first_power_on_counts_one_boot_and_writes_the_record(hw: Hardware) -> None:
    s = boot()
    assert (s.mode, s.cause, s.boot_failures, s.reset_count) == (s.NORMAL, 1, 1, 1)
    assert len(hw.rtc) >= 7


def test_a_power_on_with_rtc_memory_kept_is_a_brownout(hw: Hardware) -> None:
    boot()
    hw.cause = codes.RESET_POWER_ON  # what the ESP32 reports after a brownout
    assert boot().cause == codes.RESET_BROWNOUT
    hw.power_cycle()
    assert boot().cause == codes.RESET_POWER_ON


@pytest.mark.parametrize("cause", [codes.RESET_WATCHDOG, codes.RESET_HARD, codes.RESET_SOFT])
def test_other_causes_pass_through(hw: Hardware, cause: int) -> None:
    boot()
    hw.cause = cause
    s = boot()
    assert (s.cause, s.reset_count) == (cause, 2)


def test_a_flag_file_or_a_held_button_selects_maintenance(hw: Hardware, tmp_path: Path) -> None:
    s = boot()
    (tmp_path / "maintenance").write_text("")
    m = boot()
    assert m.mode == m.MAINTENANCE
    assert m.boot_failures == s.boot_failures  # maintenance boots are not counted
    (tmp_path / "maintenance").unlink()
    assert boot().mode == s.NORMAL
    hw.held = True
    assert boot().mode == s.MAINTENANCE


def test_three_failed_boots_in_a_row_start_safe_mode(hw: Hardware, tmp_path: Path) -> None:
    settings = {"address": 12, "baud": 9600, "leakage_alarm_ma": 400, "house": "No. 7"}
    (tmp_path / "config.json").write_text(json.dumps(settings))
    modes = []
    for _ in range(5):  # every boot ends in a watchdog reset before a healthy minute
        s = boot()
        modes.append(s.mode)
        hw.cause = codes.RESET_WATCHDOG
    assert modes == [s.NORMAL] * 3 + [s.SAFE] * 2
    assert s.boot_failures == 5
    # Safe mode keeps the link settings (reachable) and drops everything else to defaults.
    assert (s.cfg.raw[r.ADDRESS], s.cfg.baud()) == (12, 9600)
    assert s.cfg.raw[r.LEAKAGE_ALARM] == r.default(r.LEAKAGE_ALARM)
    s.healthy(12000)
    assert boot().mode == s.SAFE  # a healthy minute in safe mode does not leave it
    hw.power_cycle()
    assert boot().mode == s.NORMAL  # a power cycle does


def test_a_healthy_minute_clears_the_count(hw: Hardware) -> None:
    boot()
    hw.cause = codes.RESET_WATCHDOG
    s = boot()
    assert s.boot_failures == 2
    s.healthy(12000)
    hw.cause = codes.RESET_HARD
    s = boot()
    assert (s.mode, s.boot_failures, s.reset_count) == (s.NORMAL, 1, 3)


def test_an_invalid_config_still_boots_with_the_error_kept(hw: Hardware, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"address": 12, "leakage_alarm_ma": 5000}')
    s = boot()
    assert s.mode == s.NORMAL
    assert s.cfg.raw[r.ADDRESS] == 12
    assert s.cfg.error is not None and "leakage_alarm_ma" in s.cfg.error
