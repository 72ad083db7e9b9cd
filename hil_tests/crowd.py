"""A crowd of light Modbus nodes on one port: the rest of a large bus population, for benchmarks.

An emulated node (hil_tests/emulator) runs the whole firmware in its own CPython process and
costs a few % of a core even when idle; 64 of them do not fit a 2-core machine next to the
gateway. The crowd is one process that answers Modbus RTU for many addresses at once, with the
register content of a healthy, idle node and a chosen turnaround, so the gateway's poll cycle
has the length it has on a real line of that many nodes. It is NOT the firmware: it never
alarms, has no sensors and refuses writes. The nodes a benchmark measures are real emulated
firmware; the crowd only fills the cycle.

    python -m hil_tests.crowd --serial PATH --addresses 9-64 --turnaround-ms 1.5

or from Python, Crowd(path, addresses, turnaround_s=...).start() / .stop() (a thread), or
CrowdProcess(...) to run it as its own process (what the benchmarks do, so its CPU is not the
gateway's or the relay's).

What it serves: FC03 and FC04 on the node's register map (protocol/registers.py): identity,
the 8-register status block, counters and configuration defaults; a range the map does not
cover gets exception 02 as from the firmware (check_read), a bad quantity exception 03, any
other function exception 01. With `flat=True` every address 0..124+count is readable (a plain
block of words), for reads longer than the node's map allows (the 32-register benchmark).
Requests are framed with protocol/rtu.py, the firmware's own decoder; replies are sent
`turnaround_s` after the request's last byte arrived.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterable, Sequence
from pathlib import Path
from struct import pack

from protocol import codes, push, rtu
from protocol import registers as r
from protocol.errors import NEED_DATA, FrameError
from protocol.modbus import Pdu
from protocol.timing import t35_us

ROOT = Path(__file__).resolve().parents[1]
UID_PREFIX = 0x1A000000  # node id of address N: 0x1A0000NN, as the emulator derives it


def node_words(address: int) -> dict[int, int]:
    """The registers of a healthy idle node at `address`, as its firmware serves them."""
    words = {r.TABLE[i]: int(r.TABLE[i + 7]) for i in range(0, len(r.TABLE), 8)}
    node_id = UID_PREFIX | address
    words |= {
        r.FW_VERSION: 0x0001,
        r.NODE_ID: node_id >> 16,
        r.NODE_ID + 1: node_id & 0xFFFF,
        r.STATUS: 0,
        r.EVENT_SEQ: 1,
        r.SMOKE: 10,  # 0.10 %/m
        r.LEAKAGE: 120,  # mA: natural leakage (DOMAIN.md)
        r.TEMPERATURE: 215,  # 21.5 degC
        r.SUPPLY: 12000,  # 12 V
        r.UPTIME: 0,
        r.UPTIME + 1: 3600,
        r.RESET_CAUSE: codes.RESET_POWER_ON,
        r.RESET_COUNT: 1,
        r.ADDRESS: address,
    }
    return words


def parse_addresses(text: str) -> list[int]:
    """ "9-64" or "2,5,9-12" -> addresses, each 1..247."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    if not out or any(not 1 <= a <= 247 for a in out):
        raise ValueError(f"addresses {text!r}: each must be 1..247")
    return out


class Crowd:
    """Answers Modbus RTU reads for `addresses` on the pty at `path`, from a thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        addresses: Iterable[int],
        *,
        turnaround_s: float = 0.0015,
        flat: bool = False,
        heartbeat_s: float | None = None,
        baud: int = 19200,
    ) -> None:
        self.path = Path(path)
        self.addresses = frozenset(addresses)
        self.turnaround_s = turnaround_s
        self.flat = flat
        self.heartbeat_s = heartbeat_s  # push mode: a heartbeat per address this often
        self.quiet_s = t35_us(baud) / 1e6  # push mode: listen before talk
        self.heartbeats = 0
        self._seq = dict.fromkeys(self.addresses, 0)
        self.words = {a: node_words(a) for a in self.addresses}
        self.requests = 0  # requests for one of our addresses
        self.replies = 0
        self._decoder = rtu.RtuDecoder(rtu.SERVER, None)  # every unit; filtered here
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd = -1

    def reply(self, pdu: Pdu) -> bytes | None:
        """The response ADU to a request frame, or None (not ours, or broadcast)."""
        if pdu.unit not in self.addresses:
            return None
        self.requests += 1
        fc = pdu.function
        if pdu.code:
            answer = Pdu(pdu.unit, fc, True, code=pdu.code)
        elif fc in (codes.FC_READ_HOLDING, codes.FC_READ_INPUT):
            bad = 0 if self.flat else r.check_read(pdu.address, pdu.count)
            if bad:
                answer = Pdu(pdu.unit, fc, True, code=bad)
            else:
                words = self.words[pdu.unit]
                span = range(pdu.address, pdu.address + pdu.count)
                answer = Pdu(pdu.unit, fc, True, values=[words.get(a, a & 0xFFFF) for a in span])
        else:
            answer = Pdu(pdu.unit, fc, True, code=codes.EX_ILLEGAL_FUNCTION)
        self.replies += 1
        return rtu.encode(answer)

    def feed(self, data: bytes) -> list[bytes]:
        """Bytes from the line -> the replies to send, in order."""
        out: list[bytes] = []
        dec = self._decoder
        while data:
            n = dec.feed(data)
            data = data[n:]
            while True:
                try:
                    pdu = dec.next_event()
                except FrameError:
                    continue
                if pdu is NEED_DATA:
                    break
                assert isinstance(pdu, Pdu)
                frame = self.reply(pdu)
                if frame is not None:
                    out.append(frame)
        return out

    def heartbeat(self, address: int) -> bytes:
        """An unsigned push-mode heartbeat of the node at `address` (its status block)."""
        words = self.words[address]
        block = [words[a] for a in range(r.STATUS, r.STATUS + r.STATUS_BLOCK_LEN)]
        self._seq[address] = seq = (self._seq[address] + 1) & 0xFFFF
        payload = pack(push.HEARTBEAT_FORMAT, *block, 3600)
        self.heartbeats += 1
        return push.encode(push.MT_HEARTBEAT, UID_PREFIX | address, seq, payload)

    # The line.
    def start(self) -> Crowd:
        self._fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._fd)
        self._thread = threading.Thread(target=self._run, name="crowd", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Crowd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        if self.heartbeat_s is None:
            self._serve()
        else:
            self._push(self.heartbeat_s)

    def _push(self, every_s: float) -> None:
        """Push mode: heartbeats for each address in turn, spread over `every_s`, each sent
        once the line has been quiet for t3.5; what others send (ACKs) is read and ignored."""
        fd, order = self._fd, sorted(self.addresses)
        step = every_s / len(order)
        next_at, i, heard = time.monotonic() + step, 0, 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            wait = next_at - now if next_at > now else max(0.0, heard + self.quiet_s - now)
            if select.select([fd], [], [], min(wait, 0.2))[0]:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 4096)
                    heard = time.monotonic()
                continue
            now = time.monotonic()
            if now >= next_at and now - heard >= self.quiet_s:
                os.write(fd, self.heartbeat(order[i]))
                i = (i + 1) % len(order)
                next_at += step

    def _serve(self) -> None:
        fd = self._fd
        due: list[tuple[float, bytes]] = []
        while not self._stop.is_set():
            timeout = 0.2 if not due else max(0.0, due[0][0] - time.monotonic())
            ready, _, _ = select.select([fd], [], [], timeout)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    data = os.read(fd, 4096)
                    at = time.monotonic() + self.turnaround_s
                    due.extend((at, frame) for frame in self.feed(data))
            while due and due[0][0] <= time.monotonic():
                _, frame = due.pop(0)
                os.write(fd, frame)

    def run_forever(self) -> None:
        """Serve until SIGTERM/SIGINT (the command line)."""
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()


class CrowdProcess:
    """`python -m hil_tests.crowd` as a child process; waits until it has opened the port."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        addresses: Sequence[int],
        *,
        turnaround_s: float = 0.0015,
        flat: bool = False,
        heartbeat_s: float | None = None,
        baud: int = 19200,
    ) -> None:
        spec = ",".join(str(a) for a in addresses)
        self.args = [sys.executable, "-m", "hil_tests.crowd", "--serial", str(path)]
        self.args += ["--addresses", spec, "--turnaround-ms", str(turnaround_s * 1000)]
        self.args += ["--baud", str(baud)]
        if flat:
            self.args.append("--flat")
        if heartbeat_s is not None:
            self.args += ["--push-heartbeat-s", str(heartbeat_s)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> CrowdProcess:
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "ready"
        if not line.startswith(b"ready"):
            self.stop()
            raise RuntimeError(f"crowd did not start: {line!r}")
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> CrowdProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    import signal

    p = argparse.ArgumentParser(
        prog="python -m hil_tests.crowd", description=__doc__.split("\n")[0]
    )
    p.add_argument("--serial", required=True, help="the pty (a virtual bus's device path)")
    p.add_argument("--addresses", required=True, help='e.g. "9-64" or "2,5,9-12"')
    p.add_argument("--turnaround-ms", type=float, default=1.5, help="reply delay (default 1.5)")
    p.add_argument("--flat", action="store_true", help="every register 0..: reads of any span")
    p.add_argument("--baud", type=int, default=19200, help="for t3.5 (push mode)")
    p.add_argument(
        "--push-heartbeat-s", type=float, default=None,
        help="push mode: send each address's heartbeat this often instead of answering polls",
    )  # fmt: skip
    a = p.parse_args(argv)
    crowd = Crowd(
        a.serial,
        parse_addresses(a.addresses),
        turnaround_s=a.turnaround_ms / 1000,
        flat=a.flat,
        heartbeat_s=a.push_heartbeat_s,
        baud=a.baud,
    )
    signal.signal(signal.SIGTERM, lambda *_: crowd._stop.set())
    print("ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        crowd.run_forever()


if __name__ == "__main__":
    main()
