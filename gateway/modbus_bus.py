"""The Modbus bus: one per serial line (or RS-485-to-Ethernet converter), polling its nodes.

The top layer of bus / device / point (../shared/STYLE.md, lesson 8). A Bus owns the pymodbus
client and the lock every transaction takes (polls and commands alike: RS-485 is half duplex,
one transaction at a time), derives its response timeout from the baud rate, schedules the
reads (gateway.device.plan_cycle) and reopens its port with back-off when it disappears.

    async with Bus("line1", [("hall", 1), ("kitchen", 2)], on_reading, port="/dev/ttyUSB0") as bus:
        tg.create_task(bus.run(), name=bus.task_name)
        ...
        await bus.command(2, codes.CMD_IDENTIFY)

pymodbus is used with retries=0 and its own reconnection off (reconnect_delay=0): its retries
multiply the cost of a dead node, and its reconnect loop hides a dead port from the caller
(pymodbus issues 1654, 2269). Both are done here instead, once, with gateway.backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from gateway.backoff import Backoff
from gateway.bus_timing import USB_LATENCY_S, frame_us, read_transaction_us, response_timeout_s
from gateway.config import DEFAULT_OFFLINE_BACKOFF_S
from gateway.device import Device, next_retry, plan_cycle
from gateway.link import LinkError, PortLost
from gateway.lograte import LogRate
from gateway.model import Sample, Silent
from gateway.points import (
    COUNTERS_READ,
    IDENTITY_READ,
    LONGEST_READ,
    STATUS_READ,
    decode_counters,
    decode_identity,
    decode_status,
)
from protocol import codes, names
from protocol import registers as r
from protocol.timing import t35_us

log = logging.getLogger(__name__)
LOG_FLAP_EVERY_S = 60.0
COMMAND_TRIES = 3
_IDEMPOTENT = frozenset((codes.CMD_SILENCE, codes.CMD_RESET_ALARM, codes.CMD_IDENTIFY))

OnReading = Callable[[Sample | Silent], Awaitable[None]]

TCP_LATENCY_S = 0.100  # a converter on the LAN: network round trip plus its own buffering
_CONNECT_TIMEOUT_S = 2.0  # opening a port or a TCP connection; not the response timeout
_REQUEST_BYTES = 8  # FC03 and FC06 requests alike
_WRITE_RESPONSE_BYTES = 8  # FC06 echoes the request


class Bus:
    """Polls the nodes of one line and reports each reading to `on_reading`.

    nodes: (name, slave address) pairs. on_reading receives a Sample for every status read
    answered and a Silent for every one that was not (no reply, garbage, a Modbus exception),
    and a Silent for every node while the port is gone. The response timeout is `timeout_s`,
    or when that is None or 0, bus_timing.response_timeout_s(baud, LONGEST_READ, latency_s),
    the formula config.derived_timeout_s uses too. A cycle reads every online node's status
    block; with `status_every_s` > 0 a cycle starts at most
    that often, with 0 the line is kept busy. Identity and counters are read every
    `measure_every` cycles, spread over the cycles by node.
    """

    def __init__(
        self,
        name: str,
        nodes: Sequence[tuple[str, int]],
        on_reading: OnReading,
        *,
        kind: str = "rtu",
        port: str = "",
        baud: int = 19200,
        parity: str = "E",
        host: str = "",
        tcp_port: int = 502,
        framer: str = "socket",
        timeout_s: float | None = None,
        latency_s: float | None = None,
        status_every_s: float = 0.0,
        measure_every: int = 10,
        offline_after: int = 2,
        offline_backoff_max_s: float = DEFAULT_OFFLINE_BACKOFF_S,
        reopen_backoff_max_s: float = 30.0,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if kind not in ("rtu", "tcp"):
            raise ValueError(
                f"bus {name}: kind {kind!r} is not polled; use 'rtu' or 'tcp' "
                "(a 'push' line is served by gateway.push_rx.PushReceiver)"
            )
        if kind == "rtu" and not port:
            raise ValueError(f"bus {name}: an 'rtu' bus needs its serial port")
        if kind == "tcp" and not host:
            raise ValueError(f"bus {name}: a 'tcp' bus needs the converter's host")
        if framer not in ("socket", "rtu"):
            raise ValueError(f"bus {name}: framer {framer!r}: use 'socket' or 'rtu'")
        if baud <= 0 or status_every_s < 0 or window_s <= 0:
            raise ValueError(f"bus {name}: baud and window_s must be > 0, status_every_s >= 0")
        seen: dict[int, str] = {}
        for node, address in nodes:
            if address in seen:
                raise ValueError(
                    f"bus {name}: nodes {seen[address]} and {node} share address {address}"
                )
            seen[address] = node
        self.name = name
        self.kind = kind
        self.port = port if kind == "rtu" else f"{host}:{tcp_port}"
        self.baud = baud
        self.parity = parity
        self.host = host
        self.tcp_port = tcp_port
        self.framer = FramerType.SOCKET if framer == "socket" else FramerType.RTU
        if latency_s is None:
            latency_s = USB_LATENCY_S if kind == "rtu" else TCP_LATENCY_S
        self.timeout_s = timeout_s or response_timeout_s(baud, LONGEST_READ, latency_s)
        self.status_every_s = status_every_s
        self.window_s = window_s
        self._on_reading = on_reading
        self._clock = clock
        self._quiet_at = 0.0  # time.monotonic() after which the line has been quiet for t3.5
        # A node flapping on a noisy line: one line per node and direction a minute at most.
        self._log_rate = LogRate(LOG_FLAP_EVERY_S, clock)
        self.devices = [
            Device(
                node,
                address,
                backoff=Backoff(min(0.5, offline_backoff_max_s), offline_backoff_max_s, rand),
                measure_every=measure_every,
                offline_after=offline_after,
                phase=i,
            )
            for i, (node, address) in enumerate(nodes)
        ]
        self._by_address = {d.address: d for d in self.devices}
        self._reopen = Backoff(min(0.1, reopen_backoff_max_s), reopen_backoff_max_s, rand)
        self._lock = asyncio.Lock()
        self._lost = asyncio.Event()
        self._client: AsyncModbusSerialClient | AsyncModbusTcpClient | None = None
        self._rx_bytes = 0  # bytes heard during the current transaction
        self._busy: deque[tuple[float, float]] = deque()  # (end, wire seconds) in the window
        self._busy_s = 0.0
        self._started = clock()
        # Metrics.
        self.cycles = 0
        self.cycle_s: float | None = None  # duration of the last cycle that read something
        self.port_open = False
        self.port_losses = 0
        self.callback_errors = 0
        self._outage = False  # a port loss was logged and the port is not back yet

    @property
    def task_name(self) -> str:
        return f"bus[{self.port}].poll"

    # The connection: one `async with` object (STYLE.md lesson 10).
    async def __aenter__(self) -> Bus:
        common: dict[str, Any] = {
            "name": f"bus[{self.port}]",
            "reconnect_delay": 0,  # reopening is run()'s job, with back-off and Silent
            "reconnect_delay_max": 0,
            "timeout": self.timeout_s,
            "retries": 0,  # a retry doubles what a dead node costs; the next cycle retries
            "trace_packet": self._trace_packet,
            "trace_connect": self._trace_connect,
        }
        if self.kind == "rtu":
            self._client = AsyncModbusSerialClient(
                self.port, framer=FramerType.RTU, baudrate=self.baud, parity=self.parity, **common
            )
        else:
            self._client = AsyncModbusTcpClient(
                self.host, port=self.tcp_port, framer=self.framer, **common
            )
        # pymodbus drops a TCP connection after retries + 3 unanswered requests in a row: one
        # dead node behind a converter would cut off the live ones. Never, here.
        self._client.set_max_no_responses(1 << 30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        self.port_open = False

    # pymodbus callbacks (called from the event loop).
    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            # pymodbus passes its receive buffer, which it empties when it drops garbage.
            self._rx_bytes = max(self._rx_bytes, len(data))
        return data

    def _trace_connect(self, connected: bool) -> None:
        if not connected:
            self._lost.set()

    # Polling.
    async def run(self) -> None:
        """Poll until cancelled. Never returns and never raises for a line or node failure."""
        if self._client is None:
            raise RuntimeError("use `async with Bus(...) as bus` before bus.run()")
        while True:
            if not self._connected():
                await self._open()
            try:
                await self._cycle()
            except PortLost as exc:
                await self._port_lost(str(exc))

    def _connected(self) -> bool:
        return self._client is not None and self._client.connected and not self._lost.is_set()

    async def _open(self) -> None:
        """Open the port, retrying with back-off; every failed attempt reports every node
        silent, so supervision sees the outage. One log line when it fails (unless the loss
        was just logged) and one when it is back."""
        assert self._client is not None
        warned = self._outage
        while True:
            self._client.close()
            self._lost.clear()
            # The response timeout is also pymodbus's connect timeout: give connecting longer.
            params = self._client.ctx.comm_params
            params.timeout_connect = max(self.timeout_s, _CONNECT_TIMEOUT_S)
            error = ""
            try:
                ok = await self._client.connect()
            except Exception as exc:
                # termios.error (a port that refuses its settings) is no OSError; whatever it
                # is, the bus retries and never takes the gateway down with it.
                ok, error = False, f": {exc!r}"
            finally:
                params.timeout_connect = self.timeout_s
            _honour_cancel()
            if ok and self._client.connected:
                self.port_open = True
                self._outage = False
                self._reopen.reset()
                if warned:
                    log.warning("bus %s: port %s open again, polling", self.name, self.port)
                return
            if not warned:
                log.warning(
                    "bus %s: cannot open %s%s; its %d nodes are silent; retrying with back-off "
                    "(up to %.0f s): check the adapter or converter, its path and its parity "
                    "in the config",
                    self.name,
                    self.port,
                    error,
                    len(self.devices),
                    self._reopen.cap_s,
                )
                warned = True
            await self._silence_all()
            await asyncio.sleep(self._reopen.next())

    async def _port_lost(self, reason: str) -> None:
        self.port_open = False
        self.port_losses += 1
        self._outage = True
        log.warning(
            "bus %s: port %s lost (%s); its nodes are silent until it reopens, retried with "
            "back-off",
            self.name,
            self.port,
            reason,
        )
        if self._client is not None:
            self._client.close()
        await self._silence_all()

    async def _silence_all(self) -> None:
        now = self._clock()
        for d in self.devices:
            await self._emit(Silent(d.name, now))

    async def _cycle(self) -> None:
        start = self._clock()
        steps = plan_cycle(self.devices, start, self.cycles)
        for device, measure in steps:
            if await self._poll_status(device) and measure:
                await self._measure(device)
        self.cycles += 1
        now = self._clock()
        if steps:
            self.cycle_s = now - start
        wait = self.status_every_s - (now - start)
        if not steps:  # everything offline: idle until the first back-off runs out
            due = next_retry(self.devices)
            wait = max(wait, (due if due is not None else now + 1.0) - now, 0.001)
        if wait > 0:
            with contextlib.suppress(TimeoutError):  # woken early when the port goes away
                async with asyncio.timeout(wait):
                    await self._lost.wait()

    async def _poll_status(self, device: Device) -> bool:
        regs = await self._read(device, *STATUS_READ)
        now = self._clock()
        if regs is None:
            if (
                device.failed(now)
                and (held := self._log_rate.allow((device.name, "off"))) is not None
            ):
                log.warning(
                    "bus %s: node %s (address %d) offline after %d failed reads (%s); "
                    "retried with back-off up to %.0f s%s",
                    self.name,
                    device.name,
                    device.address,
                    device.failures,
                    device.stats.last_error,
                    device.backoff.cap_s,
                    _held_text(held),
                )
            await self._emit(Silent(device.name, now))
            return False
        sample = decode_status(device.name, now, regs)
        if (
            device.answered(now, sample)
            and (held := self._log_rate.allow((device.name, "on"))) is not None
        ):
            log.warning("bus %s: node %s answers again%s", self.name, device.name, _held_text(held))
        await self._emit(sample)
        return True

    async def _measure(self, device: Device) -> None:
        regs = await self._read(device, *IDENTITY_READ)
        if regs is not None:
            device.identity = decode_identity(regs)
            problem = device.identity.problem()
            if problem and problem != device.problem:
                log.warning("bus %s: node %s: %s", self.name, device.name, problem)
            device.problem = problem
        regs = await self._read(device, *COUNTERS_READ)
        if regs is not None:
            device.counters = decode_counters(regs)

    async def _emit(self, reading: Sample | Silent) -> None:
        try:
            await self._on_reading(reading)
        except Exception:  # the app's bug must not stop the polling of a fire alarm bus
            self.callback_errors += 1
            log.exception("bus %s: on_reading failed for %s", self.name, reading)

    # Transactions.
    async def _read(self, device: Device, address: int, count: int) -> list[int] | None:
        """The registers read, or None (counted in the device's stats). PortLost when the
        port has gone."""
        async with self._lock:
            client = self._transaction_start(device)
            await self._line_quiet()
            try:
                rr = await client.read_holding_registers(
                    address, count=count, device_id=device.address
                )
            except ModbusException as exc:
                self._line_used()
                _honour_cancel()
                self._failed(device, exc)
                return None
            self._line_used()
            _honour_cancel()
            if rr.isError() or len(rr.registers) != count:
                self._refused(device, rr, f"reading {count} registers at 0x{address:04X}")
                return None
            device.stats.answers += 1
            self._account(read_transaction_us(self.baud, count))
            return list(rr.registers)

    async def _line_quiet(self) -> None:
        """On a serial line, keep t3.5 of silence after the last frame before the next request
        (Modbus over Serial Line V1.02, 2.5.1.1): pymodbus sends as soon as it has parsed a
        reply, ~0.6 ms later (bench/bus_bench.py), which a device that frames by silence
        would read as one long garbled frame. Costs at most t3.5 per transaction, which the
        wire ceiling counts anyway."""
        wait = self._quiet_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    def _line_used(self) -> None:
        """A transaction just ended (a reply, a timeout or garbage)."""
        if self.kind == "rtu":
            self._quiet_at = time.monotonic() + t35_us(self.baud) / 1e6

    def _transaction_start(self, device: Device) -> AsyncModbusSerialClient | AsyncModbusTcpClient:
        client = self._client
        if client is None or not self._connected():
            raise PortLost("port closed")
        device.stats.polls += 1
        self._rx_bytes = 0
        return client

    def _failed(self, device: Device, exc: ModbusException) -> None:
        """No usable reply: a port that went away, silence, or garbage."""
        if isinstance(exc, ConnectionException) or not self._connected():
            raise PortLost(str(exc)) from exc
        if isinstance(exc, ModbusIOException) and not self._rx_bytes:
            device.stats.timeouts += 1
            device.stats.last_error = f"no reply within {self.timeout_s * 1000:.0f} ms"
        else:
            device.stats.errors += 1
            device.stats.last_error = f"{self._rx_bytes} bytes that were not a reply"
        heard = frame_us(self.baud, _REQUEST_BYTES + self._rx_bytes)
        self._account(heard + (2 if self._rx_bytes else 1) * t35_us(self.baud))

    def _refused(self, device: Device, rr: ModbusPDU, what: str) -> None:
        device.stats.errors += 1
        if rr.isError():
            code = getattr(rr, "exception_code", 0)
            reason = names.EXCEPTIONS.get(code, "unknown")
            device.stats.last_error = f"{what}: exception {code} ({reason})"
        else:
            device.stats.last_error = f"{what}: {len(rr.registers)} registers came back"
        self._account(frame_us(self.baud, _REQUEST_BYTES + self._rx_bytes) + 2 * t35_us(self.baud))

    # Commands.
    async def command(self, address: int, code: int) -> None:
        """Write `code` (codes.CMD_*) to the COMMAND register of the node at `address` (FC06),
        between two polls. LinkError when it cannot be confirmed. silence, reset_alarm and
        identify are idempotent and are tried up to COMMAND_TRIES times when the answer is lost
        or garbled (one noisy frame must not leave a buzzer sounding); self_test is sent once,
        as it must not run twice because an answer was lost."""
        if code not in names.COMMANDS:
            raise ValueError(f"command {code} is not one of {sorted(names.COMMANDS)}")
        device = self._by_address.get(address)
        if device is None:
            raise ValueError(f"bus {self.name}: no node at address {address}")
        what = f"command {names.COMMANDS[code]} to node {device.name} (address {address})"
        tries = COMMAND_TRIES if code in _IDEMPOTENT else 1
        async with self._lock:
            try:
                client = self._transaction_start(device)
                for attempt in range(1, tries + 1):
                    await self._line_quiet()
                    try:
                        rr = await client.write_register(r.COMMAND, code, device_id=address)
                        self._line_used()
                        break
                    except ModbusException as exc:
                        self._line_used()
                        _honour_cancel()
                        self._failed(device, exc)  # PortLost when the port went meanwhile
                        if attempt < tries:
                            continue
                        raise LinkError(
                            f"bus {self.name}: {what}: {device.stats.last_error} "
                            f"(tried {tries}x); it may or may not have been applied: read the "
                            "node's status before sending it again"
                        ) from exc
            except PortLost as exc:
                raise LinkError(
                    f"bus {self.name}: {what} not sent: port {self.port} is not open "
                    "(reopening with back-off); send it again when the bus is back"
                ) from exc
            _honour_cancel()
            if rr.isError():
                self._refused(device, rr, "command")
                raise LinkError(
                    f"bus {self.name}: {what} refused: {device.stats.last_error}; "
                    "check the node's firmware version"
                )
            device.stats.answers += 1
            wire = frame_us(self.baud, _REQUEST_BYTES + _WRITE_RESPONSE_BYTES)
            self._account(wire + 2 * t35_us(self.baud))

    # Metrics.
    def _account(self, wire_us: float) -> None:
        now = self._clock()
        wire_s = wire_us / 1e6
        self._busy.append((now, wire_s))
        self._busy_s += wire_s
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._busy and self._busy[0][0] < now - self.window_s:
            self._busy_s -= self._busy.popleft()[1]

    def utilisation(self) -> float:
        """The fraction of the last `window_s` seconds the line carried transactions, by their
        wire time at the configured baud (bus_timing). A pseudo-terminal carries them faster
        than the baud rate, so there the figure is capped at 1.0."""
        now = self._clock()
        self._trim(now)
        span = min(self.window_s, now - self._started)
        return 0.0 if span <= 0 else min(1.0, max(0.0, self._busy_s) / span)

    def snapshot(self) -> dict[str, Any]:
        """For `firelane status` and the gateway's status message."""
        return {
            "name": self.name,
            "kind": self.kind,
            "port": self.port,
            "baud": self.baud,
            "open": self.port_open and self._connected(),
            "port_losses": self.port_losses,
            "timeout_ms": round(self.timeout_s * 1000, 1),
            "cycles": self.cycles,
            "cycle_ms": None if self.cycle_s is None else round(self.cycle_s * 1000, 1),
            "utilisation": round(self.utilisation(), 3),
            "nodes": [d.snapshot() for d in self.devices],
        }


def _held_text(held: int) -> str:
    return f" ({held} more like this in the last minute, not logged)" if held else ""


def _honour_cancel() -> None:
    """pymodbus awaits through asyncio.wait_for, which on Python 3.11 swallows a cancellation
    that arrives in the same loop iteration as the awaited result (CPython gh-86296): the task
    would then poll on for ever, "cancelling". Raise it again."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
