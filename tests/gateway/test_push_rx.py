"""The push link receiver: a fake node on a pty sends frames built with protocol.push, and checks
every reply with its own decoder and key, as a node does; then the real firmware in push mode on
the emulated board, end to end.

"No reply" is proven by order, never by waiting: the receiver handles frames one at a time, so
when the reply after a rejected frame is the one for the good frame sent behind it, the rejected
one got none.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import tty
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from struct import pack, unpack

import pytest

from gateway.model import NodeEvent, Sample, Silent
from gateway.push_rx import COUNTER_SKIP, REPLY_COUNTER, PushReceiver
from hil_tests.emulator.control import Control
from hil_tests.node_helpers import emulated_node, node_id
from protocol import cobs, codes, push
from protocol import registers as r
from protocol.auth import TAG_LEN, Signer
from protocol.crc import append_crc
from protocol.errors import NEED_DATA, FrameError

NID = 0x1A000005
KEY = b"node five secret"
OTHER_KEY = b"not the node's key"
BLOCK = [r.ST_ALARM, 1 << codes.SRC_LEAKAGE, 0, 3, 12, 480, 215, 12100]


def event(code: int = codes.EV_ALARM, source: int = codes.SRC_LEAKAGE, value: int = 480) -> bytes:
    return pack(push.EVENT_FORMAT, code, source, 0, r.ST_ALARM, value, 3600)


def heartbeat() -> bytes:
    return pack(push.HEARTBEAT_FORMAT, *BLOCK, 3601)


class FakeNode:
    """The node's end of a push line: a pty pair, the receiver's end at `path` (a symlink).
    Replies are decoded with the node's own key and replay guard (protocol.push)."""

    def __init__(self, path: Path, nid: int = NID, key: bytes | None = KEY) -> None:
        self.path = path
        self.nid = nid
        self.signer = Signer(key) if key else None
        self.counter = 0
        self.decoder = push.PushDecoder({nid: Signer(key)} if key else None)
        self.replies: asyncio.Queue[push.Frame] = asyncio.Queue()
        self.reply_errors: list[FrameError] = []
        self._loop = asyncio.get_running_loop()
        self.master = self.slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()  # the slave is held open: no EIO on the master
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        if self.path.is_symlink():
            self.path.unlink()
        self.path.symlink_to(os.ttyname(self.slave))
        self._loop.add_reader(self.master, self._readable)

    def unplug(self) -> None:
        self._loop.remove_reader(self.master)
        self.path.unlink()
        os.close(self.master)
        os.close(self.slave)
        self.master = -1

    def close(self) -> None:
        if self.master >= 0:
            self.unplug()

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return
        self.decoder.feed(data)
        while True:
            try:
                frame = self.decoder.next_event()
            except FrameError as exc:
                self.reply_errors.append(exc)
                continue
            if frame is NEED_DATA:
                return
            assert isinstance(frame, push.Frame)
            self.replies.put_nowait(frame)

    def frame(
        self, mtype: int, seq: int, payload: bytes, key: bytes | None = None, nid: int = 0
    ) -> bytes:
        """An encoded frame with the node's next counter (or signed with another key)."""
        self.counter += 1
        signer = Signer(key) if key else self.signer
        return push.encode(mtype, nid or self.nid, seq, payload, signer, self.counter)

    def send(self, data: bytes) -> bytes:
        os.write(self.master, data)
        return data

    async def reply(self, timeout: float = 5.0) -> push.Frame:
        async with asyncio.timeout(timeout):
            return await self.replies.get()

    async def expect(
        self, mtype: int, seq: int, reason: int | None = None, timeout: float = 5.0
    ) -> push.Frame:
        frame = await self.reply(timeout)
        assert not self.reply_errors, f"a reply the node would refuse: {self.reply_errors}"
        got = (frame.type, frame.node_id, unpack(">H", frame.payload[:2])[0])
        assert got == (mtype, self.nid, seq), f"expected type {mtype} for seq {seq}, got {got}"
        if self.signer is not None:
            assert frame.counter is not None, "an unsigned reply to a node with a key"
        if reason is not None:
            assert frame.payload[2] == reason, frame.payload
        return frame


class Store:
    """on_event: keeps what it is given; returns `accept` (False: the disk is full)."""

    def __init__(self) -> None:
        self.stored: list[Sample | NodeEvent] = []
        self.offered = 0
        self.accept = True
        self.silent: list[Silent] = []
        self.saves = 0
        self.changed = asyncio.Event()

    async def __call__(self, reading: Sample | NodeEvent) -> bool:
        self.offered += 1
        if self.accept:
            self.stored.append(reading)
        self.changed.set()
        return self.accept

    async def on_silent(self, silent: Silent) -> None:
        self.silent.append(silent)
        self.changed.set()

    def save(self) -> None:
        self.saves += 1

    async def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"{what}: not within {timeout} s: {self.stored[-4:]}") from None


@asynccontextmanager
async def receiving(
    node: FakeNode,
    store: Store,
    counters: dict[int, int],
    reopen_backoff_max_s: float = 30.0,
    wall: Callable[[], float] = lambda: 0.0,  # reply counters from 1: readable tests
) -> AsyncIterator[PushReceiver]:
    nodes = {node.nid: ("n5", KEY if node.signer else None), 0x1A000006: ("n6", b"six")}
    rx = PushReceiver(
        str(node.path),
        19200,
        nodes,
        store,
        counters,
        store.save,
        parity="N",  # a pty drops parity bits (tests/gateway/virtual_line.py)
        on_silent=store.on_silent,
        reopen_backoff_max_s=reopen_backoff_max_s,
        wall=wall,
    )
    async with rx:
        task = asyncio.create_task(rx.run(), name=rx.task_name)
        try:
            yield rx
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


def test_frames_are_stored_then_acked_and_every_rejection_is_counted(tmp_path: Path) -> None:
    asyncio.run(_contract(tmp_path))


async def _contract(tmp: Path) -> None:
    node = FakeNode(tmp / "ttyPUSH")
    store, counters = Store(), dict[int, int]()
    try:
        async with receiving(node, store, counters) as rx:
            # An alarm event: stored, then ACKed, signed, with a growing counter.
            first = node.send(node.frame(push.MT_EVENT, 1, event()))
            ack1 = await node.expect(push.MT_ACK, 1)
            assert store.stored == [
                NodeEvent("n5", store.stored[0].at, 1, 2, 0, r.ST_ALARM, 480, 3600)
            ]
            assert counters[NID] == node.counter, "the node's counter, persisted"
            assert counters[NID | REPLY_COUNTER] == ack1.counter == 1
            assert store.saves >= 1

            # A heartbeat: a Sample.
            node.send(node.frame(push.MT_HEARTBEAT, 2, heartbeat()))
            ack2 = await node.expect(push.MT_ACK, 2)
            assert ack2.counter == 2
            sample = store.stored[1]
            assert isinstance(sample, Sample)
            assert (sample.status, sample.leakage_ma, sample.temperature_c) == (1, 480, 21.5)

            # The alarm again (its ACK was lost): ACKed again, not stored twice.
            node.send(node.frame(push.MT_EVENT, 1, event()))
            await node.expect(push.MT_ACK, 1)
            assert len(store.stored) == 2 and rx.stats["duplicates"] == 1

            # Rejected, each followed by a good frame whose ACK must be the next reply.
            seq = 10
            body = bytearray(cobs.decode(node.frame(push.MT_EVENT, seq, event())[:-1]))
            body[-1] ^= 0x55  # line noise in the CRC
            bad = {
                "crc": cobs.encode(bytes(body)) + b"\x00",
                "auth": node.frame(push.MT_EVENT, seq, event(), key=OTHER_KEY),
                "replay": first,  # a recording of the first frame
                "unknown_node": node.frame(push.MT_EVENT, seq, event(), nid=0x0BADBEEF),
                "framing": bytes(range(1, 200)) + b"\x00",
            }
            for reason, data in bad.items():
                seq += 1
                node.send(data)
                node.send(node.frame(push.MT_HEARTBEAT, seq, heartbeat()))
                await node.expect(push.MT_ACK, seq)
                assert rx.rejected[reason] == 1, (reason, rx.rejected)
            # A frame from a node that signs, unsigned; and from another node, with our key.
            seq += 1
            node.send(push.encode(push.MT_EVENT, NID, seq, event()))
            node.send(node.frame(push.MT_EVENT, seq, event(), nid=0x1A000006))
            node.send(node.frame(push.MT_HEARTBEAT, seq, heartbeat()))
            await node.expect(push.MT_ACK, seq)
            assert rx.rejected["auth"] == 3, rx.rejected
            assert len(store.stored) == 2 + len(bad) + 1

            # Disk full: NAK busy, nothing stored; the retransmission then goes through once.
            store.accept = False
            node.send(node.frame(push.MT_EVENT, 40, event(codes.EV_FAULT, codes.SRC_NODE)))
            await node.expect(push.MT_NAK, 40, push.NAK_BUSY)
            store.accept = True
            node.send(node.frame(push.MT_EVENT, 40, event(codes.EV_FAULT, codes.SRC_NODE)))
            await node.expect(push.MT_ACK, 40)
            faults = [x for x in store.stored if isinstance(x, NodeEvent) and x.code == 3]
            assert len(faults) == 1 and rx.stats["naks_busy"] == 1

            # Well signed but unparseable: NAK malformed (do not resend as is).
            node.send(node.frame(push.MT_EVENT, 41, event(code=99)))
            await node.expect(push.MT_NAK, 41, push.NAK_MALFORMED)
            node.send(signed_with_wrong_size(node, 42))
            await node.expect(push.MT_NAK, 42, push.NAK_MALFORMED)
            # The same, forged: not answered (a forged NAK would make the node drop an alarm).
            node.send(node.frame(push.MT_EVENT, 43, event(code=99), key=OTHER_KEY))
            node.send(node.frame(push.MT_HEARTBEAT, 44, heartbeat()))
            await node.expect(push.MT_ACK, 44)
            assert rx.rejected["malformed"] == 2 and rx.rejected["auth"] == 4
            # A CRC-valid frame "from" the node in another protocol version: refused before
            # its tag is checked, so not provably the node's: counted, not answered.
            header = pack(">BBBIH", push.VERSION + 1, push.MT_EVENT, 1, NID, 46)
            forged = header + event() + pack(">I", 1 << 30) + bytes(TAG_LEN)
            node.send(cobs.encode(append_crc(forged)) + b"\x00")
            node.send(node.frame(push.MT_HEARTBEAT, 47, heartbeat()))
            await node.expect(push.MT_ACK, 47)
            assert rx.rejected["malformed"] == 3

            # Our own ACK heard back (an echoing transceiver): its counter is not the node's.
            node_counter = counters[NID]
            echo = push.encode(push.MT_ACK, NID, 9, pack(">H", 1), Signer(KEY), 1 << 20)
            node.send(echo)
            node.send(node.frame(push.MT_HEARTBEAT, 45, heartbeat()))
            await node.expect(push.MT_ACK, 45)
            assert rx.stats["echoes"] == 1 and counters[NID] == node_counter + 1, "echo"

            assert not node.reply_errors
            assert (
                rx.stats["acks"] + rx.stats["naks_busy"] + rx.stats["naks_malformed"]
                == (counters[NID | REPLY_COUNTER])
            ), "every reply took a new counter"
            assert store.saves >= counters[NID | REPLY_COUNTER]
            assert sum(rx.rejected.values()) == 11, rx.rejected
    finally:
        node.close()


def signed_with_wrong_size(node: FakeNode, seq: int) -> bytes:
    """A correctly signed EVENT whose payload is one byte short (push.encode refuses to)."""
    assert node.signer is not None
    node.counter += 1
    body = pack(">BBBIH", push.VERSION, push.MT_EVENT, 1, node.nid, seq) + event()[:-1]
    body += pack(">I", node.counter)
    body += node.signer.mac(body)[:TAG_LEN]
    return cobs.encode(append_crc(body)) + b"\x00"


def test_reply_counter_survives_a_restart_and_unsigned_nodes_get_unsigned_replies(
    tmp_path: Path,
) -> None:
    asyncio.run(_restart(tmp_path))


async def _restart(tmp: Path) -> None:
    node = FakeNode(tmp / "ttyPUSH")
    store, counters = Store(), dict[int, int]()
    try:
        async with receiving(node, store, counters):
            for seq in (1, 2, 3):
                node.send(node.frame(push.MT_HEARTBEAT, seq, heartbeat()))
                last = await node.expect(push.MT_ACK, seq)
        assert counters[NID | REPLY_COUNTER] == last.counter == 3
        # The gateway restarts with what it saved; the node runs on, keeping its guard.
        async with receiving(node, store, counters):
            node.send(node.frame(push.MT_HEARTBEAT, 4, heartbeat()))
            again = await node.expect(push.MT_ACK, 4)
            assert again.counter == 3 + COUNTER_SKIP + 1
        # The saved counters are lost (a new SD card); the node runs on: the wall clock.
        async with receiving(node, store, {}, wall=time.time):
            node.send(node.frame(push.MT_HEARTBEAT, 5, heartbeat()))
            fresh = await node.expect(push.MT_ACK, 5)
            assert fresh.counter is not None and fresh.counter >= int(time.time()) - 5
    finally:
        node.close()

    plain = FakeNode(tmp / "ttyPLAIN", key=None)
    try:
        async with receiving(plain, store, {}) as rx:
            plain.send(push.encode(push.MT_EVENT, NID, 7, event()))
            ack = await plain.expect(push.MT_ACK, 7)
            assert ack.counter is None and rx.stats["events"] == 1
    finally:
        plain.close()


def test_port_that_disappears_is_reopened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.push_rx")
    asyncio.run(_port_loss(tmp_path))
    said = [rec.getMessage() for rec in caplog.records if rec.name == "gateway.push_rx"]
    assert len(said) == 2 and "lost" in said[0] and "open again" in said[1], said


async def _port_loss(tmp: Path) -> None:
    node = FakeNode(tmp / "ttyPUSH")
    store, counters = Store(), dict[int, int]()
    try:
        async with receiving(node, store, counters, reopen_backoff_max_s=0.3) as rx:
            node.send(node.frame(push.MT_HEARTBEAT, 1, heartbeat()))
            await node.expect(push.MT_ACK, 1)
            node.unplug()
            await store.wait(
                lambda: {s.node for s in store.silent} == {"n5", "n6"}, 5.0, "nodes silent"
            )
            assert rx.stats["port_losses"] == 1 and not rx.port_open
            node.plug()
            # What the node sends before the receiver has reopened is lost (pyserial flushes
            # the input on open), as on a real line: like pushlink, resend until ACKed.
            for _ in range(20):
                node.send(node.frame(push.MT_EVENT, 2, event()))
                try:
                    await node.expect(push.MT_ACK, 2, timeout=0.5)
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError(f"no ACK after the port came back: {rx.stats}")
            assert rx.port_open and rx.stats["port_losses"] == 1
            assert sum(isinstance(x, NodeEvent) for x in store.stored) == 1
    finally:
        node.close()


def test_emulated_push_node_alarm_is_stored_once_and_its_ack_accepted(tmp_path: Path) -> None:
    config = {
        "address": 5,
        "link_mode": "push",
        "heartbeat_s": 5,
        "key": KEY.hex(),
        "leakage_alarm_delay_s": 0,  # the alarm at the first CT window
        "leakage_release_delay_s": 0,
    }
    with emulated_node(tmp_path, config=config, wait_uart=False) as emu:
        nid = node_id(emu.wait_event("ready"))
        with emu.control() as ctl:
            asyncio.run(_emulated(emu.serial, nid, ctl))


async def _emulated(port: Path, nid: int, ctl: Control) -> None:
    store, counters = Store(), dict[int, int]()
    rx = PushReceiver(str(port), 19200, {nid: ("n5", KEY)}, store, counters, store.save, parity="N")
    async with rx:
        task = asyncio.create_task(rx.run(), name=rx.task_name)
        try:

            def events(code: int) -> list[NodeEvent]:
                return [x for x in store.stored if isinstance(x, NodeEvent) and x.code == code]

            def beats() -> int:
                return sum(isinstance(x, Sample) for x in store.stored)

            await store.wait(lambda: beats() >= 1, 10.0, "a first heartbeat")
            await asyncio.to_thread(ctl.set, leakage_ma=500)
            await store.wait(lambda: bool(events(codes.EV_ALARM)), 5.0, "the leakage alarm")
            await asyncio.to_thread(ctl.set, leakage_ma=0)
            await store.wait(lambda: bool(events(codes.EV_RESTORE)), 5.0, "the restore")
            # An alarm whose ACK the node refused would be resent after 250 ms, then 500 ms...
            # A whole heartbeat period later, it would have come back several times.
            seen = beats()
            await store.wait(lambda: beats() > seen, 10.0, "the next heartbeat")
            alarm = events(codes.EV_ALARM)
            assert len(alarm) == 1 and alarm[0].source == codes.SRC_LEAKAGE
            assert abs(alarm[0].value - 500) <= 10, alarm
            assert rx.stats["duplicates"] == 0, rx.stats
            assert not any(rx.rejected.values()), rx.rejected
            assert counters[nid] > 0 and counters[nid | REPLY_COUNTER] >= rx.stats["acks"] >= 4
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
