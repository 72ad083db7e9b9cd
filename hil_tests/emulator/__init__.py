"""The emulated board: the node firmware, unchanged, on CPython with a simulated `machine`.

sim          SimBoard: power, resets, RTC memory, pins, clock, timers, watchdog
machine      the simulated machine module (install() puts it in sys.modules)
timecompat   time.ticks_* / sleep_ms / sleep_us and a micropython module for CPython
inputs       what drives the sensors, and the analog front end
serialport   the RS-485 port: a pseudo-terminal or a given device
control      the control socket (JSON lines) and its client, Control
console      the USB console (--console): MicroPython's REPL protocol on a second pty
repl         REPL code run as on a board: MicroPython's os/sys views, per-thread stdout
runner       the process: `python -m hil_tests.emulator`, `firelane node emulate`
process      EmulatorProcess: start one from a test or script and wait for its events
"""

__all__ = [
    "console",
    "control",
    "inputs",
    "machine",
    "process",
    "repl",
    "runner",
    "serialport",
    "sim",
    "timecompat",
]
