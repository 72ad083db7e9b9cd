"""What the end-to-end scenarios share: a whole site on one virtual RS-485 bus, and the
centre's side of it.

    with Site(tmp_path, range(1, 5), baud=19200) as site:   # nodes, bus, broker, gateway
        async with TimedCollector(site.broker.port, site.topic) as centre:
            await wait_all_states(centre, site, 20)
            await site.set(1, smoke_pct=3.5)
            ...

A Site starts, in this order: the virtual bus (VirtualBus), one emulated node per address
(real firmware, one process each, `node-{address}`), a real mosquitto on a free port (unless
broker=False) and the real `firelane gateway run` process with its config (gateway_kit).
Everything it started is stopped on exit, also after a failure. Push-mode nodes get a
config.json with link_mode "push" (and a key) before they boot; the gateway's bus is then a
push bus.

The Collector stamps each message with its arrival time (Received.at, time.monotonic()), so a
latency is the arrival stamp minus the moment the test changed the sensor input. Waits are on
conditions with deadlines (Collector.wait_for, EmulatorProcess.wait_event), never sleeps.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiomqtt

from bench.procstat import cpu_seconds
from gateway.status import status_path
from hil_tests.bus.faults import Faults
from hil_tests.bus.virtual_bus import VirtualBus
from hil_tests.emulator.control import Control
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.gateway_kit import GATEWAY, PREFIX, start_gateway, stop_gateway, write_config
from tests.gateway.mosquitto import Mosquitto
from tests.gateway.subscriber import Collector, Received

ALARM_LIMIT_S = 10.0  # EN 54-2 / GB 4717: an alarm shown within 10 s (../shared/DOMAIN.md)
FAULT_LIMIT_S = 100.0  # EN 54-2: a fault shown within 100 s
# A bus response timeout for emulated nodes on a shared 2-core host. Derived from the baud rate
# (as deployed) it is 32-66 ms: a real node answers within ~10 ms, but an emulated node is a
# Python process that, with the machine loaded, may not be scheduled for longer than that; its
# late answer then also garbles the next transaction. 250 ms keeps the host's scheduling out of
# the verdict. The alarm bound stays 10 s.
HOST_TIMEOUT_MS = 250
NODE_ID_BASE = 0x1A000000  # an emulated node's NODE_ID is this | its address (emulator --uid)
EVENT_TOPIC = f"{PREFIX}/{GATEWAY}/event"


def node_name(address: int) -> str:
    return f"node-{address}"


def push_key(address: int) -> str:
    """A node's push authentication key (hex, 16 bytes), different for every node."""
    return f"{address:02x}" * 16


class Site:
    """Nodes on one virtual bus, a broker and the gateway; see the module docstring.

    houses maps an address to its house (default: one house per node). timeout_ms is the
    bus's response timeout (0: derived from the baud rate, as deployed). Leave the gateway
    out with gateway=False and start it with start_gateway(); the broker with broker=False
    (then broker.start() later: its port is fixed from the start).
    """

    def __init__(
        self,
        tmp: Path,
        addresses: Iterable[int],
        *,
        baud: int = 19200,
        faults: Faults | None = None,
        seed: int = 0,
        supervision_s: float = 15.0,
        link_mode: str = "poll",
        heartbeat_s: int = 5,
        houses: Mapping[int, str] | None = None,
        broker: bool = True,
        persistence: bool = False,
        gateway: bool = True,
        offline_backoff_max_s: float | None = None,
        node_start_timeout_s: float = 60.0,
        timeout_ms: int = 0,
    ) -> None:
        self.tmp = tmp
        self.addresses = list(addresses)
        self.baud = baud
        self.link_mode = link_mode
        self.houses = dict(houses or {a: f"H{a}" for a in self.addresses})
        self.bus = VirtualBus(baud, faults=faults, seed=seed)
        self.nodes: dict[int, EmulatorProcess] = {}
        self.broker = Mosquitto(tmp / "broker", persistence=persistence)
        self.gateway: subprocess.Popen[bytes] | None = None
        self.gateway_starts = 0
        self._want_broker = broker
        self._want_gateway = gateway
        self._supervision_s = supervision_s
        self._heartbeat_s = heartbeat_s
        self._backoff = offline_backoff_max_s
        self._node_timeout = node_start_timeout_s
        self._timeout_ms = timeout_ms
        self._controls: dict[int, Control] = {}
        self.config: Path | None = None
        self.node_start_s = 0.0  # how long the nodes took to boot (all of them)

    @property
    def topic(self) -> str:
        return f"{PREFIX}/{GATEWAY}/#"

    @property
    def names(self) -> list[str]:
        return [node_name(a) for a in self.addresses]

    @property
    def db(self) -> Path:
        return self.tmp / "gateway.sqlite3"

    # --- life cycle ----------------------------------------------------------------------

    def __enter__(self) -> Site:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _start(self) -> None:
        self.bus.start()
        t0 = time.monotonic()
        push = self.link_mode == "push"
        for a in self.addresses:
            fs = self.tmp / f"fs{a}"
            fs.mkdir(parents=True, exist_ok=True)
            if push:
                config = {
                    "address": a,
                    "baud": self.baud,
                    "link_mode": "push",
                    "heartbeat_s": self._heartbeat_s,
                    "key": push_key(a),
                }
                (fs / "config.json").write_text(json.dumps(config) + "\n")
            serial = self.bus.attach(f"node{a}")
            emu = EmulatorProcess(
                fs, serial, address=None if push else a, baud=None if push else self.baud
            )
            self.nodes[a] = emu
            emu.start(wait=False)
        for emu in self.nodes.values():
            emu.wait_event("uart", self._node_timeout)
        self.node_start_s = time.monotonic() - t0
        if self._want_broker:
            self.broker.start()
        members = [(node_name(a), a, self.houses[a], self.houses[a]) for a in self.addresses]
        self.config = write_config(
            self.tmp,
            self.broker.port,
            self.bus.attach("gateway"),
            members,
            site="Scenario Street",
            baud=self.baud,
            supervision_s=self._supervision_s,
            kind="push" if push else "rtu",
            offline_backoff_max_s=self._backoff,
            node_ids={node_name(a): NODE_ID_BASE | a for a in self.addresses} if push else None,
            keys={node_name(a): push_key(a) for a in self.addresses} if push else None,
            timeout_ms=self._timeout_ms,
        )
        if self._want_gateway:
            self.start_gateway()

    def start_gateway(self) -> subprocess.Popen[bytes]:
        assert self.config is not None and self.gateway is None
        self.gateway_starts += 1
        self.gateway = start_gateway(self.tmp, self.config, self.log_name)
        return self.gateway

    @property
    def log_name(self) -> str:
        return f"gateway-{self.gateway_starts}.log"

    def kill_gateway(self) -> None:
        """SIGKILL: no flush, no offline status, no goodbye."""
        gw, self.gateway = self.gateway, None
        if gw is not None:
            gw.send_signal(signal.SIGKILL)
            gw.wait(10)

    def close(self) -> None:
        for ctl in self._controls.values():
            ctl.close()
        self._controls.clear()
        if self.gateway is not None:
            stop_gateway(self.gateway)
            self.gateway = None
        for emu in self.nodes.values():
            emu.stop()
        if self.broker.running:
            self.broker.kill()
        self.bus.close()

    # --- driving the nodes -----------------------------------------------------------------

    def control(self, address: int) -> Control:
        """The node's control client (one connection, kept open)."""
        ctl = self._controls.get(address)
        if ctl is None:
            ctl = self._controls[address] = self.nodes[address].control()
        return ctl

    async def set(self, address: int, **inputs: object) -> float:
        """Drive a node's inputs (in a thread: the socket blocks); the monotonic time just
        before the change reached the board."""
        t = time.monotonic()
        await asyncio.to_thread(self.control(address).set, **inputs)
        return t

    async def state(self, address: int) -> dict[str, Any]:
        return await asyncio.to_thread(self.control(address).state)

    async def wait_state(
        self, address: int, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        ctl = self.control(address)
        return await asyncio.to_thread(ctl.wait_state, predicate, timeout)

    async def wait_uptime(self, address: int, at_least_ms: int, timeout: float = 20) -> int:
        """Until the board's own clock reads at_least_ms: a window on the node's clock, so a
        loaded machine stretches it rather than cutting it short. The uptime reached."""
        state = await self.wait_state(address, lambda s: s["uptime_ms"] >= at_least_ms, timeout)
        ms: int = state["uptime_ms"]
        return ms

    async def uptime_ms(self, address: int) -> int:
        ms: int = (await self.state(address))["uptime_ms"]
        return ms

    # --- diagnostics ---------------------------------------------------------------------

    def logs(self, chars: int = 3000) -> str:
        """The tail of the gateway's logs (every start), for failure messages."""
        out = []
        for n in range(1, self.gateway_starts + 1):
            path = self.tmp / f"gateway-{n}.log"
            if path.exists():
                out.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    def check_alive(self) -> None:
        assert self.gateway is not None and self.gateway.poll() is None, self.logs()
        for a, emu in self.nodes.items():
            assert emu._proc is not None and emu._proc.poll() is None, (
                f"node {a} exited\n{emu.stderr()}"
            )

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far (user + system, from /proc) by all the node processes
        together, and by the gateway process."""

        def used(pid: int) -> float:
            try:
                return cpu_seconds(pid)
            except OSError:  # the process has gone
                return 0.0

        nodes = sum(used(e._proc.pid) for e in self.nodes.values() if e._proc is not None)
        gateway = used(self.gateway.pid) if self.gateway is not None else 0.0
        return nodes, gateway

    def status_snapshot(self) -> dict[str, Any]:
        """The gateway's status file (`firelane status` reads it; written every 5 s)."""
        doc: dict[str, Any] = json.loads(status_path(self.db).read_text())
        return doc


# Every Received carries its arrival time (Received.at): any Collector times the centre.
TimedCollector = Collector


# --- reading what the centre got ---------------------------------------------------------


def event_messages(got: list[Received]) -> list[Received]:
    return [m for m in got if m.topic == EVENT_TOPIC]


def node_events(
    got: list[Received], node: str | None = None, kinds: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """The events (JSON) for one node (or all), of the given kinds (or all), in arrival order."""
    wanted = None if kinds is None else set(kinds)
    out = []
    for m in event_messages(got):
        doc = m.json()
        if (node is None or doc["node"] == node) and (wanted is None or doc["kind"] in wanted):
            out.append(doc)
    return out


def first_event(
    centre: TimedCollector, node: str, kind: str, source: str | None = None
) -> tuple[dict[str, Any], float] | None:
    """The first event of that kind (and source) from node, with its arrival time."""
    for m in centre.got:
        if m.topic != EVENT_TOPIC:
            continue
        doc = m.json()
        if doc["node"] == node and doc["kind"] == kind and source in (None, doc["source"]):
            return doc, m.at
    return None


async def wait_event(
    centre: TimedCollector,
    node: str,
    kind: str,
    source: str | None = None,
    *,
    timeout: float,
    site: Site | None = None,
) -> tuple[dict[str, Any], float]:
    """Wait for the first such event; it and its arrival time. The failure names what came."""
    try:
        await centre.wait_for(
            lambda _: first_event(centre, node, kind, source) is not None, timeout
        )
    except TimeoutError:
        seen = [(e["node"], e["kind"], e["source"]) for e in node_events(centre.got)]
        logs = site.logs() if site is not None else ""
        raise AssertionError(
            f"no {kind} ({source or 'any source'}) from {node} within {timeout} s; "
            f"events: {seen}\n{logs}"
        ) from None
    found = first_event(centre, node, kind, source)
    assert found is not None
    return found


def latest_state(got: list[Received], node: str) -> dict[str, Any] | None:
    states = [m for m in got if m.topic == f"{PREFIX}/{GATEWAY}/node/{node}/state"]
    return states[-1].json() if states else None


async def wait_state_msg(
    centre: Collector,
    node: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    """The node's retained state, once the latest one satisfies predicate."""

    def ok(got: list[Received]) -> bool:
        state = latest_state(got, node)
        return state is not None and predicate(state)

    try:
        await centre.wait_for(ok, timeout)
    except TimeoutError:
        raise AssertionError(
            f"{node}: state not reached in {timeout} s; last: {latest_state(centre.got, node)}"
        ) from None
    state = latest_state(centre.got, node)
    assert state is not None
    return state


async def wait_all_states(centre: Collector, site: Site, timeout: float) -> float:
    """Until every node's retained state has arrived (each was heard once); the time taken."""
    t0 = time.monotonic()
    names = set(site.names)

    def all_there(got: list[Received]) -> bool:
        prefix = f"{PREFIX}/{GATEWAY}/node/"
        seen = {m.topic[len(prefix) :].split("/")[0] for m in got if m.topic.startswith(prefix)}
        return names <= seen

    try:
        await centre.wait_for(all_there, timeout)
    except TimeoutError:
        prefix = f"{PREFIX}/{GATEWAY}/node/"
        seen = {m.topic[len(prefix) :].split("/")[0] for m in centre.got}
        raise AssertionError(
            f"not every node heard within {timeout} s; missing {sorted(names - seen)}\n"
            f"{site.logs()}"
        ) from None
    return time.monotonic() - t0


async def send_command(port: int, command_id: str, command: str, node: str) -> None:
    """The centre sends a command (QoS 1, not retained: docs/mqtt.md, Commands)."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        doc = {"id": command_id, "command": command, "node": node}
        await client.publish(f"{PREFIX}/{GATEWAY}/command", json.dumps(doc), qos=1)


async def wait_result(centre: Collector, command_id: str, timeout: float) -> dict[str, Any]:
    def results(got: list[Received]) -> list[dict[str, Any]]:
        return [
            m.json()
            for m in got
            if m.topic == f"{PREFIX}/{GATEWAY}/command/result" and m.json()["id"] == command_id
        ]

    await centre.wait_for(lambda got: bool(results(got)), timeout)
    (result,) = results(centre.got)
    return result


async def command(
    centre: Collector, port: int, command_id: str, command: str, node: str, attempts: int = 3
) -> tuple[dict[str, Any], int]:
    """Send a command as a centre does (docs/mqtt.md, Commands): a `failed` result means it
    may not have been done, so send it again under a new id (the same id would only get the
    first result back). The last result and the number of attempts."""
    result: dict[str, Any] = {}
    for attempt in range(1, attempts + 1):
        cid = command_id if attempt == 1 else f"{command_id}-{attempt}"
        await send_command(port, cid, command, node)
        result = await wait_result(centre, cid, 40)
        if result["status"] != "failed":
            return result, attempt
    return result, attempts


def report(title: str, rows: Iterable[str]) -> None:
    """Measured figures, shown with pytest -s."""
    print(f"\n[{title}]")
    for row in rows:
        print(f"  {row}")
