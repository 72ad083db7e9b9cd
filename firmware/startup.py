"""Before the app starts: count the boot, name the reset cause, choose the mode.

boot.py calls boot() on every reset, before anything that could hang and before the watchdog
exists. main.py then reads `mode`:

- MAINTENANCE: the button is held at power-up, or the file `maintenance` is on flash. The app
  does not start (so no watchdog), the LED is lit, and an installer can copy files with
  mpremote. Delete the file (or release the button) and reset to leave.
- SAFE: BOOT_FAILURE_LIMIT boots in a row did not reach a healthy minute (a crash or hang
  loop). The app starts on the factory defaults plus the link settings from flash, keeps the
  local alarm and the link alive, and reports FAULT_SAFE_MODE. A power cycle (which clears
  RTC memory) or a reflash leaves it.
- NORMAL otherwise.

RTC user memory survives every reset but a loss of power: it holds a magic word, the count of
consecutive failed boots, the reset count and the last supply reading. The ESP32 reports a
brownout as a power-on reset (DOMAIN.md); when RTC memory kept its magic across a "power-on",
power never fully went, so the cause is reported as a brownout.
"""

import os
from struct import pack, unpack

import board
import config
from protocol import codes

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


NORMAL = const(0)
MAINTENANCE = const(1)
SAFE = const(2)
BOOT_FAILURE_LIMIT = const(3)
FLAG = "maintenance"  # a file of this name on flash selects maintenance mode
HEALTHY_MS = const(60_000)  # a boot counts as good once the app has run this long
_MAGIC = const(0xF1A5)
_RTC = ">HBHH"  # magic, failed boots, reset count, last supply mV

mode = NORMAL
cause = codes.RESET_POWER_ON
boot_failures = 0
reset_count = 0
cfg = config.Config()


def boot() -> None:
    """Run once per reset, from boot.py."""
    global mode, cause, boot_failures, reset_count, cfg
    cfg = config.load()
    data = board.rtc_read()
    kept = len(data) >= 7 and unpack(">H", data[:2])[0] == _MAGIC
    if kept:
        _, boot_failures, reset_count, _ = unpack(_RTC, data[:7])
    cause = board.reset_cause()
    if cause == codes.RESET_POWER_ON and kept:
        cause = codes.RESET_BROWNOUT
    if _flag() or board.button_held(cfg.pins["button"]):
        mode = MAINTENANCE
        return
    boot_failures = min(boot_failures + 1, 255)  # cleared by healthy() after a good minute
    reset_count = (reset_count + 1) & 0xFFFF
    if boot_failures > BOOT_FAILURE_LIMIT:
        mode = SAFE
        safe = config.Config()
        for _, reg in config.SETTINGS[:3]:  # address, baud, link mode: stay reachable
            safe.raw[reg] = cfg.raw[reg]
        safe.node_id, safe.key, safe.error = cfg.node_id, cfg.key, cfg.error
        cfg = safe
    save(0)


def _flag() -> bool:
    try:
        os.stat(FLAG)
        return True
    except OSError:
        return False


def save(supply_mv: int) -> None:
    """Write the boot record to RTC memory, with the latest supply reading."""
    board.rtc_write(pack(_RTC, _MAGIC, boot_failures, reset_count, supply_mv & 0xFFFF))


def healthy(supply_mv: int) -> None:
    """The app has run for HEALTHY_MS: this boot was good. In safe mode the count stays, so
    the node stays safe until power is cycled."""
    global boot_failures
    if mode == NORMAL:
        boot_failures = 0
    save(supply_mv)


def maintenance() -> None:
    """Maintenance mode: light the LED and return to the REPL."""
    board.led_on(cfg.pins["led"])
    print("firelane: maintenance mode; delete '%s' and reset to run" % FLAG)
