"""The demo's MQTT broker: amqtt embedded in this process on a free loopback port, or a real
one named by `--mqtt mqtt://[user[:password]@]host[:port]`.

amqtt (the `demo` extra) logs generously and its dependencies warn; the demo's terminal is for
the story, so its loggers are silenced and its warnings ignored while it starts and stops.
"""

from __future__ import annotations

import logging
import random
import socket
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from demo.rig import BrokerAddress

LOOPBACK = "127.0.0.1"
_QUIET_LOGGERS = ("amqtt", "transitions", "websockets", "passlib")


def parse_mqtt_url(text: str) -> BrokerAddress:
    """mqtt://[user[:password]@]host[:port] (port 1883 by default); ValueError saying what
    is wrong otherwise."""
    example = "e.g. mqtt://127.0.0.1:1883"
    try:
        url = urlsplit(text)
        port = url.port or 1883
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an MQTT URL ({exc}); {example}") from None
    if url.scheme != "mqtt":
        what = f"scheme {url.scheme!r}" if url.scheme else "no scheme"
        raise ValueError(
            f"{text!r} has {what}; the demo speaks plain MQTT over TCP: mqtt://host:port "
            f"({example})"
        )
    if not url.hostname:
        raise ValueError(f"{text!r} names no host; {example}")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"{text!r}: only mqtt://host:port, no path or query; {example}")
    user = unquote(url.username) if url.username is not None else None
    password = unquote(url.password) if url.password is not None else None
    return BrokerAddress(url.hostname, port, user, password)


def free_port() -> int:
    """A TCP port nothing listens on now, on the loopback, below the ephemeral range (so no
    client's own source port can take it while the broker restarts; tests/gateway/mosquitto.py
    explains)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free TCP port found below {low}")


def silence_amqtt() -> None:
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL + 1)
        logger.propagate = False
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())


class EmbeddedBroker:
    """amqtt on LOOPBACK:port, anonymous, no $SYS topics, for the life of the context.

    async with EmbeddedBroker() as broker:
        ... broker.port ...
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port
        self._broker: Any = None

    @property
    def address(self) -> BrokerAddress:
        assert self.port is not None
        return BrokerAddress(LOOPBACK, self.port)

    async def __aenter__(self) -> EmbeddedBroker:
        silence_amqtt()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from amqtt.broker import Broker as AmqttBroker  # type: ignore[import-untyped]

        tries = 1 if self.port is not None else 5
        for attempt in range(tries):
            port = self.port if self.port is not None else free_port()
            config = {
                "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                broker = AmqttBroker(config)
                try:
                    await broker.start()
                except Exception:
                    if attempt + 1 == tries:
                        raise
                    continue  # the port was taken between the check and the bind
            self.port, self._broker = port, broker
            return self
        raise AssertionError("unreachable")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await broker.shutdown()
