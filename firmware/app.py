"""The node application: builds the parts from the config and runs them as owned tasks.

main.py creates one App and runs App.run() (../shared/STYLE.md, lesson 6). Four tasks, each
created and cancelled here:

    sense   every 250 ms: the CT window (leakage); each second smoke, temperature, supply;
            self-test; push-mode heartbeats
    io      every 25 ms: buttons, LED and buzzer
    link    every 1-3 ms: the RS-485 line, as Modbus slave or push link
    run()   itself supervises: it feeds the hardware watchdog only while every task has made
            progress within STALL_MS, so a hung or crashed task resets the node

The local alarm never depends on the link: sense and io drive the buzzer on their own.
"""

import asyncio

import board
import config
import startup
import version
from button import ALARM as HELD
from button import SHORT, Button
from indicator import SLOT_MS, outputs
from leakage import Leakage
from node import TEST, Node
from protocol import codes as c
from protocol import registers as r
from protocol.timing import t35_us
from smoke import Smoke
from supply import Supply
from temperature import Temperature
from ticks import diff, now

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


_TYPING = const(0)  # mypy takes it as true (always_true); the compiler drops the block
if _TYPING:
    from pushlink import PushLink
    from slave import Slave


_SENSE_MS = const(250)
_IO_MS = const(25)
STALL_MS = const(5000)
WATCHDOG_MS = const(8000)
_COUNTER_FILE = "counter"
_COUNTER_BLOCK = const(1024)  # push auth counters reserved on flash per write
_INPUT_FAULTS = const(0x1E)  # smoke input, CT open, temperature sensor, low supply


class App:
    def __init__(self) -> None:
        cfg = self.cfg = startup.cfg
        t = now()
        self.board = board.Board(cfg.pins, cfg.baud())
        self.node_id = cfg.node_id if cfg.node_id >= 0 else board.unique_id()
        self.smoke = Smoke(cfg.cal, t)
        self.leakage = Leakage(cfg.cal)
        self.temperature = Temperature(cfg.cal)
        self.supply = Supply(cfg.cal)
        self.button = Button()
        self.hush = Button()
        self.event_seq = 0
        self.uptime = 0  # s
        self._ms = 0  # ms towards the next uptime second
        self._last = t
        self._progress = [t, t, t]  # sense, io, link: ticks of their last round
        self._tasks = []  # type: list[asyncio.Task[None]]
        self._pending = 0  # bit 1 address, 2 baud, 4 link mode: applied after the reply
        # One link, by mode; only its modules are imported (docs/protocol.md, heap).
        self.push = cfg.raw[r.LINK_MODE] == r.LINK_PUSH
        self.pushlink: PushLink | None = None
        self.slave: Slave | None = None
        self._reserved = 0
        if self.push:
            self.pushlink = self._push_link()
        else:
            import slave

            self.slave = slave.Slave(cfg.raw[r.ADDRESS], self.word, self.write)
        self.node = Node(t, self._emit, startup.mode == startup.SAFE)
        if cfg.error:
            print("firelane: config refused:", cfg.error)
            bit = 1 << c.FAULT_CONFIG
            self.node.set_faults(t, bit, c.SRC_NODE, bit, 0)

    def _push_link(self) -> "PushLink":
        import pushlink
        from protocol.auth import Signer

        key = self.cfg.key
        self._reserved = self._reserve(0)
        start = self._reserved - _COUNTER_BLOCK
        return pushlink.PushLink(self.node_id, Signer(key) if key else None, start)

    # Events.
    def _emit(self, code: int, source: int, detail: int, value: int) -> None:
        self.event_seq = (self.event_seq + 1) & 0xFFFF
        if self.pushlink is not None:
            node = getattr(self, "node", None)  # None while Node() itself reports safe mode
            status = node.status(now()) if node else 0
            self.pushlink.event(code, source, detail, status, value, self.uptime)

    def _sensor(self, t: int, sensor: "object", source: int, mask: int, changed: bool) -> None:
        if changed:
            s = sensor
            self.node.set_faults(t, s.faults, source, mask, s.value)  # type: ignore[attr-defined]
            if source != c.SRC_SUPPLY:
                self.node.level(t, source, s.state.level, s.value)  # type: ignore[attr-defined]

    def block(self, t: int) -> "list[int]":
        """The status block, STATUS..SUPPLY (8 registers)."""
        n = self.node
        return [
            n.status(t),
            n.alarms,
            n.faults,
            self.event_seq,
            self.smoke.value & 0xFFFF,
            self.leakage.value & 0xFFFF,
            self.temperature.value & 0xFFFF,
            min(self.supply.value, 0xFFFF),
        ]

    # Registers, for the Modbus slave.
    def word(self, a: int) -> int:
        raw = self.cfg.raw
        if a in raw:
            return raw[a]
        if r.STATUS <= a < r.STATUS + r.STATUS_BLOCK_LEN:
            return self.block(now())[a - r.STATUS]
        if a == r.DEVICE_TYPE:
            return r.DEVICE_TYPE_NODE
        if a == r.FW_VERSION:
            return version.MAJOR << 8 | version.MINOR
        if a == r.FW_PATCH:
            return version.PATCH
        if a == r.NODE_ID:
            return self.node_id >> 16
        if a == r.NODE_ID + 1:
            return self.node_id & 0xFFFF
        if a == r.MAP_VERSION_REG:
            return r.MAP_VERSION
        if a == r.UPTIME:
            return self.uptime >> 16 & 0xFFFF
        if a == r.UPTIME + 1:
            return self.uptime & 0xFFFF
        if a == r.RESET_COUNT:
            return startup.reset_count
        if a == r.RESET_CAUSE:
            return startup.cause
        if a == r.BOOT_FAILURES:
            return startup.boot_failures
        if self.slave is not None:
            dec = self.slave.decoder
            if a == r.CRC_ERRORS:
                return dec.crc_errors & 0xFFFF
            if a == r.FRAME_ERRORS:
                return dec.frame_errors & 0xFFFF
        return 0  # QUEUE_DROPS (polled mode queues nothing), COMMAND reads as 0

    def write(self, address: int, values: "tuple[int, ...]", broadcast: bool) -> int:
        """Apply a register write (all or nothing); 0 or the Modbus exception code."""
        code = r.check_write(address, values)
        if code:
            return code
        if address == r.COMMAND:
            self.command(values[0])
            return 0
        cfg = self.cfg
        new = dict(cfg.raw)
        for i in range(len(values)):
            new[address + i] = values[i]
        if config.cross_check(new):
            return c.EX_ILLEGAL_VALUE
        if broadcast and new[r.ADDRESS] != cfg.raw[r.ADDRESS]:
            return c.EX_ILLEGAL_VALUE  # one address for every node: never (and never answered)
        old = dict(cfg.raw)
        cfg.raw.update(new)  # in place: the sense task holds this dict
        try:
            config.save(cfg)
        except OSError as exc:  # flash full or failing: refuse rather than half-apply
            cfg.raw.update(old)
            print("firelane: config not saved:", exc)
            return c.EX_DEVICE_FAILURE
        for bit, reg in ((1, r.ADDRESS), (2, r.BAUD), (4, r.LINK_MODE)):
            if new[reg] != old[reg]:
                self._pending |= bit
        return 0

    def command(self, code: int) -> None:
        t = now()
        if code == c.CMD_SILENCE:
            self.node.silence(t)
        elif code == c.CMD_SELF_TEST:
            self.node.start_test(t, True)
        elif code == c.CMD_RESET_ALARM:
            self.button.latched = False
            self.node.level(t, c.SRC_BUTTON, 0, 0)
        elif code == c.CMD_IDENTIFY:
            self.node.identify(t)

    def _apply_pending(self) -> None:
        """Link settings written over the bus take effect after the reply has gone out."""
        p, self._pending = self._pending, 0
        if p & 4:
            board.reset()  # the other link mode starts on the next boot
        if p & 1 and self.slave is not None:
            self.slave.decoder.address = self.cfg.raw[r.ADDRESS]
        if p & 2:
            self.board.set_baud(self.cfg.baud())

    # Push-mode authentication counters survive reboots by reserving blocks on flash.
    def _reserve(self, counter: int) -> int:
        try:
            with open(_COUNTER_FILE) as f:
                stored = int(f.read())
        except (OSError, ValueError):
            stored = 0
        top = max(stored, counter) + _COUNTER_BLOCK
        with open(_COUNTER_FILE + ".tmp", "w") as f:
            f.write(str(top))
        import os

        os.rename(_COUNTER_FILE + ".tmp", _COUNTER_FILE)
        return top

    # Tasks.
    async def _sense(self) -> None:
        b = self.board
        cfg = self.cfg.raw
        b.ct_start()
        k = 0
        beat = 0
        while True:
            await asyncio.sleep(_SENSE_MS / 1000)
            t = now()
            self._ms += diff(t, self._last)
            self._last = t
            while self._ms >= 1000:
                self._ms -= 1000
                self.uptime += 1
            if b.ct_ready():
                lk = self.leakage
                changed = lk.window(
                    t,
                    b.ct,
                    cfg[r.LEAKAGE_ALARM],
                    cfg[r.LEAKAGE_PRE_ALARM],
                    cfg[r.LEAKAGE_ALARM_DELAY],
                    cfg[r.LEAKAGE_RELEASE_DELAY],
                )
                self._sensor(t, lk, c.SRC_LEAKAGE, 1 << c.FAULT_CT_OPEN, changed)
                b.ct_start()
            if k % 4 == 0:
                s = self.smoke
                changed = s.update(t, b.mv("smoke"), cfg[r.SMOKE_ALARM], cfg[r.SMOKE_PRE_ALARM])
                self._sensor(t, s, c.SRC_SMOKE, 3 << c.FAULT_SMOKE_DIRTY, changed)
                h = self.temperature
                changed = h.update(t, b.mv("temperature"), cfg[r.TEMP_FIXED], cfg[r.TEMP_RATE])
                self._sensor(t, h, c.SRC_TEMPERATURE, 1 << c.FAULT_TEMP_SENSOR, changed)
                p = self.supply
                changed = p.update(t, b.mv("supply"), cfg[r.SUPPLY_LOW])
                self._sensor(t, p, c.SRC_SUPPLY, 1 << c.FAULT_LOW_SUPPLY, changed)
                node = self.node
                if node.test_due(t):
                    node.start_test(t, self.uptime < 60)  # audible at power-up only
                elif node.test_over(t):
                    node.end_test(t, node.faults & _INPUT_FAULTS)
                if self.pushlink is not None:
                    beat -= 1
                    if beat <= 0:
                        beat = cfg[r.HEARTBEAT]
                        self.pushlink.heartbeat(self.block(t), self.uptime)
            k += 1
            self._progress[0] = t

    async def _io(self) -> None:
        b = self.board
        node = self.node
        while True:
            t = now()
            press = self.button.update(t, b.button())
            if press == HELD:
                node.level(t, c.SRC_BUTTON, 2, 0)
            elif press == SHORT:
                self._emit(c.EV_BUTTON, c.SRC_BUTTON, 0, 0)
            if self.hush.update(t, b.hush()):
                node.silence(t)
            state = node.state(t)
            quiet = node.hushed(t) or (state == TEST and not node.audible)
            led, buzz = outputs(state, t // SLOT_MS, quiet, node.identifying(t))
            b.led(led)
            b.buzzer(buzz)
            self._progress[1] = t
            await asyncio.sleep(_IO_MS / 1000)

    async def _link(self) -> None:
        b = self.board
        slave, pushlink = self.slave, self.pushlink
        t35_ms = 0
        last = now()
        heard = False
        while True:
            if t35_ms != t35_us(self.cfg.baud()) // 1000:  # at start, and after a BAUD write
                t35_ms = t35_us(self.cfg.baud()) // 1000
                gap_ms = t35_ms + 1  # ms ticks: strictly more than t3.5 has passed
                busy_s = max(t35_ms, 1) / 1000
            t = now()
            data = b.receive()
            if data:
                last, heard = t, True
                if slave is not None:
                    reply = slave.receive(data)
                    if reply:
                        b.send(reply)
                    if self._pending:
                        self._apply_pending()
                elif pushlink is not None:
                    pushlink.receive(data)
            elif heard and diff(t, last) > gap_ms:
                heard = False
                if slave is not None:
                    slave.gap()  # t3.5 of silence: what came before was a whole frame
            if pushlink is not None and diff(t, last) > gap_ms:  # listen before talk
                frame = pushlink.poll(t)
                if frame:
                    b.send(frame)
                    if pushlink.counter >= self._reserved:
                        self._reserved = self._reserve(pushlink.counter)
            self._progress[2] = t
            # While the line is busy, look every t3.5 (the coarsest step that still frames by
            # silence: 2 ms at 19200 baud, 1 ms above); after 50 ms of quiet every 5 ms, so a
            # node on an idle bus costs little and the first request waits at most that long.
            await asyncio.sleep(busy_s if diff(t, last) < 50 else 0.005)

    async def run(self) -> None:
        """Start the tasks and supervise them; returns only by cancellation or reset."""
        b = self.board
        b.watchdog(WATCHDOG_MS)
        for coro in (self._sense(), self._io(), self._link()):
            self._tasks.append(asyncio.create_task(coro))
        healthy = False
        while True:
            t = now()
            if all(diff(t, p) < STALL_MS for p in self._progress):
                b.feed()
                if not healthy and self.uptime * 1000 >= startup.HEALTHY_MS:
                    healthy = True
                    startup.healthy(self.supply.value)
            await asyncio.sleep(1)

    def deinit(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self.board.deinit()
