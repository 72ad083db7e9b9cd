"""The hardware: the only module that imports machine (../shared/STYLE.md, lesson 5).

Everything else takes its inputs from a Board, so the emulated board (hil_tests/emulator/)
runs the same firmware by providing a simulated machine module, not a different board.py.

Analog inputs are read in millivolts through ADC.read_uv(), which applies the ESP32's eFuse
calibration (11 dB attenuation: about 150-2450 mV usable). What the millivolts mean is the
sensors' business, scaled by the calibration in config.json.
"""

import time
from array import array

import machine

from protocol import codes
from protocol.timing import char_time_us

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


CT_SAMPLES = const(200)  # 200 ms at 1 kHz: ten 50 Hz cycles (DOMAIN.md, AC RMS)
_CT_PERIOD_MS = const(1)
_RTC_SIZE = const(16)  # bytes of RTC user memory this firmware uses (of 2 KiB)


class Board:
    """Pins, ADC channels, the RS-485 UART and the system services, built from a pin map."""

    def __init__(self, pins: "dict[str, int]", baud: int):
        pin = machine.Pin
        self._pins = pins
        self.uart = machine.UART(
            1,
            baudrate=baud,
            tx=pins["uart_tx"],
            rx=pins["uart_rx"],
            bits=8,
            parity=0,
            stop=1,
            timeout=0,
            rxbuf=512,
        )  # 8E1: parity 0 is even, the Modbus default (Serial Line V1.02, 2.5.1)
        self._char_us = char_time_us(baud)
        self._de = pin(pins["de"], pin.OUT, value=0)  # receive until we transmit
        self._adc = {}  # type: dict[str, machine.ADC]
        for name in ("smoke", "ct", "temperature", "supply"):
            self._adc[name] = machine.ADC(pin(pins[name]), atten=machine.ADC.ATTN_11DB)
        self._ct_adc = self._adc["ct"]
        self._button = pin(pins["button"], pin.IN, pin.PULL_UP)
        self._hush = pin(pins["hush"], pin.IN, pin.PULL_UP) if pins["hush"] >= 0 else None
        self._led = pin(pins["led"], pin.OUT, value=0)
        self._buzzer = pin(pins["buzzer"], pin.OUT, value=0)
        self._wdt = None  # type: machine.WDT | None
        self._timer = None  # type: machine.Timer | None
        self.ct = array("H", bytes(2 * CT_SAMPLES))  # one CT window, mV, filled by the timer
        self._ct_i = CT_SAMPLES

    # RS-485: no RS-485 mode in machine.UART, so DE/RE is a plain pin (DOMAIN.md).
    def set_baud(self, baud: int) -> None:
        self.uart.init(baudrate=baud, bits=8, parity=0, stop=1)
        self._char_us = char_time_us(baud)

    def send(self, data: bytes) -> None:
        """Drive the line, write, wait until the last character has left the shift register
        (flush() returns when the FIFO is empty, one character early), release the line."""
        self._de.value(1)
        self.uart.write(data)
        self.uart.flush()
        time.sleep_us(self._char_us)
        self._de.value(0)

    def receive(self) -> "bytes | None":
        n = self.uart.any()
        return self.uart.read(n) if n else None

    # Analog inputs and contacts.
    def mv(self, name: str) -> int:
        """Millivolts at an analog input: smoke, ct, temperature or supply."""
        return self._adc[name].read_uv() // 1000

    def button(self) -> bool:
        return self._button.value() == 0  # to ground when pressed

    def hush(self) -> bool:
        return self._hush is not None and self._hush.value() == 0

    def led(self, on: int) -> None:
        self._led.value(on)

    def buzzer(self, on: int) -> None:
        self._buzzer.value(on)

    # The CT window is sampled from a timer so that 200 ms of AC is captured at an even 1 kHz
    # while the asyncio loop keeps answering the bus.
    def ct_start(self) -> None:
        """Start filling self.ct; ct_ready() turns True after CT_SAMPLES ms."""
        self._ct_i = 0
        if self._timer is None:
            self._timer = machine.Timer(0)
        self._timer.init(mode=machine.Timer.PERIODIC, period=_CT_PERIOD_MS, callback=self._ct_tick)

    def _ct_tick(self, _timer: object) -> None:
        i = self._ct_i  # soft IRQ: no allocation, one sample
        if i < CT_SAMPLES:
            self.ct[i] = self._ct_adc.read_uv() // 1000
            self._ct_i = i + 1
        elif self._timer is not None:
            self._timer.deinit()

    def ct_ready(self) -> bool:
        return self._ct_i >= CT_SAMPLES

    # System services.
    def watchdog(self, timeout_ms: int) -> None:
        """Start the hardware watchdog; once started it cannot be stopped (DOMAIN.md)."""
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self) -> None:
        if self._wdt is not None:
            self._wdt.feed()

    def deinit(self) -> None:
        if self._timer is not None:
            self._timer.deinit()
        self._de.value(0)
        self._buzzer.value(0)
        self._led.value(0)


def rtc_read() -> bytes:
    """This firmware's bytes of RTC user memory (kept across resets, lost without power)."""
    data = machine.RTC().memory()
    return bytes(data[:_RTC_SIZE])


def rtc_write(data: bytes) -> None:
    machine.RTC().memory(data[:_RTC_SIZE])


def reset_cause() -> int:
    """machine.reset_cause() as a codes.RESET_* value. The ESP32 reports a brownout as a
    power-on reset; startup.py tells them apart by what RTC memory kept."""
    cause = machine.reset_cause()
    if cause == machine.WDT_RESET:
        return codes.RESET_WATCHDOG
    if cause == machine.SOFT_RESET:
        return codes.RESET_SOFT
    if cause == machine.HARD_RESET:
        return codes.RESET_HARD
    return codes.RESET_POWER_ON


def unique_id() -> int:
    """A u32 from the chip's MAC: the node's default identity upstream."""
    uid = machine.unique_id()
    return (uid[-4] << 24 | uid[-3] << 16 | uid[-2] << 8 | uid[-1]) & 0xFFFFFFFF


def button_held(gpio: int) -> bool:
    """Whether the manual button is held at power-up (maintenance mode). Reads the pin alone,
    before a Board, and so before the watchdog, exists."""
    return machine.Pin(gpio, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0


def led_on(gpio: int) -> None:
    """Light the LED without a Board: the maintenance-mode indication."""
    machine.Pin(gpio, machine.Pin.OUT, value=1)


def reset() -> None:
    machine.reset()
