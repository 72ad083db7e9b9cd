"""The monitoring centre's side of the demo: an aiomqtt subscriber on the gateway's topics that
hands every message, with the moment it arrived, to a callback.

    async with Centre(broker, "firelane/demo-1a2b3c/#", on_message) as centre:
        ...

It reconnects if the connection drops. After the run, clear_retained() removes the retained
messages (node states, status) this run left on a real broker; the embedded one goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from types import TracebackType

import aiomqtt

from demo.rig import BrokerAddress

CONNECT_S = 10.0
RETRY_S = 0.2  # between reconnect attempts (a retry pace, not a synchronisation)

OnMessage = Callable[[str, bytes, float], None]


class CentreError(Exception):
    """The subscriber could not reach the broker; the message names it and the error."""


class Centre:
    def __init__(self, broker: BrokerAddress, topic: str, on_message: OnMessage) -> None:
        self.broker = broker
        self.topic = topic
        self.on_message = on_message
        self.connects = 0
        self.last_error = ""
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client_id = f"firelane-demo-centre-{secrets.token_hex(4)}"

    def _client(self, identifier: str | None = None) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=identifier,
            username=self.broker.username,
            password=self.broker.password,
            keepalive=10,
            timeout=CONNECT_S,
        )

    async def _run(self) -> None:
        while True:
            try:
                async with self._client(self._client_id) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.connects += 1
                    self._connected.set()
                    async for message in client.messages:
                        at = time.monotonic()
                        payload = message.payload
                        if not isinstance(payload, bytes):
                            continue
                        self.on_message(message.topic.value, payload, at)
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
                await asyncio.sleep(RETRY_S)

    async def clear_retained(self, topics: list[str]) -> None:
        """Publish an empty retained message on each topic (MQTT 3.1.1: that deletes it)."""
        if not topics:
            return
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(CONNECT_S), self._client() as client:
                for topic in sorted(topics):
                    await client.publish(topic, b"", qos=1, retain=True)

    async def __aenter__(self) -> Centre:
        self._task = asyncio.create_task(self._run(), name="demo.centre")
        try:
            async with asyncio.timeout(CONNECT_S):
                await self._connected.wait()
        except TimeoutError:
            await self._stop()
            where = f"{self.broker.host}:{self.broker.port}"
            raise CentreError(
                f"cannot reach the MQTT broker at {where} within {CONNECT_S:g} s"
                + (f": {self.last_error}" if self.last_error else "")
            ) from None
        return self

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()
