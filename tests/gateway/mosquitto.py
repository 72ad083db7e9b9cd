"""A real mosquitto for tests: started on a free loopback port, stopped and restarted on the same
port (a broker outage), killed on teardown.

    with Mosquitto(tmp_path) as broker:        # or Mosquitto(tmp_path, persistence=True)
        ... broker.port ...
        broker.stop(); ...; broker.start()     # same port, same config, same persistence file

Debian's mosquitto 2.0 (../shared/TOOLING.md). Readiness is polled: connect attempts until the
port accepts, with a deadline, and a broker that exits early fails at once with its log.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

MOSQUITTO = "/usr/sbin/mosquitto"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1, below the kernel's ephemeral range.

    Below it, because a client that connects again and again to a port nobody listens on (the
    uplink while the broker is down) can otherwise be given that very port as its own source
    port: TCP simultaneous open then connects the socket to itself, and the port is taken."""
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found below {low}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def wait_accepting(
    port: int, deadline: float, alive: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until 127.0.0.1:port accepts a TCP connection; TimeoutError at the deadline
    (time.monotonic()); RuntimeError if `alive` exits first."""
    while True:
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"mosquitto exited with status {alive.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing accepted connections on port {port} in time")
        time.sleep(0.01)  # a poll interval, not a synchronisation: the loop checks the port


class Mosquitto:
    """One broker process. `extra` config lines (TLS listener options, password_file...) go
    right after the `listener` line, so they apply to it."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        persistence: bool = False,
        allow_anonymous: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self.log_path = self.workdir / "mosquitto.log"
        self.conf_path = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            *extra,
            f"allow_anonymous {'true' if allow_anonymous else 'false'}",
            f"persistence {'true' if persistence else 'false'}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ]
        if persistence:
            store = self.workdir / "store"
            store.mkdir(exist_ok=True)
            # The trailing slash matters: mosquitto appends the file name to it.
            lines += [f"persistence_location {store}/", "autosave_interval 0"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to `mosquitto`, who cannot write workdir
        self.conf_path.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.proc is not None:
            raise RuntimeError("mosquitto is running already")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_accepting(self.port, time.monotonic() + START_TIMEOUT_S, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            detail = self._reap(signal.SIGKILL)
            raise RuntimeError(f"mosquitto did not start: {exc}\n{detail}") from None

    def stop(self) -> None:
        """SIGTERM, and wait: mosquitto saves its persistence file and exits (an outage)."""
        self._reap(signal.SIGTERM)

    def kill(self) -> None:
        self._reap(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _reap(self, sig: signal.Signals) -> str:
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        return stderr + self.log()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


class TlsFiles:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate, made with
    the openssl command line; and mosquitto config lines for a TLS listener requiring both."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self.dir / "ca.pem"
        self.ca_key = self.dir / "ca.key"
        self.server_cert, self.server_key = self.dir / "server.pem", self.dir / "server.key"
        self.client_cert, self.client_key = self.dir / "client.pem", self.dir / "client.key"
        self._openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=firelane test CA", "-keyout", self.ca_key, "-out", self.ca,
        )  # fmt: skip
        self._leaf("server", self.server_cert, self.server_key, "subjectAltName=IP:127.0.0.1")
        self._leaf("client", self.client_cert, self.client_key, "extendedKeyUsage=clientAuth")

    def _leaf(self, name: str, cert: Path, key: Path, ext: str) -> None:
        csr = self.dir / f"{name}.csr"
        extfile = self.dir / f"{name}.ext"
        extfile.write_text(ext + "\n")
        self._openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=firelane test {name}",
            "-keyout", key, "-out", csr,
        )  # fmt: skip
        self._openssl(
            "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
            "-CAcreateserial", "-days", "2", "-extfile", extfile, "-out", cert,
        )  # fmt: skip

    @staticmethod
    def _openssl(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    def listener_lines(self) -> list[str]:
        return [
            f"cafile {self.ca}",
            f"certfile {self.server_cert}",
            f"keyfile {self.server_key}",
            "require_certificate true",
        ]


def password_file(path: Path, username: str, password: str) -> Path:
    """A mosquitto password file holding one user (mosquitto_passwd -b)."""
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(path), username, password],
        check=True,
        capture_output=True,
    )
    return path
