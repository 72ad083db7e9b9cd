"""installer/rtu_line.py: who holds a port (a competing program, not a pseudo-terminal's own
master end), and the messages for a port that cannot be used."""

from __future__ import annotations

import os
import subprocess
import sys
import tty
from collections.abc import Iterator

import pytest

from installer.rtu_line import PortError, busy_message, check_port_free, open_line, port_users

HOLD = [sys.executable, "-c", "import time; time.sleep(120)"]  # killed by the test


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(master)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def hold(fd: int) -> subprocess.Popen[bytes]:
    """A child process with fd open (as fd 3), until killed."""
    return subprocess.Popen(HOLD, stdin=subprocess.DEVNULL, pass_fds=(fd,))


def test_a_program_with_the_port_open_is_named(pty: tuple[int, str]) -> None:
    _, path = pty
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    child = hold(fd)
    os.close(fd)
    try:
        users = port_users(path)
        assert [pid for pid, _ in users] == [child.pid]
        with pytest.raises(PortError, match="is in use by another program"):
            check_port_free(path)
    finally:
        child.kill()
        child.wait()
    assert port_users(path) == []


def test_the_process_holding_the_master_end_is_not_a_user(pty: tuple[int, str]) -> None:
    master, path = pty
    child = hold(master)  # an emulated node or a virtual bus: the pty's other side
    try:
        assert port_users(path) == []
    finally:
        child.kill()
        child.wait()


def test_the_gateway_holding_the_port_means_stop_the_service() -> None:
    text = busy_message(
        "/dev/ttyUSB0", [(42, "/usr/bin/python3 -m gateway gateway run --config x")]
    )
    assert "in use by the gateway service (pid 42" in text
    assert "`sudo systemctl stop firelane-gateway`" in text


def test_a_missing_port_and_an_open_pty(pty: tuple[int, str]) -> None:
    with pytest.raises(PortError, match="does not exist: plug in the USB-RS485 adapter"):
        open_line("/dev/ttyNOPE7", 19200, "E")
    with open_line(pty[1], 19200, "N") as line:
        assert line.latency_s == 0.0  # a pseudo-terminal has no USB latency timer
