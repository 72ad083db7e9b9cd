"""The uplink's settings (validated before any I/O) and the TLS context built from them."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from gateway.messages import Topics

__all__ = ["UplinkSettings", "tls_context"]


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    """The broker connection; the app maps the config's [mqtt] table onto it."""

    host: str
    gateway_id: str
    site: str
    port: int = 1883
    prefix: str = "firelane"
    tls: bool = False
    ca_file: str | None = None  # with tls: the CA that signed the broker's cert (None: system)
    client_cert: str | None = None  # with tls: a client certificate (PEM), if the broker wants one
    client_key: str | None = None  # its key (None: in client_cert's file)
    username: str | None = None
    password: str | None = None
    # The broker sends the will 1.5 x keepalive after the gateway went silent (MQTT 3.1.1,
    # 3.1.2.10): 45 s, inside the 100 s a lost link must show as a fault (DOMAIN.md).
    keepalive_s: int = 30
    client_id: str = ""  # "" -> "firelane-{gateway_id}"; must be unique on the broker
    inflight: int = 16  # QoS 1 publishes awaiting PUBACK at once
    timeout_s: float = 10.0  # CONNACK, SUBACK, PUBACK
    idle_check_s: float = 5.0  # re-read the outbox this often even without notify()
    status_interval_s: float = 60.0
    command_timeout_s: float = 30.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 60.0

    def __post_init__(self) -> None:
        Topics.of(self.prefix, self.gateway_id)  # raises ValueError naming what is wrong
        if not self.host:
            raise ValueError("mqtt host is empty: set the broker's host name or address")
        if not 0 < self.port < 65536:
            raise ValueError(f"mqtt port {self.port}: 1-65535")
        if (self.ca_file or self.client_cert or self.client_key) and not self.tls:
            raise ValueError("mqtt ca_file/client_cert/client_key are set but tls is off")
        if self.client_key and not self.client_cert:
            raise ValueError("mqtt client_key without client_cert: set both")
        if self.password is not None and self.username is None:
            raise ValueError("mqtt password without username")
        if self.keepalive_s < 5:
            raise ValueError(f"mqtt keepalive_s {self.keepalive_s}: at least 5")
        for name in ("inflight",):
            if getattr(self, name) < 1:
                raise ValueError(f"mqtt {name} must be at least 1")
        for name in ("timeout_s", "idle_check_s", "status_interval_s", "command_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"mqtt {name} must be positive")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError("mqtt reconnect: need 0 < reconnect_min_s <= reconnect_max_s")

    @property
    def identifier(self) -> str:
        return self.client_id or f"firelane-{self.gateway_id}"


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the TLS handshake fails. paho (2.2, Client._ssl_wrap_socket) drops
    such a socket without closing it, so every refused handshake (a wrong CA, an expired
    certificate: retried for ever) would leave a socket to the garbage collector."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def tls_context(settings: UplinkSettings) -> ssl.SSLContext:
    """The TLS context for settings.tls: verifies the broker's certificate and host name against
    ca_file (or the system's CAs), presents client_cert if set. Reads the files: raises
    ValueError naming them if they cannot be read or do not fit."""
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
        context.sslsocket_class = _ClosingSSLSocket
        if settings.client_cert:
            context.load_cert_chain(settings.client_cert, settings.client_key)
    except (OSError, ssl.SSLError) as exc:
        files = [f for f in (settings.ca_file, settings.client_cert, settings.client_key) if f]
        raise ValueError(f"mqtt TLS files {files}: {exc}: check the paths in [mqtt]") from exc
    return context
