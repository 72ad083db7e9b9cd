"""A simulated `machine` module: the part of MicroPython's ESP32 API that firmware/board.py uses.

install(board) puts this module into sys.modules under the name `machine`, so the firmware's
`import machine` finds it; every object here acts on that SimBoard (sim.py). Signatures,
constants and errors follow the ESP32 port (MicroPython v1.24+): GPIO 34-39 are input-only,
ADCs live on ADC1/ADC2 pins, RTC user memory holds 2 KiB, reset() reports HARD_RESET next
boot ("device fully reset after already being powered up, e.g. via machine.reset()",
docs.micropython.org, machine.reset_cause and reference/reset_boot).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

from hil_tests.emulator import sim
from hil_tests.emulator.sim import (
    DEEPSLEEP_RESET,
    HARD_RESET,
    PWRON_RESET,
    SOFT_RESET,
    WDT_RESET,
    ResetSignal,
    SimBoard,
)

__all__ = [
    "ADC",
    "DEEPSLEEP_RESET",
    "HARD_RESET",
    "PWRON_RESET",
    "RTC",
    "SOFT_RESET",
    "UART",
    "WDT",
    "WDT_RESET",
    "Pin",
    "Timer",
    "install",
    "reset",
    "reset_cause",
    "soft_reset",
    "unique_id",
]

_board: SimBoard | None = None

_GPIOS = frozenset([*range(0, 20), 21, 22, 23, 25, 26, 27, *range(32, 40)])
_INPUT_ONLY = frozenset(range(34, 40))
_ADC_PINS = frozenset([*range(32, 40), 0, 2, 4, 12, 13, 14, 15, 25, 26, 27])


def install(board: SimBoard) -> Callable[[], None]:
    """Make `import machine` give this module, acting on board. Returns the undo function."""
    global _board
    _board = board
    me = sys.modules[__name__]
    previous = sys.modules.get("machine")
    sys.modules["machine"] = me

    def undo() -> None:
        global _board
        _board = None
        if previous is None:
            sys.modules.pop("machine", None)
        else:
            sys.modules["machine"] = previous

    return undo


def _current() -> tuple[SimBoard, int]:
    board = _board
    if board is None:
        raise RuntimeError("no emulated board installed (hil_tests.emulator.machine.install)")
    board.check(board.gen)
    return board, board.gen


class _Bound:
    """Tied to the boot that made it: after a reset it raises ResetSignal."""

    _board: SimBoard
    _gen: int

    def __init__(self) -> None:
        self._board, self._gen = _current()

    def _check(self) -> SimBoard:
        self._board.check(self._gen)
        return self._board


class Pin(_Bound):
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2

    def __init__(self, id: int, mode: int = -1, pull: int = -1, value: int | None = None) -> None:
        super().__init__()
        if id not in _GPIOS:
            raise ValueError("invalid pin")
        if mode in (Pin.OUT, Pin.OPEN_DRAIN) and id in _INPUT_ONLY:
            raise ValueError("pin can only be input")
        self.id = id
        self._mode = Pin.IN if mode == -1 else mode
        self._pull = pull
        if value is not None:
            self._write(value)

    def value(self, x: int | None = None) -> int | None:
        board = self._check()
        if x is None:
            if self._mode == Pin.IN:
                return board.input_level(self.id, self._pull == Pin.PULL_UP)
            return board.latches.get(self.id, 0)
        self._write(x)
        return None

    __call__ = value

    def _write(self, x: int) -> None:
        level = 1 if x else 0
        if self._mode == Pin.IN:
            self._board.latches[self.id] = level  # sets the output latch only
        else:
            self._board.set_output(self.id, level)

    def __repr__(self) -> str:
        return f"Pin({self.id})"


class ADC(_Bound):
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin: Pin | int, *, atten: int = ATTN_0DB) -> None:
        super().__init__()
        gpio = pin.id if isinstance(pin, Pin) else pin
        if gpio not in _ADC_PINS:
            raise ValueError("invalid Pin for ADC")
        self._gpio = gpio
        self.atten = atten

    def read_uv(self) -> int:
        """Calibrated microvolts (11 dB: the model's 0..3.3 V)."""
        return self._check().analog_uv(self._gpio)


class UART(_Bound):
    """machine.UART over the board's SerialLine, always non-blocking (timeout=0)."""

    def __init__(
        self,
        id: int,
        baudrate: int = 115200,
        *,
        tx: int = -1,
        rx: int = -1,
        bits: int = 8,
        parity: int | None = None,
        stop: int = 1,
        timeout: int = 0,
        rxbuf: int = 256,
    ) -> None:
        super().__init__()
        self.id = id
        self._lock = self._board.lock  # stats and bytes move together, as state() sees them
        self._rx = bytearray()
        self._rxbuf = max(rxbuf, 1)
        self.timeout = timeout
        if self._board.line is not None:
            self._board.line.read()  # a fresh UART starts with empty FIFOs
        self.init(baudrate=baudrate, bits=bits, parity=parity, stop=stop)

    def init(
        self, baudrate: int = 115200, *, bits: int = 8, parity: int | None = None, stop: int = 1
    ) -> None:
        board = self._check()
        board.uart_config = {
            "baud": baudrate,
            "bits": bits,
            "parity": -1 if parity is None else parity,
            "stop": stop,
        }
        if board.on_uart is not None:
            board.on_uart(board.uart_config)

    def _take(self, data: bytes) -> None:
        if not data:
            return
        board = self._board
        board.uart_stats["rx_bytes"] += len(data)
        room = self._rxbuf - len(self._rx)
        if len(data) > room:
            board.uart_stats["rx_overflow"] += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._rx += data

    def any(self) -> int:
        board = self._check()
        with self._lock:
            if board.line is not None:
                self._take(board.line.read())
            return len(self._rx)

    def read(self, nbytes: int | None = None) -> bytes | None:
        board = self._check()
        with self._lock:
            if board.line is not None:
                self._take(board.line.read())
            if not self._rx:
                return None
            n = len(self._rx) if nbytes is None else min(nbytes, len(self._rx))
            data = bytes(self._rx[:n])
            del self._rx[:n]
            return data

    def write(self, buf: bytes | bytearray | memoryview) -> int:
        board = self._check()
        data = bytes(buf)
        if not board.de_level():
            board.uart_stats["tx_de_low"] += len(data)  # the transceiver is not driving
            return len(data)
        with self._lock:
            if board.line is not None:
                arrived, sent = board.line.write(data)
                self._take(arrived)
                board.uart_stats["tx_bytes"] += sent
        return len(data)

    def flush(self) -> None:
        self._check()  # a pty has no shift register to wait for

    def txdone(self) -> bool:
        self._check()
        return True


class Timer(_Bound):
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id: int, **kwargs: Any) -> None:
        super().__init__()
        self.id = id
        if kwargs:
            self.init(**kwargs)

    def init(
        self,
        *,
        mode: int = PERIODIC,
        period: int = -1,
        freq: float = -1,
        callback: Callable[[Timer], None] | None = None,
    ) -> None:
        board = self._check()
        if freq > 0:
            period = max(1, round(1000 / freq))
        if period <= 0:
            raise ValueError("period must be > 0 ms")
        if callback is None:
            board.timer_stop(self)
            return
        board.timer_start(self, self._gen, period, mode == Timer.PERIODIC, callback)

    def deinit(self) -> None:
        self._check().timer_stop(self)


class WDT(_Bound):
    """The task watchdog: cannot be stopped; not fed within timeout ms, the board resets."""

    def __init__(self, id: int = 0, timeout: int = 5000) -> None:
        super().__init__()
        self._board.wdt_start(self._gen, timeout)

    def feed(self) -> None:
        self._board.wdt_feed(self._gen)


class RTC(_Bound):
    def memory(self, data: bytes | bytearray | memoryview | None = None) -> bytes | None:
        board = self._check()
        if data is None:
            return board.rtc_memory
        if len(data) > sim.RTC_MEMORY_MAX:
            raise ValueError("buffer too long")
        board.rtc_memory = bytes(data)
        return None


def reset() -> NoReturn:
    board, _ = _current()
    board.request_reset(HARD_RESET, "machine.reset()")
    raise ResetSignal()


def soft_reset() -> NoReturn:
    board, _ = _current()
    board.request_reset(SOFT_RESET, "machine.soft_reset()")
    raise ResetSignal()


def reset_cause() -> int:
    board, _ = _current()
    return board.cause


def unique_id() -> bytes:
    board, _ = _current()
    return board.uid
