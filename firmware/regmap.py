"""The register map as the node serves it: values, writes and their side effects.

Polled mode only (push mode never loads it). Values come from the app's parts (state machine,
sensors, config, boot record); a write is checked against protocol/registers.py and the
cross-checks in config.py, applied all or nothing, and saved to config.json before the reply.
Link settings (ADDRESS, BAUD, LINK_MODE) change after the reply has gone out: the master
hears the answer on the old address and speed.
"""

import board
import config
import startup
import version
from protocol import codes as c
from protocol import registers as r
from ticks import now

_TYPING = False  # mypy takes it as true (always_true)
if _TYPING:
    from app import App


class RegMap:
    """word() and write() for slave.Slave; pending link changes for apply_pending()."""

    def __init__(self, app: "App"):
        self.app = app
        self.pending = 0  # bit 1 address, 2 baud, 4 link mode: applied after the reply

    def word(self, a: int) -> int:
        """The register word at address a (check_read has passed)."""
        app = self.app
        raw = app.cfg.raw
        if a in raw:
            return raw[a]
        if r.STATUS <= a < r.STATUS + r.STATUS_BLOCK_LEN:
            return app.block(now())[a - r.STATUS]
        if a == r.DEVICE_TYPE:
            return r.DEVICE_TYPE_NODE
        if a == r.FW_VERSION:
            return version.MAJOR << 8 | version.MINOR
        if a == r.FW_PATCH:
            return version.PATCH
        if a == r.NODE_ID:
            return app.node_id >> 16
        if a == r.NODE_ID + 1:
            return app.node_id & 0xFFFF
        if a == r.MAP_VERSION_REG:
            return r.MAP_VERSION
        if a == r.UPTIME:
            return app.uptime >> 16 & 0xFFFF
        if a == r.UPTIME + 1:
            return app.uptime & 0xFFFF
        if a == r.RESET_COUNT:
            return startup.reset_count
        if a == r.RESET_CAUSE:
            return startup.cause
        if a == r.BOOT_FAILURES:
            return startup.boot_failures
        if app.slave is not None:
            dec = app.slave.decoder
            if a == r.CRC_ERRORS:
                return dec.crc_errors & 0xFFFF
            if a == r.FRAME_ERRORS:
                return dec.frame_errors & 0xFFFF
        return 0  # QUEUE_DROPS (polled mode queues nothing), COMMAND reads as 0

    def write(self, address: int, values: "tuple[int, ...]", broadcast: bool) -> int:
        """Apply a register write (all or nothing); 0 or the Modbus exception code."""
        app = self.app
        code = r.check_write(address, values)
        if code:
            return code
        if address == r.COMMAND:
            app.command(values[0])
            return 0
        cfg = app.cfg
        new = dict(cfg.raw)
        for i in range(len(values)):
            new[address + i] = values[i]
        if config.cross_check(new):
            return c.EX_ILLEGAL_VALUE
        if broadcast and new[r.ADDRESS] != cfg.raw[r.ADDRESS]:
            return c.EX_ILLEGAL_VALUE  # one address for every node: never (and never answered)
        # What goes to flash: normally the running config; in safe mode it runs on defaults, so
        # the write is merged into the installer's file instead of replacing it.
        disk = cfg
        if startup.mode != startup.NORMAL:
            disk = config.load()
            for i in range(len(values)):
                disk.raw[address + i] = values[i]
            if config.cross_check(disk.raw):
                return c.EX_ILLEGAL_VALUE
        old = dict(cfg.raw)
        cfg.raw.update(new)  # in place: the sense task holds this dict
        try:
            config.save(disk)
        except OSError as exc:  # flash full or failing: refuse rather than half-apply
            cfg.raw.update(old)
            print("firelane: config not saved:", exc)
            return c.EX_DEVICE_FAILURE
        for bit, reg in ((1, r.ADDRESS), (2, r.BAUD), (4, r.LINK_MODE)):
            if new[reg] != old[reg]:
                self.pending |= bit
        return 0

    def apply_pending(self) -> None:
        """Link settings written over the bus take effect after the reply has gone out."""
        app = self.app
        p, self.pending = self.pending, 0
        if p & 4:
            board.reset()  # the other link mode starts on the next boot
        if p & 1 and app.slave is not None:
            app.slave.decoder.address = app.cfg.raw[r.ADDRESS]
        if p & 2:
            app.board.set_baud(app.cfg.baud())
