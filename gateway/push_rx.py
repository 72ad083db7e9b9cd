"""The push link receiver: nodes in push mode send their events and heartbeats themselves; the
gateway stores each one durably, then ACKs it, signed (docs/protocol.md, Push framing).

    async with PushReceiver("/dev/ttyUSB1", 19200, nodes, on_event, counters, save) as rx:
        tg.create_task(rx.run(), name=rx.task_name)

I/O: pyserial opens and configures the port (8E1 by default, like the node's UART) in
non-blocking mode, and the event loop watches its file descriptor (loop.add_reader), so there
is no thread and no extra dependency (pyserial-asyncio is not used). POSIX only, which is where
the gateway runs.

Per frame, in arrival order (protocol.push.PushDecoder does CRC, tag and replay checks):
- EVENT -> NodeEvent, HEARTBEAT -> Sample; `await on_event(reading)` returns True once the
  reading is durably stored, and only then is the ACK sent. False (the store is full) gets a
  NAK busy, so the node keeps the entry and resends it later.
- A retransmission (a seq and payload already stored from that node) is ACKed again but not
  passed on twice.
- A frame whose payload does not parse gets a NAK malformed, but only when it is proven to come
  from the node (its tag verified and its counter was new, or the node has no key): a forged
  frame must not make a node drop a genuine pending alarm.
- Everything else rejected is counted by reason in `rejected` and never answered.
Replies wait until the line has been quiet for t3.5 (half duplex).

Counters: `counters` maps node id -> the newest authentication counter accepted from that node
(it is PushDecoder.last) and, at node id | 1 << 32, the counter of the gateway's own signed
replies to that node, which must grow for as long as the node runs. `save_counters()` is called
after every change and before the reply goes out. When a receiver starts, each saved reply
counter jumps 1024 ahead, so replies whose save was lost in a crash are never reused; and a
reply counter is never below the Unix time in seconds, so even with the saved counters lost (a
new SD card) it is ahead of what a running node last saw, as long as the gateway replied less
than once a second per node on average (heartbeats every 30 s: far less).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from struct import pack, unpack_from
from typing import cast

import serial  # type: ignore[import-untyped]

from gateway.backoff import Backoff
from gateway.link import PortLost
from gateway.model import NodeEvent, Sample, Silent
from gateway.points import decode_event, decode_heartbeat
from protocol import cobs, push
from protocol.auth import AuthError, ReplayError, Signer
from protocol.crc import check_crc
from protocol.errors import NEED_DATA, CRCError, FrameError
from protocol.timing import t35_us

log = logging.getLogger(__name__)

OnEvent = Callable[[Sample | NodeEvent], Awaitable[bool]]
OnSilent = Callable[[Silent], Awaitable[None]]

REPLY_COUNTER = 1 << 32  # counters key of the gateway's reply counter: node_id | REPLY_COUNTER
COUNTER_SKIP = 1024  # a reply counter saved before a restart resumes this far ahead
_MAX_BLOCK = 255  # a frame longer than this between delimiters is noise (push frames < 100 B)
_RX_MAX = 4096  # bytes buffered while a reading is being stored; beyond, the oldest go
_RECENT = 64  # (seq, payload) remembered per node to recognise retransmissions
_HEADER = ">BBBIH"  # version, type, flags, node id, seq (protocol/push.py)
REJECTIONS = ("crc", "auth", "replay", "malformed", "unknown_node", "framing")


class PushReceiver:
    """Receives one push-mode line. nodes: node id -> (name, key, or None for a node that
    does not sign). See the module docstring for the contract of on_event and counters.

    stats: frames (accepted), events, heartbeats, duplicates, acks, naks_busy,
    naks_malformed, echoes (our own replies heard back), rx_overflow (bytes dropped),
    port_losses, save_errors, callback_errors. rejected: a count per reason in REJECTIONS.
    """

    def __init__(
        self,
        port: str,
        baud: int,
        nodes: Mapping[int, tuple[str, bytes | None]],
        on_event: OnEvent,
        counters: MutableMapping[int, int],
        save_counters: Callable[[], None],
        *,
        parity: str = "E",
        on_silent: OnSilent | None = None,
        reopen_backoff_max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.port = port
        self.baud = baud
        self.parity = parity
        self.nodes = dict(nodes)
        self._on_event = on_event
        self._on_silent = on_silent
        self._save_counters = save_counters
        self._clock = clock
        self._wall = wall
        self._signers = {nid: Signer(key) for nid, (_, key) in self.nodes.items() if key}
        self.counters = counters
        for nid in self._signers:
            if nid | REPLY_COUNTER in counters:
                counters[nid | REPLY_COUNTER] += COUNTER_SKIP
        # PushDecoder only reads and writes node-id keys of `last`: any mapping will do.
        self._decoder = push.PushDecoder(self._signers, cast(dict[int, int], counters))
        self._recent: dict[int, deque[tuple[int, bytes]]] = {}
        self._reply_seq: dict[int, int] = {}
        self._t35_s = t35_us(baud) / 1e6
        self._reopen = Backoff(min(0.1, reopen_backoff_max_s), reopen_backoff_max_s, rand)
        self._serial: serial.Serial | None = None
        self._rx = bytearray()
        self._pending = bytearray()
        self._dropping = False  # inside an over-long block: skip to the next delimiter
        self._data = asyncio.Event()
        self._lost: str | None = None
        self._last_rx = 0.0
        self.port_open = False
        self.stats = dict.fromkeys(
            (
                "frames",
                "events",
                "heartbeats",
                "duplicates",
                "acks",
                "naks_busy",
                "naks_malformed",
                "echoes",
                "rx_overflow",
                "port_losses",
                "save_errors",
                "callback_errors",
            ),
            0,
        )
        self.rejected = dict.fromkeys(REJECTIONS, 0)

    @property
    def task_name(self) -> str:
        return f"push[{self.port}].receive"

    async def __aenter__(self) -> PushReceiver:
        """Opens the port (from here on bytes are buffered); if it cannot, run() retries."""
        self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._close()

    def snapshot(self) -> dict[str, object]:
        """For `firelane status` and the gateway's status message."""
        return {
            "port": self.port,
            "baud": self.baud,
            "open": self.port_open,
            "nodes": len(self.nodes),
            **self.stats,
            "rejected": dict(self.rejected),
        }

    # The port.
    def _open(self) -> bool:
        try:
            port = serial.Serial(
                self.port, self.baud, parity=self.parity, timeout=0, write_timeout=0, exclusive=True
            )
        except (OSError, serial.SerialException) as exc:
            self._lost = str(exc)
            return False
        self._serial = port
        self._lost = None
        self._rx.clear()
        self._pending.clear()
        self._dropping = False
        asyncio.get_running_loop().add_reader(port.fileno(), self._readable)
        self.port_open = True
        return True

    def _close(self) -> None:
        port, self._serial = self._serial, None
        self.port_open = False
        if port is not None:
            asyncio.get_running_loop().remove_reader(port.fileno())
            port.close()

    def _readable(self) -> None:
        assert self._serial is not None
        try:
            data = os.read(self._serial.fileno(), _RX_MAX)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the other end of a pty closed, a USB adapter unplugged
            data, self._lost = b"", str(exc)
        if not data:
            self._lost = self._lost or "end of file"
            asyncio.get_running_loop().remove_reader(self._serial.fileno())
        else:
            self._last_rx = self._clock()
            over = len(self._rx) + len(data) - _RX_MAX
            if over > 0:
                del self._rx[:over]
                self.stats["rx_overflow"] += over
            self._rx += data
        self._data.set()

    async def run(self) -> None:
        """Receive until cancelled; a port that disappears is reopened with back-off."""
        warned = False
        while True:
            if self._serial is not None or self._open():
                self._reopen.reset()
                if warned:
                    log.warning("push %s: port open again", self.port)
                warned = False
                try:
                    await self._serve()
                except PortLost as exc:
                    self._lost = str(exc)
                self._close()
                self.stats["port_losses"] += 1
                log.warning(
                    "push %s: port lost (%s); its nodes are silent until it reopens",
                    self.port,
                    self._lost,
                )
            elif not warned:
                log.warning(
                    "push %s: cannot open (%s); retrying with back-off (up to %.0f s): check "
                    "the adapter and its path in the config",
                    self.port,
                    self._lost,
                    self._reopen.cap_s,
                )
            warned = True
            await self._silence_all()
            await asyncio.sleep(self._reopen.next())

    async def _silence_all(self) -> None:
        if self._on_silent is None:
            return
        now = self._clock()
        for name, _ in self.nodes.values():
            try:
                await self._on_silent(Silent(name, now))
            except Exception:
                self.stats["callback_errors"] += 1
                log.exception("push %s: on_silent failed", self.port)

    async def _serve(self) -> None:
        while True:
            await self._data.wait()
            self._data.clear()
            data = bytes(self._rx)
            self._rx.clear()
            for block in self._split(data):
                await self._handle(block)
            if self._lost is not None:
                raise PortLost(self._lost)

    def _split(self, data: bytes) -> list[bytes]:
        """Complete frames (without their 0x00 delimiters); a partial one waits for more."""
        blocks = []
        parts = data.split(b"\x00")
        for i, chunk in enumerate(parts):
            last = i == len(parts) - 1
            if not self._dropping:
                self._pending += chunk
                if len(self._pending) > _MAX_BLOCK:
                    self.rejected["framing"] += 1
                    self._pending.clear()
                    self._dropping = True
            if last:
                break
            if not self._dropping and self._pending:
                blocks.append(bytes(self._pending))
            self._pending.clear()
            self._dropping = False
        return blocks

    # Frames.
    async def _handle(self, block: bytes) -> None:
        header = _peek(block)
        nid = header[3] if header else None
        before = self.counters.get(nid) if nid is not None else None
        self._decoder.feed(block + b"\x00")
        try:
            frame = self._decoder.next_event()
        except CRCError:
            self.rejected["crc"] += 1
            return
        except ReplayError:
            self.rejected["replay"] += 1
            return
        except AuthError:
            self.rejected["auth" if nid in self.nodes else "unknown_node"] += 1
            return
        except FrameError:
            if header is None or nid is None:
                self.rejected["framing"] += 1
            elif nid not in self.nodes:
                self.rejected["unknown_node"] += 1
            else:
                self.rejected["malformed"] += 1
                if nid not in self._signers or self.counters.get(nid) != before:
                    await self._nak_malformed(nid, header[4])
                    self._save()
            return
        if frame is NEED_DATA or not isinstance(frame, push.Frame):
            return
        if frame.type in (push.MT_ACK, push.MT_NAK):
            # A reply heard back (ours, echoed by the transceiver): its counter is the
            # gateway's, and must not move the guard on the node's own counter.
            self.stats["echoes"] += 1
            if before is None:
                self.counters.pop(frame.node_id, None)
            else:
                self.counters[frame.node_id] = before
            return
        if frame.node_id not in self.nodes:
            self.rejected["unknown_node"] += 1
            return
        await self._accept(frame)

    async def _accept(self, frame: push.Frame) -> None:
        nid = frame.node_id
        name = self.nodes[nid][0]
        at = self._clock()
        reading: Sample | NodeEvent
        try:
            if frame.type == push.MT_EVENT:
                reading = decode_event(name, at, frame.payload)
            else:
                reading = decode_heartbeat(name, at, frame.payload)[0]
        except ValueError as exc:
            self.rejected["malformed"] += 1
            log.warning("push %s: node %s sent %s: NAK malformed", self.port, name, exc)
            await self._nak_malformed(nid, frame.seq)
            self._save()
            return
        self.stats["frames"] += 1
        recent = self._recent.setdefault(nid, deque(maxlen=_RECENT))
        key = (frame.seq, frame.payload)
        if key in recent:
            self.stats["duplicates"] += 1
            await self._reply(nid, push.MT_ACK, pack(">H", frame.seq))
            self.stats["acks"] += 1
            return
        try:
            stored = await self._on_event(reading)
        except Exception:
            self.stats["callback_errors"] += 1
            log.exception("push %s: on_event failed for %s: NAK busy", self.port, reading)
            stored = False
        if not stored:
            await self._reply(nid, push.MT_NAK, pack(">HB", frame.seq, push.NAK_BUSY))
            self.stats["naks_busy"] += 1
            return
        recent.append(key)
        self.stats["events" if frame.type == push.MT_EVENT else "heartbeats"] += 1
        await self._reply(nid, push.MT_ACK, pack(">H", frame.seq))
        self.stats["acks"] += 1

    async def _nak_malformed(self, nid: int, seq: int) -> None:
        await self._reply(nid, push.MT_NAK, pack(">HB", seq, push.NAK_MALFORMED))
        self.stats["naks_malformed"] += 1

    async def _reply(self, nid: int, mtype: int, payload: bytes) -> None:
        signer = self._signers.get(nid)
        counter = 0
        if signer is not None:
            counter = max(self.counters.get(nid | REPLY_COUNTER, 0) + 1, int(self._wall()))
            self.counters[nid | REPLY_COUNTER] = counter
        self._save()  # the node's counter and ours, before the reply can be acted on
        seq = self._reply_seq.get(nid, 0) + 1 & 0xFFFF
        self._reply_seq[nid] = seq
        await self._send(push.encode(mtype, nid, seq, payload, signer, counter))

    def _save(self) -> None:
        try:
            self._save_counters()
        except Exception:
            self.stats["save_errors"] += 1
            log.exception("push %s: saving the authentication counters failed", self.port)

    async def _send(self, data: bytes) -> None:
        # Half duplex: talk only after t3.5 of silence (Modbus over Serial Line 2.5.1.1).
        while (quiet := self._clock() - self._last_rx) < self._t35_s:
            await asyncio.sleep(self._t35_s - quiet)
        if self._serial is None or self._lost is not None:
            raise PortLost(self._lost or "port closed")
        fd = self._serial.fileno()
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                await self._writable(fd)
                continue
            except OSError as exc:
                raise PortLost(str(exc)) from exc
            view = view[n:]

    async def _writable(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_writer(fd, ready.set_result, None)
        try:
            await ready
        finally:
            loop.remove_writer(fd)


def _peek(block: bytes) -> tuple[int, int, int, int, int] | None:
    """The header fields of a block whose CRC is right (version, type, flags, node id, seq);
    None otherwise. Used only to name the node of a frame the decoder refused."""
    try:
        body = cobs.decode(block)
    except FrameError:
        return None
    if len(body) < 11 or not check_crc(body, 0, len(body)):
        return None
    return cast(tuple[int, int, int, int, int], unpack_from(_HEADER, body))
