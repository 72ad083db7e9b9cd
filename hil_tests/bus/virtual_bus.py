"""A virtual RS-485 bus: one pseudo-terminal per attached device, joined by a relay thread.

    with VirtualBus(19200, faults=Faults(ber=1e-3), seed=1) as bus:
        gw = bus.attach("gateway")   # a path to open with pyserial / pymodbus
        n1 = bus.attach("node1")     # or give to `firelane node emulate --serial`
        ...
        bus.stats()

What a device writes is read from its pty master and put on the line: its bytes follow each other
at the wire time of a character (11 bits at the baud rate), starting no earlier than when they were
written, so the gaps between frames are kept. A byte reaches every *other* attached device when its
last bit is on the line. Half duplex: a byte whose time on the line overlaps a byte of another
transmitter (or of a noise burst) is garbled, for everyone, with seeded random bytes; such
overlaps are counted as collisions. Bit errors, dropped bytes, noise bursts, cut devices, a
disconnected bus and a receive latency are described in faults.py and on the methods below.
Each fault has its own random generator seeded from `seed`, so a run with the same traffic and
seed corrupts the same bytes in the same way.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import shutil
import tempfile
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from hil_tests.bus.faults import Faults

BITS_PER_CHAR = 11
NOISE = "~noise"  # the name of the noise bursts' pseudo transmitter


@dataclass
class _Byte:
    value: int
    start: float
    end: float


@dataclass
class _Device:
    name: str
    master: int
    slave: int
    path: Path
    latency: float  # seconds
    pending: deque[_Byte] = field(default_factory=deque)  # transmitted, not yet fully on the line
    tx_free: float = 0.0  # when this device's previous byte has left its driver
    last_end: float = -1.0  # end of its last byte taken off `pending`
    out: bytearray = field(default_factory=bytearray)  # to write to its master
    held: bytearray = field(default_factory=bytearray)  # waiting for the latency timer
    flush_at: float | None = None
    cut: bool = False
    garbling: bool = False


class VirtualBus:
    """See the module docstring."""

    def __init__(
        self,
        baud: int,
        *,
        faults: Faults | None = None,
        seed: int = 0,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        if baud <= 0:
            raise ValueError("baud must be positive")
        self.baud = baud
        self.faults = faults or Faults()
        self.char_time = BITS_PER_CHAR / baud
        self._own_dir = directory is None
        self.dir = (
            Path(tempfile.mkdtemp(prefix="firelane-bus-")) if directory is None else Path(directory)
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        self._rng_ber = random.Random(f"{seed}:ber")
        self._rng_drop = random.Random(f"{seed}:drop")
        self._rng_noise = random.Random(f"{seed}:noise")
        self._rng_collision = random.Random(f"{seed}:collision")
        self._devices: dict[str, _Device] = {}
        self._noise = _Device(NOISE, -1, -1, Path(), 0.0)
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._disconnected_until = 0.0
        self._next_noise: float | None = None
        self._closed = False
        self._error: BaseException | None = None
        self._stats = dict.fromkeys(
            (
                "bytes_in",  # read from devices
                "bytes_on_line",  # put on the line (noise included)
                "bytes_delivered",  # copies handed to receivers
                "bursts",  # transmissions separated by more than 1.5 character times
                "collisions",  # runs of garbled bytes
                "collided_bytes",
                "flipped_bits",
                "dropped_bytes",
                "noise_bytes",
                "lost_cut",  # bytes from cut devices, or cut off mid-transmission
                "lost_disconnected",
                "overflow_bytes",  # a receiver that does not read: its pty buffer full
            ),
            0,
        )

    # --- devices -------------------------------------------------------------------------

    def attach(self, name: str, *, latency_ms: float | None = None) -> Path:
        """A new pty for device `name`; returns the path (a symlink in self.dir) it opens."""
        if name in self._devices or name == NOISE or "/" in name or not name:
            raise ValueError(f"bad or duplicate device name {name!r}")
        master, slave = os.openpty()
        try:
            tty.setraw(master)
            tty.setraw(slave)  # raw, no echo
            os.set_blocking(master, False)
            path = self.dir / name
            if path.is_symlink():
                path.unlink()
            path.symlink_to(os.ttyname(slave))
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        latency = (self.faults.latency_ms if latency_ms is None else latency_ms) / 1000
        with self._lock:
            # The slave end stays open here too, so reading the master never fails with EIO.
            self._devices[name] = _Device(name, master, slave, path, latency)
        self._wake()
        return path

    def path(self, name: str) -> Path:
        return self._devices[name].path

    @property
    def devices(self) -> dict[str, Path]:
        return {name: d.path for name, d in self._devices.items()}

    def cut(self, name: str) -> None:
        """Take a device off the bus: it receives nothing and what it sends reaches nobody."""
        with self._lock:
            device = self._devices[name]
            device.cut = True
            self._stats["lost_cut"] += len(device.pending)
            device.pending.clear()
            device.held.clear()
            device.flush_at = None
        self._wake()

    def restore(self, name: str) -> None:
        with self._lock:
            self._devices[name].cut = False
        self._wake()

    def disconnect(self, seconds: float) -> None:
        """The whole bus is broken for `seconds` from now: every byte on it is lost."""
        with self._lock:
            self._disconnected_until = max(self._disconnected_until, time.monotonic() + seconds)
        self._wake()

    def reconnect(self) -> None:
        """End a disconnect() now."""
        with self._lock:
            self._disconnected_until = 0.0
        self._wake()

    @property
    def disconnected(self) -> bool:
        return time.monotonic() < self._disconnected_until

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> VirtualBus:
        if self._thread is not None or self._closed:
            raise RuntimeError("already started or closed")
        if self.faults.noise_every_s is not None:
            self._next_noise = time.monotonic() + self.faults.noise_every_s
        self._thread = threading.Thread(target=self._run, name="virtual-bus", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._wake()
        if self._thread is not None:
            self._thread.join(5.0)
            if self._thread.is_alive():
                raise RuntimeError("virtual bus thread did not stop")
        for device in self._devices.values():
            with contextlib.suppress(OSError):
                device.path.unlink()
            os.close(device.master)
            os.close(device.slave)
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._error is not None:
            raise RuntimeError("the virtual bus relay failed") from self._error

    def __enter__(self) -> VirtualBus:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the relay thread ----------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        try:
            self._relay()
        except BaseException as e:  # surfaced by close(), not lost in a dead thread
            self._error = e
            raise

    def _relay(self) -> None:
        while not self._stop:
            with self._lock:
                devices = list(self._devices.values())
                timeout = self._timeout(time.monotonic())
                writers = [d.master for d in devices if d.out]
            readers = [d.master for d in devices] + [self._wake_r]
            ready_r, _, _ = select.select(readers, writers, [], timeout)
            if self._wake_r in ready_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            with self._lock:
                now = time.monotonic()
                for device in devices:
                    if device.master in ready_r:
                        self._receive(device, now)
                self._noise_burst(now)
                self._advance(time.monotonic())
                for device in devices:
                    if device.out:
                        self._send(device)

    def _timeout(self, now: float) -> float:
        times = [d.pending[0].end for d in self._sources() if d.pending]
        times += [d.flush_at for d in self._devices.values() if d.flush_at is not None]
        if self._next_noise is not None:
            times.append(self._next_noise)
        if not times:
            return 0.5
        return max(0.0, min(times) - now)

    def _sources(self) -> list[_Device]:
        return [*self._devices.values(), self._noise]

    def _receive(self, device: _Device, now: float) -> None:
        try:
            data = os.read(device.master, 4096)
        except (BlockingIOError, OSError):
            return
        self._stats["bytes_in"] += len(data)
        if device.cut:
            self._stats["lost_cut"] += len(data)
            return
        self._transmit(device, data, now)

    def _transmit(self, device: _Device, data: bytes, now: float) -> None:
        start = max(now, device.tx_free)
        if start - device.tx_free > 1.5 * self.char_time:
            self._stats["bursts"] += 1
        for value in data:
            end = start + self.char_time
            device.pending.append(_Byte(value, start, end))
            start = end
        device.tx_free = start

    def _noise_burst(self, now: float) -> None:
        every = self.faults.noise_every_s
        if every is None or self._next_noise is None or now < self._next_noise:
            return
        self._next_noise += every * (1 + int((now - self._next_noise) // every))
        data = self._rng_noise.randbytes(self.faults.noise_bytes)
        self._stats["noise_bytes"] += len(data)
        self._transmit(self._noise, data, now)

    def _advance(self, now: float) -> None:
        """Put every byte whose last bit is on the line by `now` through, in time order."""
        sources = self._sources()
        while True:
            heads = [d for d in sources if d.pending and d.pending[0].end <= now]
            if not heads:
                break
            source = min(heads, key=lambda d: d.pending[0].end)
            byte = source.pending.popleft()
            source.last_end = byte.end
            self._on_line(source, byte, sources)
        for device in self._devices.values():
            if device.flush_at is not None and device.flush_at <= now:
                device.out += device.held
                device.held.clear()
                device.flush_at = None

    def _on_line(self, source: _Device, byte: _Byte, sources: list[_Device]) -> None:
        self._stats["bytes_on_line"] += 1
        value = byte.value
        overlapped = any(
            other is not source
            and (
                other.last_end > byte.start
                or bool(other.pending and other.pending[0].start < byte.end)
            )
            for other in sources
        )
        if overlapped:
            value = self._rng_collision.randrange(256)
            self._stats["collided_bytes"] += 1
            if not source.garbling:
                self._stats["collisions"] += 1
        source.garbling = overlapped
        if source.cut:
            self._stats["lost_cut"] += 1
            return
        if byte.end < self._disconnected_until:
            self._stats["lost_disconnected"] += 1
            return
        if self.faults.drop_rate and self._rng_drop.random() < self.faults.drop_rate:
            self._stats["dropped_bytes"] += 1
            return
        if self.faults.ber:
            for bit in range(8):
                if self._rng_ber.random() < self.faults.ber:
                    value ^= 1 << bit
                    self._stats["flipped_bits"] += 1
        for device in self._devices.values():
            if device is source or device.cut:
                continue
            self._stats["bytes_delivered"] += 1
            if device.latency > 0:
                if device.flush_at is None:
                    device.flush_at = byte.end + device.latency
                device.held.append(value)
            else:
                device.out.append(value)

    def _send(self, device: _Device) -> None:
        try:
            written = os.write(device.master, device.out)
        except BlockingIOError:
            return
        except OSError:
            written = len(device.out)
            self._stats["overflow_bytes"] += written
        del device.out[:written]
        if len(device.out) > 65536:  # nobody reads this device: lose the oldest
            self._stats["overflow_bytes"] += len(device.out) - 65536
            del device.out[: len(device.out) - 65536]
