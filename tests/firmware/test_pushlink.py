"""Push mode: the bounded priority queue, retransmission with back-off, ACK/NAK, signatures.

The gateway side is played by protocol/push.py itself: its PushDecoder reads what the node
sends (checking signatures and counters), and ACK/NAK frames are built with push.encode.
"""

from __future__ import annotations

import itertools
from struct import pack, unpack

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import cobs, push
from protocol.auth import Signer
from protocol.codes import (
    EV_ALARM,
    EV_FAULT,
    EV_PRE_ALARM,
    EV_RESTORE,
    EV_TEST,
    FAULT_CT_OPEN,
    SRC_BUTTON,
    SRC_LEAKAGE,
    SRC_NODE,
    SRC_SMOKE,
    SRC_TEMPERATURE,
)
from protocol.crc import append_crc
from protocol.errors import NEED_DATA, ProtocolError
from pushlink import ACK_MS, BACKOFF_MAX_MS, QUEUE_LEN, PushLink
from tests.firmware.clock import START_IDS, STARTS, Clock

NODE = 0x00C0FFEE
KEY = b"firelane test key 0123456789abcd"
BLOCK = [0x0001, 0x0002, 0, 7, 245, 12, 215, 12100]

Fields = tuple[int, ...]


def event_fields(frame: push.Frame) -> Fields:
    """(code, source, detail, status, value, uptime) of an EVENT frame; (-1,) + block for a
    heartbeat."""
    if frame.type == push.MT_HEARTBEAT:
        return (-1, *unpack(push.HEARTBEAT_FORMAT, frame.payload))
    return tuple(unpack(push.EVENT_FORMAT, frame.payload))


class Gateway:
    """The other end of the line: decodes (and verifies) pushes, builds ACKs and NAKs, drops
    duplicates by seq as docs/protocol.md says, and keeps the events it took, in order."""

    def __init__(self, key: bytes | None = KEY) -> None:
        self.signer = Signer(key) if key else None
        self.decoder = push.PushDecoder({NODE: self.signer} if self.signer else None)
        self.counter = 0
        self.seen: set[int] = set()
        self.taken: list[tuple[int, Fields]] = []  # (seq, fields), first reception only

    def hear(self, data: bytes) -> list[push.Frame]:
        self.decoder.feed(data)
        frames: list[push.Frame] = []
        while True:
            f = self.decoder.next_event()
            if f is NEED_DATA:
                return frames
            assert isinstance(f, push.Frame)
            assert f.node_id == NODE
            frames.append(f)
            if f.seq not in self.seen:
                self.seen.add(f.seq)
                self.taken.append((f.seq, event_fields(f)))

    def ack(self, seq: int, signer: Signer | None = None, counter: int | None = None) -> bytes:
        return self._reply(push.MT_ACK, pack(">H", seq), signer, counter)

    def nak(self, seq: int, reason: int) -> bytes:
        return self._reply(push.MT_NAK, pack(">HB", seq, reason), None, None)

    def _reply(
        self, mtype: int, payload: bytes, signer: Signer | None, counter: int | None
    ) -> bytes:
        if counter is None:
            self.counter += 1
            counter = self.counter
        signer = signer or self.signer
        return push.encode(mtype, NODE, counter & 0xFFFF, payload, signer, counter)

    def last_word(self, source: int, by_seq: bool = False) -> int | None:
        """The level event the gateway took last for a source (in arrival or seq order)."""
        taken = sorted(self.taken) if by_seq else self.taken
        codes = [f[0] for _, f in taken if f[0] in (EV_ALARM, EV_PRE_ALARM, EV_RESTORE)]
        sources = [f[1] for _, f in taken if f[0] in (EV_ALARM, EV_PRE_ALARM, EV_RESTORE)]
        mine = [code for code, s in zip(codes, sources, strict=True) if s == source]
        return mine[-1] if mine else None


def link(key: bytes | None = KEY, counter: int = 0) -> PushLink:
    return PushLink(NODE, Signer(key) if key else None, counter)


def alarm(pl: PushLink, source: int, value: int = 0) -> None:
    pl.event(EV_ALARM, source, 0, 1, value, 0)


def restore(pl: PushLink, source: int, level: int = 0) -> None:
    pl.event(EV_RESTORE, source, level, 0, 0, 0)


def fault(pl: PushLink, bit: int = FAULT_CT_OPEN, source: int = SRC_LEAKAGE) -> None:
    pl.event(EV_FAULT, source, bit, 4, 0, 0)


def drain(pl: PushLink, gw: Gateway, now: int = 0) -> list[Fields]:
    """Everything due now, in the order the node sends it (no ACKs)."""
    out = []
    while (frame := pl.poll(now)) is not None:
        out += [event_fields(f) for f in gw.hear(frame)]
    return out


def queued(pl: PushLink) -> list[Fields]:
    """The queue, in order, as (code, source) pairs; heartbeats as (-1, -1)."""
    return [
        (-1, -1) if e[2] == push.MT_HEARTBEAT else tuple(unpack(push.EVENT_FORMAT, e[3])[:2])
        for e in pl.queue
    ]


# The queue.


def test_alarms_go_before_events_before_heartbeats() -> None:
    pl, gw = link(), Gateway()
    pl.heartbeat(BLOCK, 10)
    fault(pl)
    alarm(pl, SRC_SMOKE, 250)
    pl.event(EV_TEST, SRC_NODE, 0, 0, 0, 11)
    alarm(pl, SRC_LEAKAGE, 420)
    sent = drain(pl, gw)
    assert [f[:2] for f in sent] == [
        (EV_ALARM, SRC_SMOKE),
        (EV_ALARM, SRC_LEAKAGE),
        (EV_FAULT, SRC_LEAKAGE),
        (EV_TEST, SRC_NODE),
        (-1, BLOCK[0]),
    ]
    assert sent[0] == (EV_ALARM, SRC_SMOKE, 0, 1, 250, 0)
    assert sent[-1] == (-1, *BLOCK, 10)
    assert pl.sent == 5


def test_a_heartbeat_supersedes_an_unsent_one() -> None:
    pl, gw = link(), Gateway()
    pl.heartbeat(BLOCK, 10)
    pl.heartbeat([9, *BLOCK[1:]], 40)
    assert pl.drops == 1
    assert drain(pl, gw) == [(-1, 9, *BLOCK[1:], 40)]


def test_a_heartbeat_in_flight_is_not_superseded() -> None:
    pl = link()
    pl.heartbeat(BLOCK, 10)
    assert pl.poll(0) is not None  # sent, not yet ACKed
    pl.heartbeat(BLOCK, 40)
    assert (len(pl.queue), pl.drops) == (2, 0)


def test_a_full_queue_evicts_the_oldest_heartbeat_first() -> None:
    pl = link()
    pl.heartbeat(BLOCK, 1)
    for i in range(QUEUE_LEN - 1):
        pl.event(EV_TEST, SRC_NODE, i, 0, 0, 0)
    assert len(pl.queue) == QUEUE_LEN
    fault(pl)
    assert (len(pl.queue), pl.drops) == (QUEUE_LEN, 1)
    assert (-1, -1) not in queued(pl)


def test_a_full_queue_evicts_the_oldest_event_for_a_newer_one() -> None:
    pl = link()
    for i in range(QUEUE_LEN):
        pl.event(EV_TEST, SRC_NODE, i, 0, 0, 0)
    fault(pl)
    details = [unpack(push.EVENT_FORMAT, e[3])[2] for e in pl.queue]
    assert details == [*range(1, QUEUE_LEN), FAULT_CT_OPEN]
    assert pl.drops == 1


def test_a_full_queue_of_events_drops_a_new_heartbeat() -> None:
    pl = link()
    for i in range(QUEUE_LEN):
        pl.event(EV_TEST, SRC_NODE, i, 0, 0, 0)
    pl.heartbeat(BLOCK, 1)
    assert (len(pl.queue), pl.drops) == (QUEUE_LEN, 1)
    assert (-1, -1) not in queued(pl)


def test_a_full_queue_makes_room_for_an_alarm_and_never_drops_one() -> None:
    pl = link()
    pl.heartbeat(BLOCK, 1)
    for i in range(QUEUE_LEN - 1):
        pl.event(EV_TEST, SRC_NODE, i, 0, 0, 0)
    sources = list(range(10, 10 + QUEUE_LEN + 4))
    for source in sources:  # more sources in alarm than the queue holds
        alarm(pl, source)
    assert [q for q in queued(pl) if q[0] == EV_ALARM] == [(EV_ALARM, s) for s in sources]
    assert len(pl.queue) == len(sources)  # above the bound, by alarms alone
    drops = pl.drops
    fault(pl)  # the queue is all alarms: the new event is what goes
    pl.heartbeat(BLOCK, 2)
    assert len(pl.queue) == len(sources)
    assert pl.drops == drops + 2


def test_a_second_alarm_from_a_source_takes_one_entry() -> None:
    pl, gw = link(), Gateway()
    alarm(pl, SRC_SMOKE, 250)
    alarm(pl, SRC_SMOKE, 300)
    assert queued(pl) == [(EV_ALARM, SRC_SMOKE)]
    assert [f[:2] for f in drain(pl, gw)] == [(EV_ALARM, SRC_SMOKE)]


def test_a_source_that_alarms_again_during_an_outage_is_in_alarm_at_the_gateway() -> None:
    # Alarm, restore, alarm while the gateway hears nothing: when it comes back, what it takes
    # must leave the source in alarm, in arrival order and in seq order alike.
    pl, gw = link(), Gateway()
    clock = Clock()
    alarm(pl, SRC_SMOKE, 250)
    restore(pl, SRC_SMOKE)
    alarm(pl, SRC_SMOKE, 260)
    for _ in range(20_000):  # 20 s of retransmissions into the void
        pl.poll(clock.advance(1))
    for _ in range(20_000):  # the gateway is back: it hears and ACKs everything
        frame = pl.poll(clock.advance(1))
        if frame:
            for f in gw.hear(frame):
                pl.receive(gw.ack(f.seq))
    assert pl.queue == []
    assert gw.last_word(SRC_SMOKE) == EV_ALARM
    assert gw.last_word(SRC_SMOKE, by_seq=True) == EV_ALARM


def test_a_source_that_alarms_again_after_its_restore_got_through() -> None:
    # The first alarm reached the gateway but its ACK was lost; the restore went through and
    # was ACKed; then the source alarms again. The gateway drops a retransmission of a seq it
    # has seen, so the new alarm must reach it as a new message.
    pl, gw = link(), Gateway()
    alarm(pl, SRC_SMOKE, 250)
    gw.hear(pl.poll(0) or b"")  # heard; the ACK is lost
    restore(pl, SRC_SMOKE)
    frame = pl.poll(1)  # the alarm waits for its back-off: the restore goes
    assert frame is not None
    for f in gw.hear(frame):
        pl.receive(gw.ack(f.seq))
    assert gw.last_word(SRC_SMOKE) == EV_RESTORE
    alarm(pl, SRC_SMOKE, 260)
    clock = Clock(2)
    for _ in range(30_000):
        frame = pl.poll(clock.advance(1))
        if frame:
            for f in gw.hear(frame):
                pl.receive(gw.ack(f.seq))
    assert pl.queue == []
    assert gw.last_word(SRC_SMOKE) == EV_ALARM
    assert gw.last_word(SRC_SMOKE, by_seq=True) == EV_ALARM


# Retransmission.


@pytest.mark.parametrize("start", STARTS, ids=START_IDS)
def test_retransmission_backs_off_doubling_up_to_the_cap(start: int) -> None:
    pl, gw = link(), Gateway()
    clock = Clock(start)
    alarm(pl, SRC_SMOKE)
    sends = []
    for _ in range(45_000):
        frame = pl.poll(clock.now)
        if frame:
            sends.append(clock.elapsed)
            (f,) = gw.hear(frame)
            assert f.seq == 1  # a retransmission keeps its seq...
        clock.advance(1)
    counters = [c for c in gw.decoder.last.values()]
    assert counters == [len(sends)]  # ...and takes a new counter every time
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    bases = [min(ACK_MS << k, BACKOFF_MAX_MS) for k in range(len(gaps))]
    assert bases[:7] == [250, 500, 1000, 2000, 4000, 5000, 5000]
    for gap, base in zip(gaps, bases, strict=True):
        assert base <= gap < base + ACK_MS  # plus up to ACK_MS of jitter
    assert len(set(gaps[5:])) > 1  # the jitter moves


def test_an_ack_removes_the_entry() -> None:
    pl, gw = link(), Gateway()
    alarm(pl, SRC_SMOKE)
    fault(pl)
    (first,) = gw.hear(pl.poll(0) or b"")
    pl.receive(gw.ack(first.seq + 100))  # an ACK for nothing queued changes nothing
    assert len(pl.queue) == 2
    pl.receive(gw.ack(first.seq))
    assert (queued(pl), pl.acked) == ([(EV_FAULT, SRC_LEAKAGE)], 1)
    for t in range(0, 60_000, 10):  # the ACKed alarm is never sent again
        frame = pl.poll(t)
        if frame:
            (f,) = gw.hear(frame)
            assert f.seq != first.seq


def test_a_nak_malformed_drops_the_entry() -> None:
    pl, gw = link(), Gateway()
    fault(pl)
    (f,) = gw.hear(pl.poll(0) or b"")
    pl.receive(gw.nak(f.seq, push.NAK_MALFORMED))
    assert (pl.queue, pl.drops) == ([], 1)


def test_a_nak_busy_is_retried_on_the_back_off() -> None:
    pl, gw = link(), Gateway()
    fault(pl)
    (f,) = gw.hear(pl.poll(0) or b"")
    pl.receive(gw.nak(f.seq, push.NAK_BUSY))
    assert (len(pl.queue), pl.drops) == (1, 0)
    assert pl.poll(ACK_MS - 1) is None  # not at once
    retries = [(t, frame) for t in range(ACK_MS, 2 * ACK_MS) if (frame := pl.poll(t))]
    assert len(retries) == 1  # within ACK_MS plus its jitter
    assert [g.seq for g in gw.hear(retries[0][1])] == [f.seq]


# Authentication.


def test_frames_verify_at_the_gateway_with_counters_from_the_start_value() -> None:
    pl, gw = link(counter=5000), Gateway()
    alarm(pl, SRC_SMOKE)
    pl.heartbeat(BLOCK, 1)
    frames = [gw.hear(pl.poll(t) or b"")[0] for t in (0, 0, 300)]
    assert [f.counter for f in frames] == [5001, 5002, 5003]  # a retransmission too
    assert pl.counter == 5003


def test_an_unsigned_link_sends_unsigned_frames() -> None:
    pl, gw = link(key=None), Gateway(key=None)
    alarm(pl, SRC_SMOKE)
    (f,) = gw.hear(pl.poll(0) or b"")
    assert f.counter is None
    pl.receive(gw.ack(f.seq))
    assert pl.queue == []


def test_a_signed_frame_fails_at_a_gateway_with_another_key() -> None:
    pl, gw = link(), Gateway(key=b"some other key")
    alarm(pl, SRC_SMOKE)
    with pytest.raises(ProtocolError):
        gw.hear(pl.poll(0) or b"")


def forged_acks(gw: Gateway, seq: int) -> dict[str, bytes]:
    """ACKs for seq that the node must not take."""
    return {
        "wrong-key": gw.ack(seq, signer=Signer(b"an attacker's key")),
        "unsigned": push.encode(push.MT_ACK, NODE, 1, pack(">H", seq)),
        "other-node": push.encode(push.MT_ACK, NODE + 1, 1, pack(">H", seq), gw.signer, 99),
        # Signed for another seq, then flipped to this one (CRC made good): the tag no longer fits.
        "tampered": _tampered(gw.ack(seq ^ 0x01)),
    }


def _tampered(frame: bytes) -> bytes:
    """frame with one payload bit flipped and the CRC made good again: only the tag can tell."""
    body = bytearray(cobs.decode(frame[:-1])[:-2])
    body[10] ^= 0x01  # the low byte of the ACKed seq
    return cobs.encode(append_crc(bytes(body))) + b"\x00"


@pytest.mark.parametrize("kind", ["wrong-key", "unsigned", "other-node", "tampered"])
def test_only_acks_signed_with_the_key_are_taken(kind: str) -> None:
    pl, gw = link(), Gateway()
    alarm(pl, SRC_SMOKE)
    (f,) = gw.hear(pl.poll(0) or b"")
    pl.receive(forged_acks(gw, f.seq)[kind])
    assert (len(pl.queue), pl.acked) == (1, 0)
    assert pl.poll(10_000) is not None  # still retransmitted
    pl.receive(gw.ack(f.seq))  # the real one still works afterwards
    assert pl.queue == []


def test_a_replayed_ack_counter_is_ignored() -> None:
    pl, gw = link(), Gateway()
    alarm(pl, SRC_SMOKE)
    fault(pl)
    first = gw.hear(pl.poll(0) or b"")[0]
    second = gw.hear(pl.poll(0) or b"")[0]
    pl.receive(gw.ack(first.seq, counter=7))
    pl.receive(gw.ack(second.seq, counter=7))  # signed, but not newer than the last
    assert queued(pl) == [(EV_FAULT, SRC_LEAKAGE)]
    pl.receive(gw.ack(second.seq, counter=8))
    assert pl.queue == []


def test_its_own_frames_heard_back_do_not_block_the_gateways_acks() -> None:
    # A transceiver that listens while it talks hands the node its own frame, signed with its
    # own (high) counter. That must not raise the replay guard on the gateway's ACKs.
    pl, gw = link(counter=5000), Gateway()
    alarm(pl, SRC_SMOKE)
    frame = pl.poll(0) or b""
    (f,) = gw.hear(frame)
    pl.receive(frame)  # the echo
    pl.receive(gw.ack(f.seq, counter=1))
    assert (pl.queue, pl.acked) == ([], 1)


def test_an_ack_recorded_before_a_reboot_names_no_message_after_it() -> None:
    # Each boot starts on a new counter block (app.py reserves 1024 a boot) and its seqs with
    # it, so replaying the first ACK of the last boot settles nothing in this one.
    before = link(counter=0)
    alarm(before, SRC_SMOKE)
    gw = Gateway()
    (old,) = gw.hear(before.poll(0) or b"")
    recorded = gw.ack(old.seq, counter=1)
    after = link(counter=1024)  # the next boot
    alarm(after, SRC_SMOKE)
    (new,) = Gateway().hear(after.poll(0) or b"")
    assert new.seq != old.seq
    after.receive(recorded)
    assert (len(after.queue), after.acked) == (1, 0)


def test_other_traffic_on_the_line_is_skipped() -> None:
    pl, gw = link(), Gateway()
    alarm(pl, SRC_SMOKE)
    (f,) = gw.hear(pl.poll(0) or b"")
    other = push.encode(push.MT_EVENT, NODE + 1, 3, bytes(11), Signer(b"neighbour"), 12)
    noise = b"\x13\x37\xff\x00\x00garbage\x00"
    ack = gw.ack(f.seq)
    pl.receive(other + noise + ack[:5])  # the ACK split across reads
    assert len(pl.queue) == 1
    pl.receive(ack[5:])
    assert pl.queue == []


# A property: whatever happens, alarms are never dropped.

Op = tuple[str, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("alarm"), st.sampled_from([SRC_SMOKE, SRC_LEAKAGE, SRC_BUTTON, 9])),
        st.tuples(st.just("restore"), st.sampled_from([SRC_SMOKE, SRC_LEAKAGE, SRC_TEMPERATURE])),
        st.tuples(st.just("event"), st.integers(0, 255)),
        st.tuples(st.just("heartbeat"), st.integers(0, 0xFFFF)),
        st.tuples(st.just("poll"), st.integers(0, 6000)),
        st.tuples(st.just("ack"), st.integers(0, 3)),
    ),
    max_size=120,
)


@settings(deadline=None)  # simulated time, not wall time: slow machines too
@given(ops)
def test_the_latest_alarm_of_every_source_is_queued_or_acked(script: list[Op]) -> None:
    pl, gw = link(), Gateway()
    clock = Clock()
    in_flight: list[int] = []
    latest: dict[int, int] = {}  # source -> index of its latest alarm
    acked: set[int] = set()  # indices of events ACKed
    index_of: dict[int, int] = {}  # seq -> index
    for i, (op, arg) in enumerate(script):
        if op == "alarm":
            alarm(pl, arg, i)
            latest[arg] = i
        elif op == "restore":
            restore(pl, arg)
        elif op == "event":
            pl.event(EV_TEST, SRC_NODE, arg, 0, i, 0)
        elif op == "heartbeat":
            pl.heartbeat(BLOCK, arg)
        elif op == "poll":
            frame = pl.poll(clock.advance(arg))
            if frame:
                in_flight += [f.seq for f in gw.hear(frame)]
        elif in_flight:
            seq = in_flight.pop(min(arg, len(in_flight) - 1))
            for e in pl.queue:
                if e[1] == seq and e[2] == push.MT_EVENT:
                    index_of[seq] = unpack(push.EVENT_FORMAT, e[3])[4]
            before = {e[1] for e in pl.queue}
            pl.receive(gw.ack(seq))
            if seq in before and seq in index_of:
                acked.add(index_of[seq])
        assert len(pl.queue) <= QUEUE_LEN + len(latest)
    queued_alarms = {
        unpack(push.EVENT_FORMAT, e[3])[4] for e in pl.queue if e[0] == 0 and e[2] == push.MT_EVENT
    }
    for source, i in latest.items():
        assert i in queued_alarms or i in acked, (source, i)
