"""The gateway service: config, buses, push links, rule core, outbox and uplink composed in one
asyncio.TaskGroup with named tasks (../shared/STYLE.md, lesson 10).

Data path: a Bus or PushReceiver hands a Sample, NodeEvent or Silent to on_reading/on_push; the
rule core turns it into Alerts; each Alert becomes an `event` message committed to the outbox
(fsynced) before anything else happens to it, in particular before a push node gets its ACK;
the uplink drains the outbox to the broker and deletes an entry only after its PUBACK.

Around it: a ticker runs the rule core's timers (supervision, verification) once a second; a
supervisor pings the systemd watchdog only while every loop is healthy (gateway/health.py) and
writes the status snapshot for `firelane status`; SIGTERM flushes the outbox (bounded) and says
offline before exiting.

A walk test (`firelane walktest`, installer/walktest.py) runs this same Gateway with
test_mode=True, so every alert goes upstream marked test, and an observer that sees every
reading and alert as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

from gateway import __version__
from gateway.config import GatewayConfig, NodeConfig
from gateway.health import Health
from gateway.link import LinkError
from gateway.messages import Command, CommandResult, Outgoing, event_message, state_message
from gateway.modbus_bus import Bus
from gateway.model import Alert, NodeEvent, Sample, Silent
from gateway.outbox import Outbox, OutboxError
from gateway.push_rx import PushReceiver
from gateway.rules.build import compile_rules
from gateway.rules.spec import NodeInfo, parse_rules
from gateway.sdnotify import Notifier
from gateway.status import status_path, write_status
from gateway.uplink import Uplink, UplinkSettings
from protocol import names

log = logging.getLogger("firelane.gateway")

TICK_S = 1.0  # the rule core's timers: supervision and verification resolve to this
STATUS_EVERY_S = 5.0
STATE_REFRESH_S = 60.0  # a node's retained state is republished at least this often
FLUSH_TIMEOUT_S = 10.0  # on SIGTERM, inside systemd's TimeoutStopSec
_COMMAND_CODES = {name: code for code, name in names.COMMANDS.items()}
Observer = Callable[[Alert | Sample | Silent | NodeEvent], None]


class _Stop(Exception):
    """Raised inside the TaskGroup to end it once the outbox has been flushed."""


class Gateway:
    """One gateway, from its validated config. run() until stop() (or SIGTERM)."""

    def __init__(
        self,
        cfg: GatewayConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
        test_mode: bool = False,
        observer: Observer | None = None,
    ) -> None:
        """test_mode: every alert is marked test=True upstream (a walk test, RuleCore.test_mode).
        observer: called with every reading the buses and push links hand in, and with every
        alert once it is in the outbox (`firelane walktest` shows them live); its errors are
        logged and never reach the data path."""
        self.cfg = cfg
        self._observer = observer
        self._clock = clock
        self._wall = wall
        self._notifier = notifier or Notifier()
        self.health = Health(clock)
        self._stop = asyncio.Event()
        self._started = clock()
        self._nodes = {n.name: n for n in cfg.nodes}
        self._bus_of = {n.name: n.bus for n in cfg.nodes}
        spec = parse_rules(cfg.rules)
        infos = {n.name: NodeInfo(n.name, n.house, n.zone, n.supervision_s) for n in cfg.nodes}
        self.rules = compile_rules(spec, infos)
        self.rules.test_mode = test_mode
        self._last: dict[str, Sample] = {}
        self._seen_utc: dict[str, float] = {}
        self._state_key: dict[str, tuple[int, int, int, bool]] = {}
        self._state_at: dict[str, float] = {}
        self.buses: dict[str, Bus] = {}
        self.push: dict[str, PushReceiver] = {}
        self.uplink: Uplink | None = None
        self.outbox: Outbox | None = None
        self.rejected = 0  # readings whose alerts could not be stored (disk full)

    def stop(self) -> None:
        self._stop.set()

    # The data path.
    async def on_reading(self, reading: Sample | Silent) -> None:
        """From a polled bus (and a push link's silence): never raises into the bus."""
        self.health.beat(f"bus[{self._bus_of.get(reading.node, '?')}]")
        self._observe(reading)
        if isinstance(reading, Sample):
            alerts = self.rules.sample(reading)
        else:
            alerts = self.rules.silent(reading)
        try:
            await self._commit(alerts, reading)
        except OutboxError as exc:
            self.rejected += 1
            log.error("event=store_failed node=%s error=%r", reading.node, str(exc))

    async def on_push(self, item: Sample | NodeEvent) -> bool:
        """From a push link: True once durable, so the receiver may ACK; False makes it NAK
        busy and the node sends again."""
        self.health.beat(f"push[{self._bus_of.get(item.node, '?')}]")
        self._observe(item)
        alerts = self.rules.sample(item) if isinstance(item, Sample) else self.rules.event(item)
        try:
            await self._commit(alerts, item)
        except OutboxError as exc:
            self.rejected += 1
            log.error("event=store_failed node=%s error=%r", item.node, str(exc))
            return False
        return True

    async def _commit(self, alerts: list[Alert], reading: Sample | Silent | NodeEvent) -> None:
        utc = self._wall()
        out: list[Outgoing] = []
        for alert in alerts:
            log.info(
                "event=alert kind=%s node=%s source=%s detail=%s test=%s",
                alert.kind,
                alert.node,
                alert.source,
                alert.detail,
                alert.test,
            )
            out.append(
                event_message(
                    alert,
                    event_id=uuid.uuid4().hex,
                    site=self.cfg.site,
                    gateway_id=self.cfg.gateway_id,
                    prefix=self.cfg.mqtt.topic_prefix,
                    utc=utc,
                )
            )
        state = self._state(reading, utc)
        if state is not None:
            out.append(state)
        if out and self.uplink is not None:
            await self.uplink.submit(*out)
        for alert in alerts:
            self._observe(alert)

    def _observe(self, item: Alert | Sample | Silent | NodeEvent) -> None:
        if self._observer is None:
            return
        try:
            self._observer(item)
        except Exception:  # a display's bug must not stop an alarm
            log.exception("event=observer_failed item=%r", item)

    def _state(self, reading: Sample | Silent | NodeEvent, utc: float) -> Outgoing | None:
        """The node's retained state when it changed, or at least every STATE_REFRESH_S."""
        name = reading.node
        node = self._nodes.get(name)
        if node is None:
            return None
        if isinstance(reading, Sample):
            self._last[name] = reading
            self._seen_utc[name] = utc
        elif isinstance(reading, NodeEvent):
            self._seen_utc[name] = utc
        last = self._last.get(name)
        online = not self.rules.offline(name)
        key = (last.status, last.sources, last.faults, online) if last else (0, 0, 0, online)
        now = self._clock()
        if key == self._state_key.get(name) and now - self._state_at.get(name, -1e9) < (
            STATE_REFRESH_S
        ):
            return None
        self._state_key[name] = key
        self._state_at[name] = now
        return state_message(
            name,
            house=node.house,
            zone=node.zone,
            sample=last,
            online=online,
            last_seen_utc=self._seen_utc.get(name),
            site=self.cfg.site,
            gateway_id=self.cfg.gateway_id,
            prefix=self.cfg.mqtt.topic_prefix,
            utc=utc,
        )

    # Commands from the centre.
    async def on_command(self, command: Command) -> CommandResult:
        node = self._nodes[command.node]  # parse_command checked the name
        bus = self.buses.get(node.bus)
        if bus is None:
            return CommandResult(
                False, f"node {node.name} is on a push link, which takes no commands"
            )
        try:
            await bus.command(node.address, _COMMAND_CODES[command.command])
        except LinkError as exc:
            return CommandResult(False, str(exc))
        log.info("event=command command=%s node=%s", command.command, node.name)
        return CommandResult(True)

    # Loops.
    async def _tick(self) -> None:
        while True:
            alerts = self.rules.tick(self._clock())
            if alerts:
                try:
                    await self._commit_alerts(alerts)
                except OutboxError as exc:
                    log.error("event=store_failed error=%r", str(exc))
            self.health.beat("rules.tick")
            await asyncio.sleep(TICK_S)

    async def _commit_alerts(self, alerts: list[Alert]) -> None:
        for alert in alerts:  # supervision: the node's state changes too
            await self._commit([alert], Silent(alert.node, self._clock()))

    async def _supervise(self) -> None:
        interval = self._notifier.watchdog_interval_s() or STATUS_EVERY_S
        next_status = 0.0
        while True:
            stalled = self.health.stalled()
            if not stalled:
                self._notifier.watchdog()
            elif self._notifier.enabled:
                self._notifier.status("stalled: " + ", ".join(stalled))
            now = self._clock()
            if now >= next_status:
                next_status = now + STATUS_EVERY_S
                with contextlib.suppress(OSError):  # status is a convenience, never fatal
                    write_status(status_path(self.cfg.storage.path), self.snapshot(stalled))
            await asyncio.sleep(min(interval, STATUS_EVERY_S))

    async def _stopper(self) -> None:
        await self._stop.wait()
        log.info("event=stopping flush_timeout_s=%s", FLUSH_TIMEOUT_S)
        self._notifier.stopping()
        if self.uplink is not None:
            await self.uplink.stop(FLUSH_TIMEOUT_S)
        raise _Stop

    def snapshot(self, stalled: list[str] | None = None) -> dict[str, Any]:
        up = self.uplink.state if self.uplink is not None else None
        depth = self.outbox.depth() if self.outbox is not None else {}
        nodes = []
        for n in self.cfg.nodes:
            last = self._last.get(n.name)
            state = "offline" if self.rules.offline(n.name) else "unknown"
            if last is not None and not self.rules.offline(n.name):
                bits = names.bits(names.STATUS_BITS, last.status)
                state = "alarm" if "alarm" in bits else "fault" if "fault" in bits else "normal"
            seen = self._seen_utc.get(n.name)
            nodes.append(
                {
                    "name": n.name,
                    "house": n.house,
                    "zone": n.zone,
                    "state": state,
                    "last_seen_s": seen,
                }
            )
        buses: list[dict[str, Any]] = [
            {"name": name, **bus.snapshot()} for name, bus in self.buses.items()
        ]
        buses += [
            {"name": name, "endpoint": rx.port, "state": "push"} for name, rx in self.push.items()
        ]
        return {
            "gateway_id": self.cfg.gateway_id,
            "site": self.cfg.site,
            "version": __version__,
            "uptime_s": self._clock() - self._started,
            "written": self._wall(),
            "uplink": {}
            if up is None
            else {
                "connected": up.connected,
                "published": up.published,
                "reconnects": up.reconnects,
                "last_error": up.last_error,
            },
            "outbox": {p.name.lower(): count for p, count in depth.items()},
            "buses": buses,
            "nodes": nodes,
            "stalled": stalled or [],
            "rejected": self.rejected,
        }

    def _bus_status(self) -> dict[str, object]:
        out: dict[str, object] = {name: bus.snapshot() for name, bus in self.buses.items()}
        out.update({name: {"endpoint": rx.port, "kind": "push"} for name, rx in self.push.items()})
        return out

    # The whole.
    async def run(self) -> None:
        cfg = self.cfg
        mqtt = cfg.mqtt
        settings = UplinkSettings(
            host=mqtt.host,
            gateway_id=cfg.gateway_id,
            site=cfg.site,
            port=mqtt.port,
            prefix=mqtt.topic_prefix,
            tls=mqtt.tls,
            ca_file=str(mqtt.ca_file) if mqtt.ca_file else None,
            client_cert=str(mqtt.client_cert) if mqtt.client_cert else None,
            client_key=str(mqtt.client_key) if mqtt.client_key else None,
            username=mqtt.username,
            password=mqtt.password_value(),
            keepalive_s=mqtt.keepalive_s,
            client_id=mqtt.client_id,
        )
        with Outbox(cfg.storage.path, max_telemetry=cfg.storage.max_telemetry) as outbox:
            self.outbox = outbox
            counters = _load_counters(outbox)
            async with contextlib.AsyncExitStack() as stack:
                self.uplink = await stack.enter_async_context(
                    Uplink(
                        settings,
                        outbox,
                        nodes=set(self._nodes),
                        on_command=self.on_command,
                        buses=self._bus_status,
                        beat=lambda: self.health.beat("uplink"),
                    )
                )
                self.health.register(
                    "uplink", settings.reconnect_max_s + 3 * settings.timeout_s + 30
                )
                for bus_cfg in cfg.buses:
                    members = cfg.nodes_on(bus_cfg.name)
                    if bus_cfg.polled:
                        bus = Bus(
                            bus_cfg.name,
                            [(n.name, n.address) for n in members],
                            self.on_reading,
                            kind=bus_cfg.kind,
                            port=bus_cfg.port,
                            baud=bus_cfg.baud,
                            parity=bus_cfg.parity,
                            host=bus_cfg.host,
                            tcp_port=bus_cfg.tcp_port,
                            framer=bus_cfg.framer,
                            timeout_s=bus_cfg.timeout_s,
                            status_every_s=bus_cfg.status_every_s,
                            measure_every=bus_cfg.measure_every,
                            offline_backoff_max_s=bus_cfg.offline_backoff_max_s,
                        )
                        self.buses[bus_cfg.name] = await stack.enter_async_context(bus)
                        stall = bus_cfg.offline_backoff_max_s + 60
                    else:
                        rx = PushReceiver(
                            bus_cfg.port,
                            bus_cfg.baud,
                            _push_nodes(members),
                            self.on_push,
                            counters,
                            lambda: _save_counters(outbox, counters),
                            parity=bus_cfg.parity,
                            on_silent=self.on_reading,
                        )
                        self.push[bus_cfg.name] = await stack.enter_async_context(rx)
                        stall = 600.0  # a quiet push line is normal; heartbeats keep it lively
                    prefix = "bus" if bus_cfg.polled else "push"
                    self.health.register(f"{prefix}[{bus_cfg.name}]", stall)
                self.health.register("rules.tick", 30 * TICK_S)
                try:
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self.uplink.run(), name="uplink")
                        for name, bus in self.buses.items():
                            tg.create_task(bus.run(), name=f"bus[{bus.port}].poll")
                            log.info("event=bus_started bus=%s port=%s", name, bus.port)
                        for name, rx in self.push.items():
                            tg.create_task(rx.run(), name=f"push[{rx.port}].receive")
                            log.info("event=push_started bus=%s port=%s", name, rx.port)
                        tg.create_task(self._tick(), name="rules.tick")
                        tg.create_task(self._supervise(), name="supervisor")
                        tg.create_task(self._stopper(), name="stopper")
                        self._notifier.ready()
                        log.info(
                            "event=ready gateway=%s buses=%d nodes=%d test_mode=%s",
                            cfg.gateway_id,
                            len(cfg.buses),
                            len(cfg.nodes),
                            self.rules.test_mode,
                        )
                except* _Stop:
                    pass
        log.info("event=stopped")


def _push_nodes(members: tuple[NodeConfig, ...]) -> dict[int, tuple[str, bytes | None]]:
    return {n.node_id: (n.name, n.key) for n in members if n.node_id is not None}


_COUNTERS_KEY = "push.counters"


def _load_counters(outbox: Outbox) -> dict[int, int]:
    """The push links' replay counters, kept in the outbox's state table across restarts."""
    text = outbox.get_state(_COUNTERS_KEY) or ""
    counters: dict[int, int] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key.isdigit() and value.isdigit():
            counters[int(key)] = int(value)
    return counters


def _save_counters(outbox: Outbox, counters: dict[int, int]) -> None:
    outbox.set_state(_COUNTERS_KEY, ",".join(f"{k}={v}" for k, v in sorted(counters.items())))


def quiet_pymodbus() -> None:
    """pymodbus logs every garbled or unanswered frame at ERROR with a hex dump: 1.5 MB in 3
    minutes on a line with 1 % corrupted bytes (hil_tests/test_scenarios_faults.py), ~0.7 GB a
    day on a card nobody empties. The gateway counts those per node itself (DeviceStats, in
    `firelane status`) and logs a node going offline and back (rate-limited, modbus_bus.py),
    so only pymodbus's CRITICAL lines reach the journal."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def run_service(cfg: GatewayConfig) -> int:
    """`firelane gateway run`: run until SIGTERM or SIGINT; 0 after a clean stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    quiet_pymodbus()

    async def main() -> None:
        gateway = Gateway(cfg)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.stop)
        await gateway.run()

    asyncio.run(main())
    return 0
