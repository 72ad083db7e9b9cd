"""Push mode: the node sends its events itself and retransmits each until the gateway ACKs it.

Queue (../shared/STYLE.md, lesson 7): at most QUEUE_LEN entries in priority order, alarms
first, other events next, telemetry (heartbeats) last. Drop policy, counted in `drops`
(QUEUE_DROPS register): a new heartbeat replaces an unsent one; when the queue is full the
oldest heartbeat goes first, then the oldest non-alarm event. Alarms are never dropped. A
source alarms again only after it restored (node.py), and that restore may already be at the
gateway, which drops a retransmission of a seq it has seen: so a new alarm from a source
replaces the source's queued alarm with a new seq, and its queued level events (pre-alarm,
restore) go too, counted. The gateway's last word on the source is then "alarm", in arrival
and seq order alike, and alarms take at most one entry per source above the bound.

Retransmission: an entry is resent until ACKed, after ACK_MS, doubling up to BACKOFF_MAX_MS,
plus a per-node pseudo-random jitter so that two nodes that collided on the half-duplex bus
do not collide again. A NAK "busy" is retried the same way; a NAK "malformed" drops the
entry (counted). Every transmission takes a new authentication counter (protocol/push.py);
`counter` is where that count starts, and the app persists blocks of it across reboots.
"""

from struct import pack

from protocol import push
from protocol.auth import Signer
from protocol.codes import EV_ALARM, EV_PRE_ALARM, EV_RESTORE
from protocol.errors import NEED_DATA, FrameError
from ticks import add, diff

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


QUEUE_LEN = const(16)
ACK_MS = const(250)
BACKOFF_MAX_MS = const(5000)
_ALARM = const(0)
_EVENT = const(1)
_TELEMETRY = const(2)


class PushLink:
    """event()/heartbeat() queue frames; poll(now) gives the next frame to send; receive()
    takes the gateway's ACKs and NAKs."""

    def __init__(self, node_id: int, signer: "Signer | None", counter: int = 0):
        self.node_id = node_id
        self._signer = signer
        self.counter = counter
        self.decoder = push.PushDecoder({node_id: signer} if signer is not None else None)
        # Entries: [priority, seq, type, payload, due ticks (-1: send now), tries, source]
        self.queue = []  # type: list[list]  # type: ignore[type-arg]
        self.drops = 0
        self.sent = 0
        self.acked = 0
        # Seqs start where this boot's counter block does (it moves on by >= 1024 a boot), so
        # an ACK recorded before a reboot does not name a message queued after it.
        self._seq = counter & 0xFFFF
        self._rand = node_id | 1

    def _add(self, prio: int, mtype: int, payload: bytes, source: int) -> None:
        q = self.queue
        if prio == _TELEMETRY:
            for e in q:
                if e[0] == _TELEMETRY and e[5] == 0:  # unsent heartbeat: superseded
                    q.remove(e)
                    self.drops += 1
                    break
        if prio == _ALARM:  # supersedes the source's queued alarm and level events
            i = len(q)
            while i:
                i -= 1
                e = q[i]
                if e[6] != source or e[2] != push.MT_EVENT:
                    continue
                code = e[3][0]
                if e[0] == _ALARM:
                    q.pop(i)  # not a drop: the new alarm carries it
                elif code == EV_PRE_ALARM or (code == EV_RESTORE and e[3][2] < 0x80):
                    q.pop(i)
                    self.drops += 1
        if len(q) >= QUEUE_LEN:
            victim = None
            for want in (_TELEMETRY, _EVENT):
                if victim is None and want >= prio:
                    for e in q:
                        if e[0] == want:
                            victim = e
                            break
            if victim is None and prio != _ALARM:
                self.drops += 1  # full of more important entries: this one goes
                return
            if victim is not None:
                q.remove(victim)
                self.drops += 1
        self._seq = (self._seq + 1) & 0xFFFF
        entry = [prio, self._seq, mtype, payload, -1, 0, source]
        i = len(q)
        while i and q[i - 1][0] > prio:  # stable: behind its equals, ahead of less urgent
            i -= 1
        q.insert(i, entry)

    def event(
        self, code: int, source: int, detail: int, status: int, value: int, uptime: int
    ) -> None:
        payload = pack(push.EVENT_FORMAT, code, source, detail, status, value, uptime)
        self._add(_ALARM if code == EV_ALARM else _EVENT, push.MT_EVENT, payload, source)

    def heartbeat(self, block: "list[int]", uptime: int) -> None:
        self._add(_TELEMETRY, push.MT_HEARTBEAT, pack(push.HEARTBEAT_FORMAT, *block, uptime), 0)

    def poll(self, now: int) -> "bytes | None":
        """The frame to transmit now, if any: the most urgent entry that is due."""
        for e in self.queue:
            if e[4] < 0 or diff(now, e[4]) >= 0:
                tries = e[5]
                backoff = ACK_MS << tries if tries < 5 else BACKOFF_MAX_MS
                if backoff > BACKOFF_MAX_MS:
                    backoff = BACKOFF_MAX_MS
                self._rand = (self._rand * 1103515245 + 12345) & 0x7FFFFFFF
                e[4] = add(now, backoff + self._rand % ACK_MS)
                e[5] = tries + 1
                self.sent += 1
                self.counter += 1
                return push.encode(e[2], self.node_id, e[1], e[3], self._signer, self.counter)  # type: ignore[arg-type]
        return None

    def receive(self, data: "bytes | memoryview") -> None:
        """Bytes from the line: ACK and NAK frames for this node settle queue entries; other
        frames (other nodes' pushes, garbage) are skipped."""
        dec = self.decoder
        last = dec.last
        mine = self.node_id
        while True:
            n = dec.feed(data)
            data = data[n:]
            while True:
                prev = last.get(mine, -1)
                try:
                    f = dec.next_event()
                except FrameError:
                    continue
                if f is NEED_DATA:
                    break
                if f.node_id == mine and f.type != push.MT_ACK and f.type != push.MT_NAK:  # type: ignore[union-attr]
                    # Our own frame heard back (a transceiver that listens while it talks):
                    # its counter is ours, and must not raise the guard on the gateway's.
                    if prev < 0:
                        last.pop(mine, None)
                    else:
                        last[mine] = prev
                    continue
                self._settle(f)  # type: ignore[arg-type]
            if not data:
                return

    def _settle(self, f: "push.Frame") -> None:
        if f.node_id != self.node_id or (f.type != push.MT_ACK and f.type != push.MT_NAK):
            return
        seq = f.payload[0] << 8 | f.payload[1]
        for e in self.queue:
            if e[1] == seq:
                if f.type == push.MT_ACK:
                    self.queue.remove(e)
                    self.acked += 1
                elif f.payload[2] == push.NAK_MALFORMED:
                    self.queue.remove(e)
                    self.drops += 1
                return  # NAK busy: retried on its back-off
