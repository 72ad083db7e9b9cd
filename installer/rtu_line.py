"""One Modbus RTU master on a serial port, for the installer's bus tools (scan, set-address).

pyserial and the project's own codec (protocol/rtu.py, protocol/master.py), not pymodbus: a scan
needs what pymodbus hides. It must hear *every* frame that arrives in a window, not just the one
it asked for: a second reply to one request (two nodes on one address), a late reply from the
previous address (which names its unit, so a slow node is still found), and the bytes of a
garbled reply (colliding answers) counted rather than discarded. And it must time each window
itself, from the moment the request has left the wire, with a timeout derived from the baud
rate (gateway/bus_timing.py) and the adapter's real latency: pymodbus adds its own
inter-request delays and starts its clock when it hands the request to the port.

    with open_line("/dev/ttyUSB0", 115200, "E") as line:
        master = Master(line)
        ex = master.transact(read_request(17, r.DEVICE_TYPE, 6), timeout_s=0.02)
        ex.replies, ex.late, ex.garbled
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import serial  # type: ignore[import-untyped]

from gateway.bus_timing import frame_us
from protocol import codes as c
from protocol.errors import NEED_DATA, FrameError
from protocol.master import MasterDecoder
from protocol.modbus import Pdu
from protocol.rtu import CLIENT, encode
from protocol.timing import t35_us

PARITIES = {"E": serial.PARITY_EVEN, "N": serial.PARITY_NONE, "O": serial.PARITY_ODD}
# A node notices a request within one link poll step plus t3.5 and answers from RAM
# (docs/firmware.md, Links; gateway/bus_timing.py NODE_TURNAROUND_S).
NODE_TURNAROUND_S = 0.010
FTDI_LATENCY_S = 0.016  # an FTDI adapter's default latency timer (DOMAIN.md)
LOW_LATENCY_S = 0.002  # with ASYNC_LOW_LATENCY the ftdi_sio driver sets the timer to 1 ms
SERVICE = "firelane-gateway"
STOP_SERVICE = f"sudo systemctl stop {SERVICE}"
_PTY_MAJORS = range(136, 144)  # Unix98 pseudo-terminal slaves (Documentation/admin-guide/devices)
_PTMX = os.makedev(5, 2)  # /dev/ptmx: every pseudo-terminal master


class PortError(Exception):
    """The port cannot be used; the message says why and what to do."""


class Line(Protocol):
    """What a Master needs from a serial line (a pyserial port, or a fake in the unit tests)."""

    latency_s: float  # how long the adapter may hold received bytes

    def send(self, data: bytes) -> None: ...

    def recv(self, until: float) -> bytes:
        """Bytes that arrive before the monotonic time `until`; b"" when none did."""
        ...

    def clock(self) -> float: ...


class SerialLine:
    """A Line on a pyserial port."""

    def __init__(self, port: serial.Serial, latency_s: float) -> None:
        self.port = port
        self.latency_s = latency_s

    def send(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()  # tcdrain: returns once the bytes have left the UART
        except (serial.SerialException, OSError) as exc:
            raise PortError(_lost(self.port.port, exc)) from None

    def recv(self, until: float) -> bytes:
        port = self.port
        try:
            waiting = port.in_waiting
            if waiting:
                return bytes(port.read(waiting))
            left = until - time.monotonic()
            if left <= 0:
                return b""
            port.timeout = left
            data = bytes(port.read(1))
            if data and port.in_waiting:
                data += bytes(port.read(port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            raise PortError(_lost(self.port.port, exc)) from None
        return data

    def clock(self) -> float:
        return time.monotonic()

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> SerialLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lost(path: str, exc: BaseException) -> str:
    return (
        f"lost {path} ({exc}): the adapter was unplugged or another program took the port; "
        "plug it back in and run the command again"
    )


def is_pty(path: str) -> bool:
    with contextlib.suppress(OSError):
        st = os.stat(path)
        return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in _PTY_MAJORS
    return False


def port_users(path: str) -> list[tuple[int, str]]:
    """(pid, command line) of the other processes that have `path` open, as far as /proc lets
    this user see (another user's processes are invisible without root). For a pseudo-terminal,
    the process holding its master end (an emulated node, a virtual bus) is its other side,
    not a competing user, and is left out."""
    try:
        target = os.stat(path).st_rdev
    except OSError:
        return []
    pty_index = None
    if os.major(target) in _PTY_MAJORS:
        pty_index = (os.major(target) - _PTY_MAJORS[0]) * 256 + os.minor(target)
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        uses = owns = False
        for fd in fds:
            try:
                st = os.stat(fd)
            except OSError:
                continue
            if not stat.S_ISCHR(st.st_mode):
                continue
            if st.st_rdev == target:
                uses = True
            elif pty_index is not None and st.st_rdev == _PTMX:
                owns = owns or _tty_index(entry / "fdinfo" / fd.name) == pty_index
        if uses and not owns:
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                raw = b""
            found.append((int(entry.name), raw.replace(b"\0", b" ").decode(errors="replace")))
    return found


def _tty_index(fdinfo: Path) -> int | None:
    """The pseudo-terminal a /dev/ptmx descriptor is the master of (Linux: fdinfo tty-index)."""
    try:
        text = fdinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "tty-index" and value.strip().isdigit():
            return int(value)
    return None


def busy_message(path: str, users: list[tuple[int, str]]) -> str:
    """Why `path` cannot be used now, and what to do."""
    who = "; ".join(f"pid {pid}: {cmd.strip() or '?'}" for pid, cmd in users)
    if any("gateway run" in cmd or SERVICE in cmd for _, cmd in users) or service_active():
        return (
            f"{path} is in use by the gateway service ({who or SERVICE}): stop it first with "
            f"`{STOP_SERVICE}`, and start it again when you are done "
            f"(`sudo systemctl start {SERVICE}`)"
        )
    return f"{path} is in use by another program ({who or 'unknown'}): close it, then retry"


def service_active() -> bool:
    """Whether systemd runs the gateway service on this machine (False without systemd)."""
    import shutil
    import subprocess

    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return False
    try:
        done = subprocess.run(
            [systemctl, "is-active", "--quiet", SERVICE],
            timeout=5,
            check=False,
            capture_output=True,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def check_port_free(path: str) -> None:
    """PortError when the port does not exist, or another program has it open."""
    if not os.path.exists(path):
        raise PortError(
            f"{path} does not exist: plug in the USB-RS485 adapter and give its path "
            "(ls /dev/ttyUSB* /dev/serial/by-id/)"
        )
    users = port_users(path)
    if users:
        raise PortError(busy_message(path, users))


def open_line(path: str, baud: int, parity: str) -> SerialLine:
    """The port opened for exclusive use, 8 data bits and 1 stop bit as the gateway opens it
    (8E1, 8N1 or 8O1: a node's UART, docs/gateway.md `parity`), at the lowest latency the
    adapter allows. PortError with what to do when it cannot be opened."""
    check_port_free(path)
    stopbits = serial.STOPBITS_ONE
    try:
        port = serial.Serial(
            path,
            baudrate=baud,
            parity=PARITIES[parity],
            stopbits=stopbits,
            timeout=0,
            exclusive=True,
        )
    except serial.SerialException as exc:
        raise PortError(_open_message(path, parity, exc)) from None
    except (OSError, ValueError) as exc:  # termios.error is neither; caught below
        raise PortError(_open_message(path, parity, exc)) from None
    except Exception as exc:  # termios.error: the device refused the settings
        raise PortError(_open_message(path, parity, exc)) from None
    if is_pty(path):
        latency = 0.0
    else:
        latency = FTDI_LATENCY_S
        with contextlib.suppress(Exception):  # not every driver has ASYNC_LOW_LATENCY
            port.set_low_latency_mode(True)
            latency = LOW_LATENCY_S
    port.reset_input_buffer()
    return SerialLine(port, latency)


def _open_message(path: str, parity: str, exc: BaseException) -> str:
    text = str(exc)
    code = getattr(exc, "errno", None)
    if code == errno.EACCES or "Permission denied" in text:
        return (
            f"cannot open {path}: permission denied: add yourself to the dialout group "
            "(`sudo usermod -aG dialout $USER`, then log in again)"
        )
    if code == errno.EBUSY or "Resource temporarily unavailable" in text or "lock" in text:
        return busy_message(path, port_users(path))
    if code == errno.ENOENT or "No such file" in text:
        return f"{path} does not exist: plug in the adapter and check its path"
    if parity != "N" and is_pty(path):
        return (
            f"cannot open {path} with parity {parity} ({text}): a pseudo-terminal refuses "
            "parity settings: use --parity N"
        )
    return f"cannot open {path} ({text}): check the adapter and its path"


# Requests.
def read_request(unit: int, address: int, count: int) -> Pdu:
    return Pdu(unit, c.FC_READ_HOLDING, address=address, count=count)


def write_request(unit: int, address: int, value: int) -> Pdu:
    return Pdu(unit, c.FC_WRITE_SINGLE, address=address, value=value)


def window_s(baud: int, request_bytes: int, response_bytes: int, latency_s: float) -> float:
    """How long after sending a request its reply can take at most from a healthy node: the
    request and the reply on the wire with a t3.5 silence after each (DOMAIN.md), the node's
    turnaround and the adapter's latency."""
    wire = frame_us(baud, request_bytes + response_bytes) + 2 * t35_us(baud)
    return wire / 1e6 + NODE_TURNAROUND_S + latency_s


@dataclass
class Exchange:
    """What one request got back within its window."""

    replies: list[Pdu] = field(default_factory=list)  # valid responses from the unit asked
    late: list[Pdu] = field(default_factory=list)  # valid responses from other units
    garbled: int = 0  # CRC errors and garbage runs
    rx_bytes: int = 0
    first_s: float | None = None  # seconds from the request to the first reply

    @property
    def heard(self) -> bool:
        """Anything at all came back (a reply, garbage, another unit's late reply)."""
        return self.rx_bytes > 0

    def values(self) -> list[tuple[int, ...]]:
        """The register values of the non-exception replies."""
        return [p.values for p in self.replies if not p.code]


class Master:
    """Requests and their windows on a Line. A window ends at its timeout, or at the first
    reply (or listen_s after it), and is then held open until the line has been silent for
    t3.5 plus the adapter's latency, so trailing bytes are counted where they belong and the
    next request does not talk over them."""

    def __init__(self, line: Line, baud: int) -> None:
        self.line = line
        self.baud = baud
        self.quiet_s = t35_us(baud) / 1e6 + line.latency_s
        self.stray: list[Pdu] = []  # replies that arrived between windows
        self.stray_garbled = 0  # garbage runs that arrived between windows
        self.transactions = 0

    def transact(
        self,
        request: Pdu,
        timeout_s: float,
        *,
        listen_s: float | None = None,
    ) -> Exchange:
        """Send request and collect what comes back until timeout_s after it has left the
        wire. With listen_s, keep listening that long after the first reply (for a second
        reply to the same request); else stop at the first reply."""
        line = self.line
        ex = Exchange()
        decoder = MasterDecoder(CLIENT)  # no expect(): it returns every unit's replies
        pending = line.recv(line.clock())  # bytes from before this request: a late reply
        if pending:
            self.stray += self._feed(decoder, pending, ex)
            decoder.gap()
            self._feed(decoder, b"", ex)
            self.stray_garbled += ex.garbled
            decoder = MasterDecoder(CLIENT)
            ex = Exchange()
        line.send(encode(request))
        self.transactions += 1
        sent = line.clock()
        deadline = sent + timeout_s
        hard = deadline + 0.5  # trailing bytes cannot keep a window open for ever
        while True:
            data = line.recv(deadline)
            now = line.clock()
            if data:
                ex.rx_bytes += len(data)
                for pdu in self._feed(decoder, data, ex):
                    if pdu.unit == request.unit and pdu.function == request.function:
                        if ex.first_s is None:
                            ex.first_s = now - sent
                            stop = now if listen_s is None else now + listen_s
                            deadline = min(deadline, stop)
                        ex.replies.append(pdu)
                    else:
                        ex.late.append(pdu)
                deadline = min(max(deadline, now + self.quiet_s), hard)
            if now >= deadline:
                break
        decoder.gap()  # what never made a frame by now is garbage
        ex.late += self._feed(decoder, b"", ex)
        return ex

    def drain(self, quiet_s: float) -> Exchange:
        """Listen until the line has been silent for quiet_s: what a slow node still sends
        after the last window (its replies in `late`)."""
        line = self.line
        ex = Exchange()
        decoder = MasterDecoder(CLIENT)
        deadline = line.clock() + quiet_s
        while True:
            data = line.recv(deadline)
            now = line.clock()
            if data:
                ex.rx_bytes += len(data)
                ex.late += self._feed(decoder, data, ex)
                deadline = now + max(self.quiet_s, min(quiet_s, 0.05))
            if now >= deadline:
                break
        decoder.gap()
        ex.late += self._feed(decoder, b"", ex)
        return ex

    @staticmethod
    def _feed(dec: MasterDecoder, data: bytes, ex: Exchange) -> list[Pdu]:
        out: list[Pdu] = []
        view = memoryview(data)
        while True:
            n = dec.feed(view)
            view = view[n:]
            while True:
                try:
                    event = dec.next_event()
                except FrameError:
                    ex.garbled += 1
                    continue
                if event is NEED_DATA:
                    break
                assert isinstance(event, Pdu)
                out.append(event)
            if not view:
                return out
