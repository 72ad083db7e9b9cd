"""The MQTT uplink: the one connection to the monitoring centre's broker (aiomqtt underneath).

One `async with` object (../shared/STYLE.md lesson 10). The app enters it, runs `run()` as a
named task of its TaskGroup, calls `notify()` after each outbox put (or `submit()`, which does
both), and `await stop(flush_timeout_s)` on SIGTERM before the TaskGroup winds down:

    async with Uplink(settings, outbox, nodes=names, on_command=handle) as uplink:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(uplink.run(), name="uplink")
            ...
            await stopping.wait()
            await uplink.stop(flush_timeout_s=5)

What it does on each connection (docs/mqtt.md has the topics and payloads):

1. connects (TLS, username/password, a unique client id, clean session) with a last will: the
   retained `{"state":"offline"}` on `status`, sent by the broker if the gateway vanishes;
2. subscribes to its own `command` topic only, publishes its retained `online` status, and calls
   `outbox.mark_backlog()` so entries put from now on go before the outage's backlog;
3. drains the outbox in `pending()` order, up to `inflight` QoS 1 publishes on the wire at once
   (in order: MQTT 3.1.1, 4.6 keeps one client's messages in order), and acks each entry only
   after its PUBACK. A connection lost mid-batch leaves the unacked entries in the outbox, to be
   sent again, same bytes and event_id, on the next connection: at-least-once, never lost.
4. meanwhile executes commands from the centre and republishes its status periodically.

On any failure it records the error, waits a jittered, capped back-off (gateway/backoff.py) and
connects again, for ever: run() never returns an error; it returns only after stop().

Outbox calls (`pending`, `ack_many`, `mark_backlog`, `depth`, `put_many`) run in worker threads
(`asyncio.to_thread`; the outbox is thread-safe): an `ack` does not fsync, but a concurrent `put`
does, holding the outbox lock, and the event loop must not wait on an SD card's fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

import aiomqtt

from gateway import __version__
from gateway.backoff import Backoff
from gateway.messages import (
    Command,
    CommandResult,
    Direct,
    Outgoing,
    Topics,
    offline_status,
    stamp,
    status_message,
)
from gateway.model import Priority
from gateway.outbox import Entry, Item
from gateway.uplink_commands import CommandDesk
from gateway.uplink_settings import UplinkSettings, tls_context

# UplinkSettings lives in gateway/uplink_settings.py, re-exported here.
__all__ = ["OutboxLike", "Uplink", "UplinkError", "UplinkSettings", "UplinkState"]

log = logging.getLogger("firelane.uplink")

# Bounded queue of commands waiting for the executor (lesson 7). Drop policy: a command arriving
# while it is full is dropped and counted (commands_dropped); the centre sees no result and
# retries with the same id. Commands are never alarms.
_COMMAND_QUEUE = 16
_FINAL_PUBLISH_S = 2.0  # the offline status on stop, after the flush deadline
# A connection must hold this long before the back-off starts over: a broker that accepts and
# then drops the connection at once (a duplicate client id, an ACL) is retried ever more slowly
# instead of in a tight loop (a reconnect storm).
_STABLE_S = 10.0


class UplinkError(Exception):
    """The broker connection failed or was lost: aiomqtt's MqttError (and TLS set-up errors),
    translated where they enter (lesson 11). run() catches it, counts it and reconnects."""


class OutboxLike(Protocol):
    """What the uplink uses of gateway.outbox.Outbox."""

    def put_many(self, items: Sequence[Item]) -> list[Entry]: ...
    def mark_backlog(self) -> None: ...
    def pending(self, limit: int = 100) -> list[Entry]: ...
    def ack_many(self, seqs: Iterable[int]) -> None: ...
    def depth(self) -> dict[Priority, int]: ...


@dataclass(frozen=True, slots=True)
class UplinkState:
    """A snapshot for `firelane status` and the status message."""

    connected: bool
    last_error: str  # "" until something fails
    published: int  # outbox entries acked after PUBACK
    connects: int  # successful connections
    reconnects: int  # connections lost or refused, each followed by a back-off and a retry
    last_connect_utc: float | None
    commands: int  # executed (ok or failed)
    commands_rejected: int
    commands_dropped: int  # command queue full
    ignored: int  # messages on a topic other than our command topic


class Uplink:
    """The MQTT connection: outbox -> broker, commands <- broker. See the module docstring."""

    def __init__(
        self,
        settings: UplinkSettings,
        outbox: OutboxLike,
        *,
        nodes: Set[str],
        on_command: Callable[[Command], Awaitable[CommandResult]],
        buses: Callable[[], Mapping[str, object]] | None = None,
        beat: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] | None = None,
    ) -> None:
        """nodes: the node names commands may address. on_command: executes one validated
        command (the app hands it to the node's bus). buses: the `buses` part of the status
        message. beat: called whenever the uplink makes progress (gateway.health; register it
        with a stall limit above reconnect_max_s + 3 x timeout_s). clock: monotonic seconds;
        wall: UTC seconds for payloads; rand: the back-off's jitter source (tests)."""
        self.settings = settings
        self._outbox = outbox
        self._buses = buses
        self._beat = beat or (lambda: None)
        self._clock = clock
        self._wall = wall
        self._topics = Topics.of(settings.prefix, settings.gateway_id)
        backoff_args = {} if rand is None else {"rand": rand}
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s, **backoff_args)
        self._started = clock()
        self._tls: ssl.SSLContext | None = None
        self._entered = False
        self._running = False
        self._wake = asyncio.Event()  # notify(): the outbox has something new
        self._stop_requested = asyncio.Event()
        self._done = asyncio.Event()  # run() returned
        self._stop_at: float | None = None  # loop time by which stop() wants run() to return
        self._flush_deadline: asyncio.Timeout | None = None
        self._stopped_cleanly = False
        self._commands: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(_COMMAND_QUEUE)
        self._desk = CommandDesk(
            nodes,
            on_command,
            timeout_s=settings.command_timeout_s,
            gateway_id=settings.gateway_id,
            prefix=settings.prefix,
            wall=wall,
        )
        # UplinkState fields
        self._connected = False
        self._last_error = ""
        self._published = 0
        self._connects = 0
        self._reconnects = 0
        self._last_connect_utc: float | None = None
        self._dropped = 0
        self._ignored = 0

    # -- the async with ----------------------------------------------------------------------

    async def __aenter__(self) -> Uplink:
        """Reads the TLS files now, so a wrong path fails at start (UplinkError)."""
        if self.settings.tls:
            try:
                self._tls = await asyncio.to_thread(tls_context, self.settings)
            except ValueError as exc:
                raise UplinkError(str(exc)) from exc
        self._entered = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._entered = False
        await self._desk.aclose()

    # -- the app's side ----------------------------------------------------------------------

    @property
    def state(self) -> UplinkState:
        return UplinkState(
            connected=self._connected,
            last_error=self._last_error,
            published=self._published,
            connects=self._connects,
            reconnects=self._reconnects,
            last_connect_utc=self._last_connect_utc,
            commands=self._desk.executed,
            commands_rejected=self._desk.rejected,
            commands_dropped=self._dropped,
            ignored=self._ignored,
        )

    def notify(self) -> None:
        """Something was put in the outbox: send it now rather than at the next idle check.
        Call from the event loop's thread."""
        self._wake.set()

    async def submit(self, *messages: Outgoing) -> list[Entry]:
        """Put messages in the outbox (one transaction, fsynced, in a worker thread) and
        notify(). When this returns they are durable; errors are the outbox's (OutboxError)."""
        items: list[Item] = [
            (m.priority, m.topic, m.payload, m.event_id, m.retain, m.coalesce) for m in messages
        ]
        entries = await asyncio.to_thread(self._outbox.put_many, items)
        self.notify()
        return entries

    async def run(self) -> None:
        """Connect, drain, reconnect, for ever; returns only after stop(). Never raises but
        CancelledError: failures are logged, counted in `state` and retried after a back-off."""
        if not self._entered:
            raise RuntimeError("enter the Uplink (`async with`) before run()")
        if self._running:
            raise RuntimeError("Uplink.run() is running already")
        self._running = True
        self._done.clear()
        self._stop_requested.clear()  # an uplink stopped before may run again
        self._stop_at = None
        self._stopped_cleanly = False
        me = asyncio.current_task()
        try:
            while True:
                try:
                    await self._session()
                    if self._stop_requested.is_set():
                        return
                except Exception as exc:
                    # A cancel that arrived with the error (the app stopping just as the link
                    # dropped) can be absorbed on the way: Python 3.11's TaskGroup raises the
                    # child's error instead. A cancelled uplink must end, not reconnect.
                    if me is not None and me.cancelling():
                        raise asyncio.CancelledError from exc
                    if isinstance(exc, UplinkError):
                        self._failed(str(exc))
                    else:  # a bug, or the outbox: logged in full, then retried
                        log.exception("uplink: unexpected error")
                        leaf = _leaf(exc)
                        self._failed(f"{type(leaf).__name__}: {leaf}")
                if self._stop_requested.is_set() and self._remaining() <= 0:
                    return
                await self._pause(self._backoff.next())
        finally:
            self._running = False
            self._connected = False
            self._done.set()

    async def stop(self, flush_timeout_s: float) -> bool:
        """Publish what is pending (for at most flush_timeout_s), then the retained offline
        status, then disconnect; run() returns. True if all of that happened; False if run()
        was not running or the broker could not be reached in time (what was not sent stays in
        the outbox for the next start)."""
        if not self._running:
            return False
        self._stop_at = asyncio.get_running_loop().time() + flush_timeout_s
        self._stop_requested.set()
        self._wake.set()
        if self._flush_deadline is not None:
            self._flush_deadline.reschedule(self._stop_at)
        grace = _FINAL_PUBLISH_S + self.settings.timeout_s  # the offline status, the DISCONNECT
        try:
            await asyncio.wait_for(self._done.wait(), flush_timeout_s + grace)
        except TimeoutError:
            log.warning("uplink: stop did not finish within %.1f s", flush_timeout_s + grace)
            return False
        return self._stopped_cleanly

    # -- one connection ----------------------------------------------------------------------

    async def _session(self) -> None:
        client = self._client()
        up_since: float | None = None
        try:
            async with client:
                up_since = self._clock()
                self._connected = True
                self._connects += 1
                self._last_connect_utc = self._wall()
                s = self.settings
                log.info("uplink: connected to %s:%d as %s", s.host, s.port, s.identifier)
                await self._serve(client)
        except aiomqtt.MqttError as exc:
            raise UplinkError(f"{self.settings.host}:{self.settings.port}: {exc}") from exc
        finally:
            self._connected = False
            if up_since is not None and self._clock() - up_since >= _STABLE_S:
                self._backoff.reset()

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        will = self._offline("connection_lost", None)
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.identifier,
            username=s.username,
            password=s.password,
            will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=True),
            keepalive=s.keepalive_s,
            # A clean session: commands the broker queued while the gateway was away would run
            # late (a silence hours after it was asked for); the outbox, not a broker session,
            # carries what the gateway owes upstream.
            clean_session=True,
            timeout=s.timeout_s,
            tls_context=self._tls,
            max_inflight_messages=s.inflight,
            # Small packets, sent at once: Nagle's algorithm would hold a PUBLISH back until the
            # previous one is ACKed, and a delayed ACK can take 40 ms (Linux).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        client.pending_calls_threshold = s.inflight + 4  # aiomqtt warns above it
        return client

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Everything while connected; returns after a stop's flush, raises when the link goes."""
        try:
            async with asyncio.TaskGroup() as tg:
                # Receiving first: it is what notices a dropped link (see _receive).
                helpers = [
                    tg.create_task(self._receive(client), name="uplink.receive"),
                    tg.create_task(self._execute(client), name="uplink.commands"),
                ]
                granted = await client.subscribe(self._topics.command, qos=1)
                if any(_refused(code) for code in granted):
                    # Alarms must flow even if the broker's ACL forbids our command topic.
                    self._last_error = f"broker refused a subscription to {self._topics.command}"
                    log.error("uplink: %s: commands cannot be received", self._last_error)
                await self._publish(client, await self._status())
                await asyncio.to_thread(self._outbox.mark_backlog)
                helpers.append(tg.create_task(self._report(client), name="uplink.status"))
                try:
                    async with asyncio.timeout_at(self._stop_at) as deadline:
                        self._flush_deadline = deadline
                        await self._drain(client)
                except TimeoutError:
                    log.warning("uplink: stop: flush timed out; the rest stays in the outbox")
                finally:
                    self._flush_deadline = None
                for task in helpers:
                    task.cancel()
        except* aiomqtt.MqttError as group:
            leaf = _leaf(group)
            raise UplinkError(f"{self.settings.host}:{self.settings.port}: {leaf}") from leaf
        # Only a stop gets here: say so, then `async with client` disconnects (no will).
        await self._publish(client, self._offline("stopped", self._wall()), _FINAL_PUBLISH_S)
        depth = await asyncio.to_thread(self._outbox.depth)
        self._stopped_cleanly = not any(depth.values())

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish the outbox in pending() order; returns when it is empty during a stop."""
        while True:
            self._wake.clear()  # before reading: a put after the read sets it again
            batch = await asyncio.to_thread(self._outbox.pending, self.settings.inflight)
            self._beat()
            if batch:
                await self._send(client, batch)
                continue
            if self._stop_requested.is_set():
                return
            # A bounded idle wait: notify() ends it at once; the bound only covers a put whose
            # notify() was missed, and keeps beat() going.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.idle_check_s)

    async def _send(self, client: aiomqtt.Client, batch: list[Entry]) -> None:
        acked: list[int] = []

        async def one(entry: Entry) -> None:
            payload = stamp(entry.payload, entry.seq)
            await client.publish(entry.topic, payload, qos=1, retain=entry.retain)
            acked.append(entry.seq)  # publish() returned: the broker's PUBACK is in

        try:
            # Tasks start in creation order, so paho puts the PUBLISH packets on the wire in
            # pending() order; they then wait for their PUBACKs together.
            async with asyncio.TaskGroup() as tg:
                for entry in batch:
                    tg.create_task(one(entry))
        finally:
            # Acked even when the batch failed part-way: fewer duplicates on the next connection.
            if acked:
                await asyncio.to_thread(self._outbox.ack_many, acked)
                self._published += len(acked)

    async def _receive(self, client: aiomqtt.Client) -> None:
        """Move incoming messages to the command queue; raises MqttError when the link drops,
        which ends the whole session at once (a pending PUBACK wait would take timeout_s)."""
        async for message in client.messages:
            # Subscribed to our command topic only; anything else (a broker-side bridge or
            # mapping) is never taken for a command.
            if message.topic.value != self._topics.command:
                self._ignored += 1
                log.warning("uplink: ignored a message on %s", message.topic.value)
                continue
            try:
                self._commands.put_nowait(message)
            except asyncio.QueueFull:
                self._dropped += 1
                log.warning("uplink: command queue full; a command was dropped")

    async def _execute(self, client: aiomqtt.Client) -> None:
        while True:
            message = await self._commands.get()
            await self._publish(client, await self._desk.answer(message.payload, message.retain))

    async def _report(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.settings.status_interval_s)
            await self._publish(client, await self._status())
            self._beat()

    # -- helpers ------------------------------------------------------------------------------

    async def _publish(
        self, client: aiomqtt.Client, message: Direct, timeout: float | None = None
    ) -> None:
        await client.publish(
            message.topic, message.payload, qos=1, retain=message.retain, timeout=timeout
        )

    async def _status(self) -> Direct:
        s = self.settings
        depth = await asyncio.to_thread(self._outbox.depth)
        state = self.state
        return status_message(
            site=s.site,
            gateway_id=s.gateway_id,
            prefix=s.prefix,
            utc=self._wall(),
            version=__version__,
            uptime_s=self._clock() - self._started,
            outbox_depth=depth,
            buses=self._bus_status(),
            uplink={
                "published": state.published,
                "reconnects": state.reconnects,
                "commands": state.commands,
                "commands_rejected": state.commands_rejected,
                "commands_dropped": state.commands_dropped,
            },
        )

    def _bus_status(self) -> Mapping[str, object]:
        if self._buses is None:
            return {}
        try:
            return self._buses()
        except Exception as exc:  # the status goes out regardless
            log.exception("uplink: the bus status callback failed")
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _offline(self, reason: str, utc: float | None) -> Direct:
        s = self.settings
        return offline_status(
            reason=reason, site=s.site, gateway_id=s.gateway_id, prefix=s.prefix, utc=utc
        )

    def _failed(self, error: str) -> None:
        self._last_error = error
        self._reconnects += 1
        log.warning("uplink: %s; reconnecting (attempt %d)", error, self._backoff.attempt + 1)

    def _remaining(self) -> float:
        if self._stop_at is None:
            return float("inf")
        return self._stop_at - asyncio.get_running_loop().time()

    async def _pause(self, delay: float) -> None:
        """The back-off wait; a stop() cuts it to the stop deadline (one more try to flush)."""
        self._beat()
        if self._stop_requested.is_set():
            await asyncio.sleep(max(0.0, min(delay, self._remaining())))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), delay)


def _refused(code: object) -> bool:
    """A SUBACK return code that refuses the subscription (0x80, MQTT 3.1.1, 3.9.3)."""
    if isinstance(code, int):
        return code >= 0x80
    return bool(getattr(code, "is_failure", False))


def _leaf(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups: the one worth reporting."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
