"""MicroPython's time additions and `micropython` module, installed into CPython for the firmware.

time.ticks_ms() and friends count from the board's last reset and wrap at 2**30, as on the
ESP32 (firmware/ticks.py); inside a timer callback they give the time of that callback's tick.
time.sleep_ms()/sleep_us() end early with ResetSignal when the board resets meanwhile.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable
from typing import Any

from hil_tests.emulator.sim import SimBoard

TICKS_PERIOD = 1 << 30
_MASK = TICKS_PERIOD - 1
_HALF = TICKS_PERIOD >> 1
_NAMES = ("ticks_ms", "ticks_us", "ticks_cpu", "ticks_diff", "ticks_add", "sleep_ms", "sleep_us")


def ticks_diff(a: int, b: int) -> int:
    """a - b, correct across the wrap while |a - b| < 2**29."""
    return ((a - b + _HALF) & _MASK) - _HALF


def ticks_add(a: int, delta: int) -> int:
    return (a + delta) & _MASK


def install(board: SimBoard) -> Callable[[], None]:
    """Add ticks_* and sleep_ms/sleep_us to the time module and a `micropython` module to
    sys.modules. Returns the undo function (tests run in one process with other tests)."""
    saved: dict[str, Any] = {name: getattr(time, name) for name in _NAMES if hasattr(time, name)}
    previous_mp = sys.modules.get("micropython")

    def ticks_us() -> int:
        return board.now_us() & _MASK

    def ticks_ms() -> int:
        return (board.now_us() // 1000) & _MASK

    def sleep_us(us: int) -> None:
        if us > 0:
            board.sleep(us / 1e6)

    def sleep_ms(ms: int) -> None:
        if ms > 0:
            board.sleep(ms / 1e3)

    funcs: dict[str, Any] = {
        "ticks_ms": ticks_ms,
        "ticks_us": ticks_us,
        "ticks_cpu": ticks_us,
        "ticks_diff": ticks_diff,
        "ticks_add": ticks_add,
        "sleep_ms": sleep_ms,
        "sleep_us": sleep_us,
    }
    for name, fn in funcs.items():
        setattr(time, name, fn)
    sys.modules["micropython"] = _micropython_module()

    def undo() -> None:
        for name in _NAMES:
            if name in saved:
                setattr(time, name, saved[name])
            elif hasattr(time, name):
                delattr(time, name)
        if previous_mp is None:
            sys.modules.pop("micropython", None)
        else:
            sys.modules["micropython"] = previous_mp

    return undo


def _micropython_module() -> types.ModuleType:
    mp = types.ModuleType("micropython", "Emulated board: the micropython module's no-op parts.")

    def const(x: Any) -> Any:
        return x

    def mem_info(*_args: object) -> None:
        return None

    def opt_level(*_args: object) -> int:
        return 0

    def alloc_emergency_exception_buf(_size: int) -> None:
        return None

    def schedule(fn: Callable[[Any], object], arg: Any) -> None:
        fn(arg)  # soft IRQs already run outside the firmware's thread here

    def native(f: Any) -> Any:
        return f

    for fn in (const, mem_info, opt_level, alloc_emergency_exception_buf, schedule, native):
        setattr(mp, fn.__name__, fn)
    mp.viper = native  # type: ignore[attr-defined]
    return mp
