"""The emulated board's physical state: power, resets, RTC memory, pins, clock, timers, watchdog.

One SimBoard outlives every boot of the firmware, as the hardware outlives its program. The
simulated `machine` module (machine.py) is a thin API over it. A reset bumps the board's
generation: every machine object of the older generation is dead and raises ResetSignal (a
SystemExit, so asyncio lets it through) in whatever firmware code touches it, and the firmware's
event loop gets a callback that raises it too. runner.py then boots the firmware again.

Timers are delivered in batches, woken every BATCH_S by one service thread per board (a 1 kHz
thread per node is too dear when 32 nodes share two cores); a callback sees the simulated time
of its own tick, so an ADC read inside it samples the AC waveform at the right phase. On the
ESP32 a Timer callback is a soft IRQ, run by the VM between the main program's bytecodes and
never alongside it; so while the firmware runs an event loop, the batches are scheduled on that
loop (call_later, riding on wake-ups it makes anyway) and run on the firmware's thread. Only
without a running loop does the service thread run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from hil_tests.emulator import inputs as inp
from hil_tests.emulator.serialport import SerialLine

# machine.reset_cause() values, as the ESP32 port numbers them.
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
CAUSE_NAMES = {
    PWRON_RESET: "PWRON_RESET",
    HARD_RESET: "HARD_RESET",
    WDT_RESET: "WDT_RESET",
    DEEPSLEEP_RESET: "DEEPSLEEP_RESET",
    SOFT_RESET: "SOFT_RESET",
}

RTC_MEMORY_MAX = 2048  # ESP32 RTC user memory (DOMAIN.md)
BATCH_S = 0.020  # timer callbacks are delivered this often, in batches
_LOOP_CHECK_S = 0.1  # how often the service thread checks that the firmware's loop still runs
_MAX_CATCH_UP = 1000  # callbacks per timer per batch; beyond this the timer skips ahead

# Factory calibration (firmware/config.py CALIBRATION); runner.py loads the firmware's own.
DEFAULT_CAL: dict[str, float] = {
    "smoke_clean_mv": 400,
    "smoke_mv_per_pct": 50,
    "ct_bias_mv": 1250,
    "ct_uv_per_ma": 800,
    "temp_offset_mv": 500,
    "temp_mv_per_c": 10,
    "supply_divider": 11,
}


class ResetSignal(SystemExit):
    """Raised in firmware code when the board it runs on resets or loses power."""


class _Output:
    __slots__ = ("high_s", "high_since", "level", "transitions")

    def __init__(self) -> None:
        self.level = 0
        self.transitions = 0
        self.high_s = 0.0
        self.high_since = 0.0


class _TimerState:
    __slots__ = ("callback", "k", "obj", "period_us", "periodic", "start_us")

    def __init__(
        self, obj: object, period_us: int, periodic: bool, callback: Callable[[Any], None], now: int
    ) -> None:
        self.obj = obj
        self.period_us = period_us
        self.periodic = periodic
        self.callback = callback
        self.start_us = now
        self.k = 1  # the next tick to deliver is due at start_us + k * period_us


class SimBoard:
    """An ESP32 node's hardware, minus the CPU."""

    def __init__(self, uid: bytes, line: SerialLine | None = None, seed: int = 0) -> None:
        self.uid = uid
        self.line = line
        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self.inputs: Mapping[str, object] = dict(inp.DEFAULTS)  # replaced whole, never mutated
        self.analog = inp.Analog(seed)
        self.pins: dict[str, int] = {}
        self.cal: dict[str, float] = dict(DEFAULT_CAL)
        self._roles: dict[int, str] = {}
        self.outputs: dict[int, _Output] = {}
        self.latches: dict[int, int] = {}
        self.rtc_memory = b""
        self.powered = True
        self.cause = PWRON_RESET  # reset_cause() of the current boot
        self.pending: tuple[int, str] | None = (PWRON_RESET, "power on")  # the next boot's cause
        self.boots = 0
        self.boot_why = ""  # what caused the current boot, for people: "brownout", "watchdog"
        self.gen = 0
        self.shutdown = False
        self._closed = False
        self.boot_ns = time.monotonic_ns()
        self.loop: asyncio.AbstractEventLoop | None = None  # the firmware's event loop
        self.firmware_thread: int | None = None  # thread ident running firmware code
        self.uart_stats = {"tx_bytes": 0, "rx_bytes": 0, "rx_overflow": 0, "tx_de_low": 0}
        self.uart_config: dict[str, int] = {}
        self._timers: list[_TimerState] = []
        self._batches_in_loop = False  # timer batches are scheduled on the firmware's loop
        self._wdt_timeout_ms = 0
        self._wdt_deadline = 0.0
        self._local = threading.local()  # sim_us: the simulated time of a timer callback
        self.on_reset: Callable[[int, str], None] | None = None  # runner.py's hook
        self.on_pending: Callable[[float], None] | None = None  # ticker: a reset is overdue
        self.on_uart: Callable[[dict[str, int]], None] | None = None  # UART (re)configured
        self._pending_since = 0.0
        self._ticker = threading.Thread(target=self._tick_loop, name="board.ticker", daemon=True)
        self._ticker.start()

    # Clock.
    def now_us(self) -> int:
        """Microseconds since this boot; in a timer callback, the time of its tick."""
        sim = getattr(self._local, "sim_us", None)
        if sim is not None:
            return int(sim)
        return (time.monotonic_ns() - self.boot_ns) // 1000

    # Generations: what ties a machine object to one boot.
    def check(self, gen: int) -> None:
        """Raise ResetSignal if gen is not the running boot's (or a reset is pending)."""
        if gen != self.gen or (self.pending is not None and self.in_firmware_thread()):
            raise ResetSignal()
        if self.loop is None and threading.get_ident() == self.firmware_thread:
            loop = asyncio.events._get_running_loop()  # one made without new_event_loop
            if loop is not None:
                self._adopt(loop)

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:
            self.loop = loop
            self._batches_in_loop = False
            if self.pending is not None:  # reset while the firmware was between loops
                loop.call_soon_threadsafe(_raise_reset)

    def capture_loops(self) -> Callable[[], None]:
        """Note every event loop the firmware creates (asyncio.run() makes one), so a reset
        can stop the firmware even while it waits on a loop that never touches the hardware.
        Returns the undo function."""
        events = asyncio.events
        original = events.new_event_loop

        def new_event_loop() -> asyncio.AbstractEventLoop:
            loop = original()
            if self.in_firmware_thread():
                self._adopt(loop)
            return loop

        events.new_event_loop = asyncio.new_event_loop = new_event_loop

        def undo() -> None:
            events.new_event_loop = asyncio.new_event_loop = original

        return undo

    def in_firmware_thread(self) -> bool:
        return threading.get_ident() == self.firmware_thread

    def sleep(self, seconds: float) -> None:
        """time.sleep for the firmware: raises ResetSignal as soon as the board resets."""
        if not self.in_firmware_thread():
            time.sleep(seconds)
            return
        with self.lock:
            self._cond.wait_for(lambda: self.pending is not None, seconds)
            if self.pending is not None:
                raise ResetSignal()

    # Resets and power.
    def request_reset(self, cause: int, why: str) -> bool:
        """Stop the firmware; it boots again with cause. False when the board is off."""
        with self.lock:
            if not self.powered or self.shutdown:
                return False
            self._kill(cause, why)
            return True

    def power(self, on: bool) -> None:
        """Cut or restore power. A cut loses RTC memory and every output."""
        with self.lock:
            if on and not self.powered:
                self.powered = True
                self.pending = (PWRON_RESET, "power on")
                self._cond.notify_all()
            elif not on and self.powered:
                self._kill(PWRON_RESET, "power off")
                self.powered = False
                self.pending = None
                self.rtc_memory = b""

    def brownout(self) -> bool:
        """A supply dip: the chip resets and reports power-on, but RTC memory survives."""
        return self.request_reset(PWRON_RESET, "brownout")

    def stop(self) -> None:
        """The emulator is exiting: stop the firmware and never boot it again."""
        with self.lock:
            if self.shutdown:
                return
            if self.powered:
                self._kill(PWRON_RESET, "shutdown")
            self.shutdown = True
            self._cond.notify_all()

    def close(self) -> None:
        """stop(), and end the board's service thread (once the firmware has stopped: it
        is what interrupts firmware that ignores a reset)."""
        self.stop()
        with self.lock:
            self._closed = True
            self._cond.notify_all()
        if self._ticker is not threading.current_thread():
            self._ticker.join(5.0)

    def _kill(self, cause: int, why: str) -> None:
        self.gen += 1
        self.pending = (cause, why)
        self._pending_since = time.monotonic()
        self._timers.clear()
        self._batches_in_loop = False
        self._wdt_timeout_ms = 0
        for gpio in list(self.outputs):
            self._set_level(gpio, 0)  # GPIOs float after a reset; the lines fall low
        self.latches.clear()
        loop = self.loop
        self.loop = None
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(_raise_reset)
        self._cond.notify_all()
        if self.on_reset is not None:
            self.on_reset(cause, why)

    def wait_boot(self, timeout: float | None = None) -> tuple[int, str] | None:
        """Block until the board should boot; None on shutdown (or timeout)."""
        with self.lock:
            ok = self._cond.wait_for(
                lambda: self.shutdown or (self.powered and self.pending is not None), timeout
            )
            if not ok or self.shutdown or self.pending is None:
                return None
            return self.pending

    def begin_boot(self) -> int:
        """Start a boot with the pending cause; returns the generation of this boot."""
        with self.lock:
            assert self.pending is not None
            self.cause, self.boot_why = self.pending
            self.pending = None
            self.boots += 1
            self.boot_ns = time.monotonic_ns()
            self.uart_config = {}
            return self.gen

    # Pins.
    def set_pin_map(self, pins: Mapping[str, int], cal: Mapping[str, float]) -> None:
        with self.lock:
            self.pins = {k: int(v) for k, v in pins.items()}
            self.cal = dict(DEFAULT_CAL)
            self.cal.update({k: float(v) for k, v in cal.items()})
            self._roles = {gpio: role for role, gpio in self.pins.items() if gpio >= 0}

    def role(self, gpio: int) -> str | None:
        return self._roles.get(gpio)

    def set_output(self, gpio: int, level: int) -> None:
        with self.lock:
            self.latches[gpio] = level
            self._set_level(gpio, level)

    def _set_level(self, gpio: int, level: int) -> None:
        out = self.outputs.get(gpio)
        if out is None:
            out = self.outputs[gpio] = _Output()
        if out.level == level:
            return
        now = time.monotonic()
        if level:
            out.high_since = now
        else:
            out.high_s += now - out.high_since
        out.level = level
        out.transitions += 1

    def input_level(self, gpio: int, pull_up: bool) -> int:
        """What an input pin reads: the buttons pull to ground when pressed."""
        role = self._roles.get(gpio)
        if role in ("button", "hush"):
            return 0 if self.inputs[role] else 1
        if gpio in self.latches and gpio in self.outputs:
            return self.outputs[gpio].level
        return 1 if pull_up else 0

    def analog_uv(self, gpio: int) -> int:
        role = self._roles.get(gpio, "")
        mv = self.analog.mv(role, self.inputs, self.cal, self.now_us() / 1e6)
        return int(mv * 1000)

    def de_level(self) -> int:
        """The RS-485 driver enable: the transceiver only drives the line while it is high."""
        gpio = self.pins.get("de", -1)
        if gpio < 0:
            return 1
        out = self.outputs.get(gpio)
        return out.level if out is not None else 0

    # Timers and the watchdog.
    def timer_start(
        self, obj: object, gen: int, period_ms: int, periodic: bool, callback: Callable[[Any], None]
    ) -> None:
        with self.lock:
            self.check(gen)
            self.timer_stop(obj)
            self._timers.append(
                _TimerState(obj, max(1, period_ms) * 1000, periodic, callback, self.now_us())
            )
            loop = self.loop
            if (
                not self._batches_in_loop
                and loop is not None
                and self.in_firmware_thread()
                and asyncio.events._get_running_loop() is loop
            ):
                self._batches_in_loop = True
                loop.call_later(BATCH_S, self._timer_batch)
            self._cond.notify_all()

    def timer_stop(self, obj: object) -> None:
        with self.lock:
            self._timers = [t for t in self._timers if t.obj is not obj]

    def wdt_start(self, gen: int, timeout_ms: int) -> None:
        with self.lock:
            self.check(gen)
            self._wdt_timeout_ms = max(1, timeout_ms)
            self._wdt_deadline = time.monotonic() + self._wdt_timeout_ms / 1000
            self._cond.notify_all()

    def wdt_feed(self, gen: int) -> None:
        with self.lock:
            self.check(gen)
            if self._wdt_timeout_ms:
                self._wdt_deadline = time.monotonic() + self._wdt_timeout_ms / 1000

    def wdt_timeout_ms(self) -> int:
        return self._wdt_timeout_ms

    def _tick_loop(self) -> None:
        while True:
            with self.lock:
                if self._closed:
                    return
                now = time.monotonic()
                timeouts = [3600.0]
                if self._timers:
                    timeouts.append(_LOOP_CHECK_S if self._batches_in_loop else BATCH_S)
                if self._wdt_timeout_ms:
                    timeouts.append(self._wdt_deadline - now)
                if self.pending is not None and self.on_pending is not None:
                    timeouts.append(0.1)
                self._cond.wait(max(0.0, min(timeouts)))
                if self._wdt_timeout_ms and time.monotonic() > self._wdt_deadline:
                    self.request_reset(WDT_RESET, "watchdog")
                timers = list(self._timers)
                overdue = self.pending is not None and self.on_pending is not None
                since = self._pending_since
            if timers:
                self._deliver(timers)
            if overdue and self.on_pending is not None:
                self.on_pending(time.monotonic() - since)

    def _deliver(self, timers: list[_TimerState]) -> None:
        """From the service thread: run the due callbacks, or see that the loop does."""
        with self.lock:
            loop = self.loop
            if loop is None or not loop.is_running():
                self._batches_in_loop = False
            elif not self._batches_in_loop:  # a timer started outside the loop
                try:
                    loop.call_soon_threadsafe(self._timer_batch)
                    self._batches_in_loop = True
                except RuntimeError:  # the loop closed meanwhile
                    pass
            if self._batches_in_loop:
                return
        self._run_timers(timers)  # no event loop to run them: run them here

    def _timer_batch(self) -> None:
        """In the firmware's event loop: the timer callbacks due by now, then the next batch."""
        with self.lock:
            timers = list(self._timers)
            loop = asyncio.events._get_running_loop()
            if not timers or loop is None or loop is not self.loop:
                self._batches_in_loop = False
                return
            loop.call_later(BATCH_S, self._timer_batch)
        self._run_timers(timers)

    def _run_timers(self, timers: list[_TimerState]) -> None:
        now = (time.monotonic_ns() - self.boot_ns) // 1000
        for t in timers:
            calls = 0
            while t.start_us + t.k * t.period_us <= now and t in self._timers:
                if calls >= _MAX_CATCH_UP:
                    t.k = (now - t.start_us) // t.period_us + 1  # fell behind: skip ahead
                    break
                self._local.sim_us = t.start_us + t.k * t.period_us
                t.k += 1
                calls += 1
                if not t.periodic:
                    self.timer_stop(t.obj)
                try:
                    t.callback(t.obj)
                except ResetSignal:
                    if self.in_firmware_thread():
                        raise  # the firmware is being reset: let it unwind
                    break
                except Exception:
                    print(
                        "emulator: uncaught exception in Timer callback; timer stopped:",
                        file=sys.stderr,
                    )
                    traceback.print_exc()
                    self.timer_stop(t.obj)
                finally:
                    self._local.sim_us = None


def _raise_reset() -> None:
    raise ResetSignal()
