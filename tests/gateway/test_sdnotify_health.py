from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.health import Health
from gateway.sdnotify import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield sock, path
    sock.close()


def test_messages_reach_the_notify_socket(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"})
    assert n.enabled and n.watchdog_interval_s() == 10.0
    assert n.ready() and n.watchdog() and n.status("polling 4 nodes\nok")
    assert [sock.recv(256) for _ in range(3)] == [
        b"READY=1",
        b"WATCHDOG=1",
        b"STATUS=polling 4 nodes ok",
    ]
    n.close()


def test_abstract_socket_names_are_supported() -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"firelane-test-{id(sock)}"
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert sock.recv(64) == b"READY=1"
        n.close()
    finally:
        sock.close()


def test_outside_systemd_everything_is_a_no_op(tmp_path: Path) -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval_s() == 0.0
    assert not n.ready() and not n.watchdog()
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert not gone.ready()  # an error is reported as False, never raised
    gone.close()


def test_health_is_lost_when_one_loop_stalls_and_regained_when_it_beats() -> None:
    now = [0.0]
    h = Health(clock=lambda: now[0])
    h.register("bus[east].poll", stall_s=10)
    h.register("uplink", stall_s=30)
    now[0] = 9.0
    assert h.healthy()
    now[0] = 11.0
    assert h.stalled() == ["bus[east].poll"]
    h.beat("bus[east].poll")
    assert h.healthy()
    now[0] = 42.0
    assert h.stalled() == ["bus[east].poll", "uplink"]
    h.unregister("uplink")
    h.beat("bus[east].poll")
    assert h.healthy()
    with pytest.raises(ValueError, match="stall_s"):
        h.register("x", 0)
