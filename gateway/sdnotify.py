"""systemd's notify protocol (sd_notify(3)), spoken directly: READY, WATCHDOG and STATUS.

Under `Type=notify` systemd passes a datagram socket in $NOTIFY_SOCKET (a path, or an abstract
name starting with "@"), and with `WatchdogSec=` the expected ping period in $WATCHDOG_USEC.
Outside systemd both are absent and every call is a no-op, so the gateway runs the same way by
hand and under test.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    """send("READY=1"), ready(), watchdog(), status(text); watchdog_interval_s() for pings."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 else 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def watchdog_interval_s(self) -> float:
        """How often to ping: half the watchdog period (sd_watchdog_enabled(3)); 0 if none."""
        return self._watchdog_s / 2

    def send(self, message: str) -> bool:
        """Send one notification; False (never an exception) when it could not be sent."""
        if not self._address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), self._address)
        except OSError:
            return False
        return True

    def ready(self) -> bool:
        return self.send("READY=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.send("STATUS=" + text.replace("\n", " "))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
