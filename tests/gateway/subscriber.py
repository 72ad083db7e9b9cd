"""The centre's side in tests: an aiomqtt subscriber that collects what reaches the broker, and
lets a test await a condition on it (no sleeps: an asyncio.Condition, with a deadline).

    async with Collector(port, "firelane/#") as centre:
        await centre.wait_for(lambda got: len(got) >= 3, timeout=5)

With a fixed client_id and clean_session=False it is a persistent subscriber: it reconnects
after a broker restart and the broker delivers what it queued for it meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiomqtt

RETRY_S = 0.05  # between reconnect attempts while the broker is down (a retry, not a sync)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    # When it arrived (time.monotonic()), for latencies measured at the subscriber.
    at: float = field(default_factory=time.monotonic, compare=False)

    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.payload)
        return doc


class Collector:
    def __init__(
        self,
        port: int,
        topic: str = "#",
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        tls_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port
        self.topic = topic
        self.client_id = client_id
        self.clean_session = clean_session
        self.tls_context = tls_context
        self.username = username
        self.password = password
        self.got: list[Received] = []
        self.connects = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=self.client_id,
                    clean_session=self.clean_session,
                    tls_context=self.tls_context,
                    username=self.username,
                    password=self.password,
                    keepalive=10,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    async with self._changed:
                        self.connects += 1
                        self._changed.notify_all()
                    async for message in client.messages:
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        got = Received(message.topic.value, payload, message.retain, message.qos)
                        async with self._changed:
                            self.got.append(got)
                            self._changed.notify_all()
            except aiomqtt.MqttError:
                await asyncio.sleep(RETRY_S)

    async def wait_for(self, done: Callable[[list[Received]], bool], timeout: float) -> None:
        """Until done(received so far) is true; TimeoutError (with what arrived) after timeout."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: done(self.got))
        except TimeoutError:
            topics = [r.topic for r in self.got]
            raise TimeoutError(f"condition not met in {timeout} s; got {topics}") from None

    async def wait_connects(self, n: int, timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.connects >= n)

    def on(self, suffix: str) -> list[Received]:
        """What arrived on topics ending with suffix, in arrival order."""
        return [r for r in self.got if r.topic.endswith(suffix)]

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run(), name="test.collector")
        await self.wait_connects(1, timeout=10)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def publish(port: int, topic: str, payload: bytes, *, retain: bool = False) -> None:
    """One QoS 1 message from a short-lived client (the centre sending a command)."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(topic, payload, qos=1, retain=retain)
