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
import startup
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
from ticks import diff, now, now_us

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
        # One link, by mode; only its modules are imported (docs/protocol.md, heap).
        self.push = cfg.raw[r.LINK_MODE] == r.LINK_PUSH
        self.pushlink: PushLink | None = None
        self.slave: Slave | None = None
        self._reserved = 0
        if self.push:
            self.pushlink = self._push_link()
        else:  # the register map is served in polled mode only
            import regmap
            import slave

            self.regs = regmap.RegMap(self)
            self.slave = slave.Slave(cfg.raw[r.ADDRESS], self.regs.word, self.regs.write)
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

    def command(self, code: int) -> None:
        t = now()
        if code == c.CMD_SILENCE:
            self.node.silence(t)
        elif code == c.CMD_SELF_TEST:
            self.node.start_test(t, True)
        elif code == c.CMD_RESET_ALARM:
            self.button.reset(t)  # a call point still held latches again (button.py)
            self.node.level(t, c.SRC_BUTTON, 0, 0)
        elif code == c.CMD_IDENTIFY:
            self.node.identify(t)

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
        t35 = 0
        last = now()
        heard = False
        pending = None  # a reply held until t3.5 after the request (spec 2.5.1.1)
        heard_us = 0  # when the request's last bytes were read, in us ticks
        while True:
            if t35 != t35_us(self.cfg.baud()):  # at start, and after a BAUD write
                t35 = t35_us(self.cfg.baud())
                t35_ms = t35 // 1000
                gap_ms = t35_ms + 1  # ms ticks: strictly more than t3.5 has passed
                busy_s = max(t35_ms, 1) / 1000
            t = now()
            data = b.receive()
            if data:
                last, heard = t, True
                if slave is not None:
                    reply = slave.receive(data)
                    heard_us = now_us()
                    if reply:
                        pending = reply
                    elif self.regs.pending and pending is None:
                        self.regs.apply_pending()  # a broadcast write: no reply to wait for
                elif pushlink is not None:
                    pushlink.receive(data)
            elif heard and diff(t, last) > gap_ms:
                heard = False
                if slave is not None:
                    slave.gap()  # t3.5 of silence: what came before was a whole frame
            # The bytes arrived before they were read, so t3.5 after the read the master has
            # had t3.5 of silence to end its frame and let go of the line (microseconds: at
            # 115200 baud t3.5 is 1.75 ms, and ms ticks would hold the reply twice as long).
            hold_us = 0 if pending is None else t35 - diff(now_us(), heard_us)
            if pending is not None and hold_us <= 0:
                b.send(pending)
                pending = None
                if self.regs.pending:  # a new address or baud takes effect after the reply
                    self.regs.apply_pending()
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
            if pending is not None:  # wake when the reply may go
                await asyncio.sleep(hold_us / 1_000_000)
            else:
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
