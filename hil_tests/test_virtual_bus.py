"""The virtual RS-485 bus (hil_tests/bus): fan-out, baud pacing, collisions, seeded faults, the
command line, and real firmware in an emulated node answering pymodbus across it."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient

from hil_tests.bus import Faults, VirtualBus
from hil_tests.emulator.process import EmulatorProcess
from protocol import registers as r

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def opened(*paths: Path) -> Iterator[list[int]]:
    """Raw fds on the devices' ends, as a node or the gateway would open them."""
    fds: list[int] = []
    try:
        for path in paths:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            fds.append(fd)
            tty.setraw(fd)
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_n(fd: int, n: int, timeout: float = 5.0) -> bytes:
    """Exactly n bytes, or fail after timeout."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while len(data) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"got {len(data)} of {n} bytes: {bytes(data[:64])!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data += os.read(fd, n - len(data))
    return bytes(data)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        select.select([], [], [], 0.005)


def test_bytes_reach_every_other_device_paced_at_the_baud_rate() -> None:
    n, baud = 96, 9600
    with VirtualBus(baud) as bus:
        paths = [bus.attach(name) for name in ("a", "b", "c")]
        with opened(*paths) as (a, b, c):
            data = bytes(range(n))
            t0 = time.monotonic()
            write_all(a, data)
            assert read_n(b, n) == data
            elapsed = time.monotonic() - t0
            assert read_n(c, n) == data
            wire = n * 11 / baud
            assert wire <= elapsed < 1.5 * wire + 0.05, (elapsed, wire)
            # a hears nothing of itself: the next thing it receives is b's marker
            write_all(b, b"\xfe\xed")
            assert read_n(a, 2) == b"\xfe\xed"
            assert read_n(c, 2) == b"\xfe\xed"
        stats = bus.stats()
    assert stats["bytes_in"] == n + 2
    assert stats["bytes_delivered"] == 2 * (n + 2)
    assert stats["collisions"] == 0


def test_frames_keep_their_gaps() -> None:
    baud = 9600
    with VirtualBus(baud) as bus:
        paths = [bus.attach(name) for name in ("a", "b")]
        with opened(*paths) as (a, b):
            write_all(a, b"\x01" * 10)
            read_n(b, 10)
            assert select.select([b], [], [], 0.01) == ([], [], [])  # 10 ms of silence
            t0 = time.monotonic()
            write_all(a, b"\x02" * 10)
            read_n(b, 10)
            assert time.monotonic() - t0 >= 10 * 11 / baud
    assert bus.stats()["bursts"] == 2


def test_two_transmitters_at_once_garble_each_other() -> None:
    with VirtualBus(9600, seed=5) as bus:
        paths = [bus.attach(name) for name in ("a", "b", "c")]
        with opened(*paths) as (a, b, c):
            write_all(a, b"\x55" * 20)
            write_all(b, b"\xaa" * 20)
            heard = read_n(c, 40)
            assert read_n(a, 20) != b"\xaa" * 20
        stats = bus.stats()
    garbled = sum(1 for x in heard if x not in (0x55, 0xAA))
    assert garbled > 20, heard
    assert stats["collisions"] >= 1
    assert stats["collided_bytes"] >= 30


def ber_run(seed: int, ber: float = 0.01, n: int = 12_500) -> tuple[bytes, dict[str, int]]:
    with VirtualBus(1_000_000, faults=Faults(ber=ber), seed=seed) as bus:
        paths = [bus.attach(name) for name in ("a", "b")]
        with opened(*paths) as (a, b):
            write_all(a, bytes(n))
            out = read_n(b, n, timeout=15)
        return out, bus.stats()


def test_seeded_bit_errors_are_reproducible_and_at_the_rate() -> None:
    first, stats = ber_run(seed=3)
    again, _ = ber_run(seed=3)
    other, _ = ber_run(seed=4)
    assert first == again
    assert first != other
    flips = sum(bin(x).count("1") for x in first)
    assert flips == stats["flipped_bits"]
    assert 850 < flips < 1150  # 1e-2 of 100k bits; 4.7 standard deviations either side


def test_dropped_bytes_and_noise_bursts() -> None:
    faults = Faults(drop_rate=0.1)
    with VirtualBus(1_000_000, faults=faults, seed=1) as bus:
        paths = [bus.attach(name) for name in ("a", "b")]
        with opened(*paths) as (a, b):
            write_all(a, b"\x11" * 5000)
            wait_for(lambda: bus.stats()["bytes_on_line"] == 5000)
            got = read_n(b, 5000 - bus.stats()["dropped_bytes"])
    assert set(got) == {0x11}
    assert 400 < 5000 - len(got) < 600
    with VirtualBus(19200, faults=Faults(noise_every_s=0.05, noise_bytes=4), seed=1) as bus:
        with opened(bus.attach("a")) as (a,):
            read_n(a, 8, timeout=2)  # nobody transmits: this is noise
        assert bus.stats()["noise_bytes"] >= 8


def test_a_cut_device_neither_hears_nor_is_heard_until_restored() -> None:
    with VirtualBus(19200) as bus:
        paths = [bus.attach(name) for name in ("a", "b", "c")]
        with opened(*paths) as (a, b, c):
            bus.cut("b")
            write_all(b, b"lost")
            write_all(a, b"one")
            assert read_n(c, 3) == b"one"  # not b"lost": it came first
            wait_for(lambda: bus.stats()["bytes_on_line"] == 3)
            bus.restore("b")
            write_all(c, b"two")
            assert read_n(b, 3) == b"two"  # not b"one": b was off the bus
            write_all(b, b"back")
            assert read_n(a, 7) == b"twoback"
        assert bus.stats()["lost_cut"] == 4


def test_a_disconnected_bus_loses_everything_for_a_while() -> None:
    with VirtualBus(19200) as bus:
        paths = [bus.attach(name) for name in ("a", "b")]
        with opened(*paths) as (a, b):
            bus.disconnect(60)
            assert bus.disconnected
            write_all(a, b"lost")
            wait_for(lambda: bus.stats()["lost_disconnected"] == 4)
            bus.disconnect(0)  # does not shorten it
            assert bus.disconnected
            bus.reconnect()
            write_all(a, b"back")
            assert read_n(b, 4) == b"back"


def test_receive_latency_delivers_in_chunks() -> None:
    baud = 9600
    with VirtualBus(baud, faults=Faults(latency_ms=16)) as bus:
        a_path = bus.attach("a", latency_ms=0)
        b_path = bus.attach("b")
        with opened(a_path, b_path) as (a, b):
            t0 = time.monotonic()
            write_all(a, b"12345")
            ready, _, _ = select.select([b], [], [], 2.0)
            assert ready
            first = os.read(b, 100)
            elapsed = time.monotonic() - t0
            assert first == b"12345"  # one chunk, although each byte had its own wire time
            assert elapsed >= 11 / baud + 0.016  # held for the latency from the first byte
            write_all(b, b"xy")  # a has no latency
            t1 = time.monotonic()
            assert read_n(a, 2) == b"xy"
            assert time.monotonic() - t1 < 0.016


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_command_line_prints_paths_and_exits_cleanly_on_a_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    command = [sys.executable, "-m", "hil_tests.bus", "--baud", "115200"]
    command += ["--devices", "gw,n1", "--ber", "0", "--dir", str(tmp_path / "bus")]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["baud"] == 115200
        assert set(info["devices"]) == {"gw", "n1"}
        with opened(*(Path(p) for p in info["devices"].values())) as (gw, n1):
            write_all(gw, b"ping")
            assert read_n(n1, 4) == b"ping"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(err)["stats"]["bytes_in"] == 4
    assert not (tmp_path / "bus" / "gw").exists()


def test_real_firmware_answers_pymodbus_across_the_bus(tmp_path: Path) -> None:
    with VirtualBus(19200) as bus:
        gateway = bus.attach("gateway")
        node = EmulatorProcess(tmp_path / "flash", bus.attach("node5"), address=5)
        node.start()
        try:
            node.wait_event("uart")

            async def main() -> list[list[int]]:
                client = AsyncModbusSerialClient(
                    port=str(gateway), baudrate=19200, parity="N", timeout=1.0, retries=0
                )
                replies = []
                try:
                    assert await client.connect(), f"cannot open {gateway}"
                    for _ in range(5):
                        rr = await client.read_holding_registers(r.STATUS, count=8, device_id=5)
                        assert not rr.isError(), rr
                        replies.append(list(rr.registers))
                finally:
                    client.close()
                return replies

            replies = asyncio.run(main())
        finally:
            node.stop()
        stats = bus.stats()
    assert r.STATUS == 0x0010
    assert len(replies) == 5 and all(len(regs) == 8 for regs in replies)
    assert stats["collisions"] == 0
    assert stats["bursts"] >= 10  # five requests, five replies
