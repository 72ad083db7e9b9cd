"""The rule core: what nodes report (Sample, NodeEvent), what the bus did not hear (Silent)
and time passing (tick) in; Alerts out. No I/O and no clock: every input carries its time,
and the same inputs always give the same alerts in the same order.

Per node and source the core keeps the level it has told upstream (0 normal, 1 pre-alarm,
2 alarm) and raises an alert when that changes, so a push node's event and the heartbeat
after it do not raise one alarm twice.

- Sample (a poll, or a push heartbeat): an ALARM_SOURCES bit set -> alarm (per source),
  cleared -> restore; the STATUS pre-alarm bit with no alarm -> pre_alarm, whose source is the
  reading largest against its default pre-alarm threshold (or "node"); a FAULTS bit -> fault
  or fault_restore (detail: its protocol.names.FAULTS name); STATUS silenced rising ->
  silenced. Each bit is debounced (debounce.AlarmDebounce: on at the first sample, off after
  n of m clear samples held off_s). An EVENT_SEQ that moved with nothing visible raises
  nothing and is counted (seq_jumps): something came and went between two polls.
- NodeEvent (push), by code (docs/protocol.md, Events): forwarded as they come, since each is
  the node's own word; only a restore of what upstream never heard of (an alarm dropped by
  verification) is held back. A push heartbeat queued before an event can arrive after it
  (the node sends events first): a Sample whose EVENT_SEQ is behind the events received
  since the last sample is stale and skipped (stale_samples), once in a row at most.
- Silent: time passes for that node and supervision may fire.
- tick(at): timers (debounce, verification, measurement rules) and supervision, every node.

A restore's detail says what ended: "alarm" or "pre_alarm" ("" when the gateway had not
heard of it); a measurement rule's alerts carry the rule's name. Priorities: alarm,
pre_alarm and restore ALARM; fault, fault_restore and a failed self-test FAULT (the node
needs a visit); a passed test, button and silenced TELEMETRY. The alerts of one call come
out by priority, then in the order decided (a tick takes the nodes in config order). With
`test_mode` set every alert is marked test=True (walk tests).
"""

from __future__ import annotations

from operator import attrgetter

from protocol import codes as c
from protocol import registers as r

from ..model import Alert, NodeEvent, Priority, Sample, Silent
from .coincidence import Coincidence
from .node import (
    FAULT,
    FAULT_MASK,
    FAULT_SRC,
    N_FAULTS,
    N_SOURCES,
    NODE,
    PRE_LEVELS,
    SOURCE,
    SRC_FIELD,
    SRC_MASK,
    SRC_SCALE,
    SRC_UNIT,
    NodeState,
)
from .supervision import Supervisor
from .thresholds import Measure
from .verify import CONFIRMED, DROPPED, IDLE

_PRIORITY = {
    "alarm": Priority.ALARM,
    "pre_alarm": Priority.ALARM,
    "restore": Priority.ALARM,
    "fault": Priority.FAULT,
    "fault_restore": Priority.FAULT,
    "test": Priority.TELEMETRY,
    "button": Priority.TELEMETRY,
    "silenced": Priority.TELEMETRY,
}
_BY_PRIORITY = attrgetter("priority")

COUNTERS = (
    "samples",
    "events",
    "silent",
    "verified",  # held alarms confirmed: present after the retard, or back in the window
    "coincidence_confirmed",  # held alarms confirmed by a neighbour's alarm
    "unverified_dropped",  # held alarms that never came back: not forwarded
    "seq_jumps",  # EVENT_SEQ moved with no visible change
    "stale_samples",  # push heartbeats older than the events already received
    "unmatched_restores",  # a pushed restore of something not raised
    "unknown_nodes",
    "unknown_events",
    "unknown_bits",  # ALARM_SOURCES or FAULTS bits this gateway has no name for
)


class RuleCore:
    """The compiled rules for a fixed set of nodes (compile_rules). Each method takes one
    input and returns the alerts it raises; `counters` counts what raised none."""

    def __init__(
        self, nodes: list[NodeState], supervisor: Supervisor, coincidence: Coincidence | None
    ) -> None:
        self._list = nodes
        self._nodes = {n.name: n for n in nodes}
        self._sup = supervisor
        self._co = coincidence
        self.test_mode = False
        self.counters = dict.fromkeys(COUNTERS, 0)

    def offline(self, node: str) -> bool:
        """Whether supervision has the node offline."""
        return self._sup.offline[self._nodes[node].index]

    # Inputs.
    def sample(self, s: Sample) -> list[Alert]:
        """A node's status block was read (a poll, or a push heartbeat)."""
        n = self._nodes.get(s.node)
        counters = self.counters
        if n is None:
            counters["unknown_nodes"] += 1
            return []
        counters["samples"] += 1
        at = s.at
        out: list[Alert] = []
        self._heard(n, at, out)
        changed = True
        if n.last is not None:
            moved = (s.event_seq - n.seq) & 0xFFFF
            if moved < n.pushed and not n.stale:
                n.stale = True
                counters["stale_samples"] += 1
                self._timers(n, at, out)
                out.sort(key=_BY_PRIORITY)
                return out
            changed = s.status != n.status or s.sources != n.sources or s.faults != n.faultw
            if moved > n.pushed and not changed:
                counters["seq_jumps"] += 1
        n.stale = False
        n.pushed = 0
        n.seq = s.event_seq
        n.last = s
        if changed or n.src_busy or n.pre_busy or n.fault_busy:
            self._bits(n, s, at, out)
        if n.measures:
            busy = False
            for m in n.measures:
                t = m.update(s)
                if t:
                    self._measured(n, m, t, at, out)
                if m.pending:
                    busy = True
            n.measure_busy = busy
        if len(out) > 1:
            out.sort(key=_BY_PRIORITY)
        return out

    def event(self, e: NodeEvent) -> list[Alert]:
        """A node pushed an event."""
        n = self._nodes.get(e.node)
        counters = self.counters
        if n is None:
            counters["unknown_nodes"] += 1
            return []
        counters["events"] += 1
        at = e.at
        out: list[Alert] = []
        self._heard(n, at, out)
        n.pushed += 1  # every event moved the node's EVENT_SEQ
        n.status = -1  # and may change what its words mean here: read the next sample in full
        self._timers(n, at, out)
        code = e.code
        if (
            code == c.EV_ALARM
            or code == c.EV_PRE_ALARM
            or (code == c.EV_RESTORE and e.detail < 0x80)
        ):
            if 0 <= e.source < N_SOURCES:
                self._level_event(n, e, at, out)
                if n.pre_db.state and code != c.EV_PRE_ALARM:  # a restore may uncover one
                    self._pre(n, None, at, out)
            else:
                counters["unknown_events"] += 1
        elif code == c.EV_FAULT or code == c.EV_RESTORE:
            self._fault_event(n, e, at, out)
        elif code == c.EV_BUTTON:
            self._emit(out, "button", n, SOURCE[c.SRC_BUTTON], "", None, "", at)
        elif code == c.EV_TEST:
            failed = [FAULT[b] for b in range(N_FAULTS) if e.detail >> b & 1]
            prio = Priority.FAULT if e.detail else Priority.TELEMETRY
            self._emit(out, "test", n, NODE, ",".join(failed) or "passed", None, "", at, prio)
        elif code == c.EV_SILENCED:
            n.silenced = True
            self._emit(out, "silenced", n, NODE, "", None, "", at)
        else:
            counters["unknown_events"] += 1
        if len(out) > 1:
            out.sort(key=_BY_PRIORITY)
        return out

    def silent(self, s: Silent) -> list[Alert]:
        """A poll of the node got nothing: time passes for it, and it was not heard."""
        n = self._nodes.get(s.node)
        if n is None:
            self.counters["unknown_nodes"] += 1
            return []
        self.counters["silent"] += 1
        out: list[Alert] = []
        sup = self._sup
        sup.start(s.at)
        self._timers(n, s.at, out)
        if sup.check(n.index, s.at):
            self._emit(out, "fault", n, NODE, "offline", None, "", s.at)
        if len(out) > 1:
            out.sort(key=_BY_PRIORITY)
        return out

    def tick(self, at: float) -> list[Alert]:
        """Time is `at`: timers fire, and nodes not heard for their timeout go offline."""
        out: list[Alert] = []
        sup = self._sup
        sup.start(at)
        check = sup.check
        for n in self._list:
            self._timers(n, at, out)
            if check(n.index, at):
                self._emit(out, "fault", n, NODE, "offline", None, "", at)
        if len(out) > 1:
            out.sort(key=_BY_PRIORITY)
        return out

    # Alerts.
    def _emit(
        self,
        out: list[Alert],
        kind: str,
        n: NodeState,
        source: str,
        detail: str,
        value: float | None,
        unit: str,
        at: float,
        priority: Priority | None = None,
    ) -> None:
        prio = _PRIORITY[kind] if priority is None else priority
        out.append(
            Alert(
                kind, n.name, n.house, n.zone, source, detail, value, unit, at, prio, self.test_mode
            )
        )

    def _value(self, n: NodeState, i: int) -> float | None:
        field = SRC_FIELD[i]
        s = n.last
        return None if field is None or s is None else float(getattr(s, field))

    def _forward(
        self, n: NodeState, i: int, value: float | None, at: float, out: list[Alert]
    ) -> None:
        n.level[i] = 2
        self._emit(out, "alarm", n, SOURCE[i], "", value, SRC_UNIT[i], at)

    def _alarm(
        self, n: NodeState, i: int, value: float | None, at: float, out: list[Alert]
    ) -> None:
        self._forward(n, i, value, at, out)
        self._coincide(n, at, out)

    def _restore(
        self, n: NodeState, i: int, what: str, value: float | None, at: float, out: list[Alert]
    ) -> None:
        n.level[i] = 0
        self._emit(out, "restore", n, SOURCE[i], what, value, SRC_UNIT[i], at)

    def _pre_alarm(
        self, n: NodeState, i: int, value: float | None, at: float, out: list[Alert]
    ) -> None:
        n.level[i] = 1
        n.pre_src = i
        self._emit(out, "pre_alarm", n, SOURCE[i], "", value, SRC_UNIT[i], at)

    def _coincide(self, n: NodeState, at: float, out: list[Alert]) -> None:
        """n alarmed (held or forwarded): with a neighbour's alarm in the window, confirm
        every alarm of the group held since the window began."""
        co = self._co
        if co is None or not co.note(n.index, at):
            return
        since = at - co.window_s
        for k in co.members(n.index):
            m = self._list[k]
            for i, v in enumerate(m.verify):
                if v is not None and v.phase != IDLE and v.started >= since:
                    v.confirm()
                    self.counters["coincidence_confirmed"] += 1
                    self._forward(m, i, v.value, at, out)
                    if not m.src_db[i].state:  # confirmed, and already over
                        self._restore(m, i, "alarm", self._value(m, i), at, out)

    def _measured(self, n: NodeState, m: Measure, turn: int, at: float, out: list[Alert]) -> None:
        kind = m.spec.kind
        if kind == "fault":
            kind = "fault" if turn > 0 else "fault_restore"
        elif turn < 0:
            kind = "restore"
        value = None if m.value is None else float(m.value)
        self._emit(out, kind, n, m.source, m.spec.name, value, m.unit, at)
        if kind == "alarm":
            self._coincide(n, at, out)

    # Supervision and timers.
    def _heard(self, n: NodeState, at: float, out: list[Alert]) -> None:
        sup = self._sup
        sup.start(at)
        if sup.heard(n.index, at):
            self._emit(out, "fault_restore", n, NODE, "offline", None, "", at)

    def _timers(self, n: NodeState, at: float, out: list[Alert]) -> None:
        todo = n.src_busy
        if todo:
            n.src_busy = self._sources(n, todo, None, at, out)
        if n.pre_busy or (todo and n.pre_db.state):  # a restore may uncover a pre-alarm
            self._pre(n, None, at, out)
        todo = n.fault_busy
        if todo:
            busy = 0
            while todo:
                low = todo & -todo
                todo ^= low
                if self._fault(n, low.bit_length() - 1, None, at, out):
                    busy |= low
            n.fault_busy = busy
        if n.measure_busy:
            pending = False
            for m in n.measures:
                if m.pending:
                    t = m.poll(at)
                    if t:
                        self._measured(n, m, t, at, out)
                    pending = pending or m.pending
            n.measure_busy = pending

    # From samples.
    def _bits(self, n: NodeState, s: Sample, at: float, out: list[Alert]) -> None:
        n.status, n.sources, n.faultw = s.status, s.sources, s.faults
        if s.sources & ~SRC_MASK or s.faults & ~FAULT_MASK:
            self.counters["unknown_bits"] += 1
        n.known = SRC_MASK
        n.fknown = FAULT_MASK
        words = s.sources
        n.src_busy = self._sources(n, (words | n.src_on | n.src_busy) & SRC_MASK, words, at, out)
        self._pre(n, bool(s.status & r.ST_PRE_ALARM), at, out)
        words = s.faults
        todo = (words | n.faults | n.fault_busy) & FAULT_MASK
        busy = 0
        while todo:
            low = todo & -todo
            todo ^= low
            if self._fault(n, low.bit_length() - 1, bool(words & low), at, out):
                busy |= low
        n.fault_busy = busy
        silenced = bool(s.status & r.ST_SILENCED)
        if silenced and not n.silenced:
            self._emit(out, "silenced", n, NODE, "", None, "", at)
        n.silenced = silenced

    def _sources(
        self, n: NodeState, todo: int, words: int | None, at: float, out: list[Alert]
    ) -> int:
        """Sources in todo observed in words (None: only time passing); the busy ones."""
        busy = 0
        on = n.src_on & ~todo
        dbs = n.src_db
        while todo:
            low = todo & -todo
            todo ^= low
            i = low.bit_length() - 1
            if self._source(n, i, None if words is None else bool(words & low), at, out):
                busy |= low
            if dbs[i].state:
                on |= low
        n.src_on = on
        return busy

    def _source(self, n: NodeState, i: int, raw: bool | None, at: float, out: list[Alert]) -> bool:
        """Source i observed (raw) or only time passing (None). True: keep checking it."""
        db = n.src_db[i]
        on = db.poll(at) if raw is None else db.update(raw, at)
        v = n.verify[i]
        if v is None:
            if on and n.level[i] < 2:
                self._alarm(n, i, self._value(n, i), at, out)
        else:
            if v.phase != IDLE:
                outcome = v.poll(at)
                if outcome == CONFIRMED:
                    self.counters["verified"] += 1
                    self._forward(n, i, v.value, at, out)
                elif outcome == DROPPED:
                    self.counters["unverified_dropped"] += 1
            if raw is not None:
                if v.observe(raw) == CONFIRMED:
                    self.counters["verified"] += 1
                    self._forward(n, i, self._value(n, i), at, out)
                elif raw and on and n.level[i] < 2 and v.phase == IDLE:
                    v.start(at, self._value(n, i))
                    self._coincide(n, at, out)
        if not on and n.level[i] == 2:
            self._restore(n, i, "alarm", self._value(n, i), at, out)
        return not db.settled or (v is not None and v.phase != IDLE)

    def _pre(self, n: NodeState, raw: bool | None, at: float, out: list[Alert]) -> None:
        db = n.pre_db
        on = db.poll(at) if raw is None else db.update(raw, at)
        level = n.level
        if n.pre_src >= 0 and level[n.pre_src] != 1:  # an alarm took it over, or a restore
            n.pre_src = -1
        if on:
            if n.pre_src < 0 and 2 not in level and not any(d.state for d in n.src_db):
                if 1 in level:  # raised by an event already
                    n.pre_src = level.index(1)
                else:
                    i = self._pre_source(n)
                    self._pre_alarm(n, i, self._value(n, i), at, out)
        elif 1 in level:
            n.pre_src = -1
            for i in range(N_SOURCES):
                if level[i] == 1:
                    self._restore(n, i, "pre_alarm", self._value(n, i), at, out)
        n.pre_busy = not db.settled

    @staticmethod
    def _pre_source(n: NodeState) -> int:
        best, score, s = c.SRC_NODE, 0.0, n.last
        if s is not None:
            for src, field, threshold in PRE_LEVELS:
                x = float(getattr(s, str(field))) / threshold
                if x > score:
                    best, score = src, x
        return best

    def _fault(self, n: NodeState, b: int, raw: bool | None, at: float, out: list[Alert]) -> bool:
        db = n.fault_db[b]
        on = db.poll(at) if raw is None else db.update(raw, at)
        bit = 1 << b
        if on != bool(n.faults & bit):
            n.faults ^= bit
            src = FAULT_SRC[b]
            kind = "fault" if on else "fault_restore"
            value = self._value(n, src)
            self._emit(out, kind, n, SOURCE[src], FAULT[b], value, SRC_UNIT[src], at)
        return not db.settled

    # From events.
    def _level_event(self, n: NodeState, e: NodeEvent, at: float, out: list[Alert]) -> None:
        i = e.source
        low = 1 << i
        scale = SRC_SCALE[i]
        value = e.value / scale if scale else None
        level = n.level[i]
        known = n.known & low
        n.known |= low
        v = n.verify[i]
        if e.code == c.EV_ALARM:
            n.src_db[i].force(True)
            n.src_on |= low
            if v is None or level == 2:  # a second alarm: it restored and alarmed again
                self._alarm(n, i, value, at, out)
            elif v.observe(True) == CONFIRMED:
                self.counters["verified"] += 1
                self._forward(n, i, value, at, out)
            elif v.phase == IDLE:
                v.start(at, value)
                n.src_busy |= low
                self._coincide(n, at, out)
        elif e.code == c.EV_PRE_ALARM:
            if level == 2:  # the alarm's restore was lost on the way
                self._restore(n, i, "alarm", value, at, out)
            n.pre_db.force(True)
            self._pre_alarm(n, i, value, at, out)
        else:  # a restore; detail is the level the source fell to
            n.src_db[i].force(False)
            n.src_on &= ~low
            if v is not None:
                v.observe(False)
            to_pre = e.detail == 1
            if level == 2:
                self._restore(n, i, "alarm", value, at, out)
                if to_pre:
                    n.pre_db.force(True)
                    self._pre_alarm(n, i, value, at, out)
            elif level == 1 and not to_pre:
                self._restore(n, i, "pre_alarm", value, at, out)
                if 1 not in n.level:
                    n.pre_db.force(False)
            elif not known:  # a gateway restarted since: pass the news on
                self._emit(out, "restore", n, SOURCE[i], "", value, SRC_UNIT[i], at)
            elif v is None or v.phase == IDLE:
                self.counters["unmatched_restores"] += 1

    def _fault_event(self, n: NodeState, e: NodeEvent, at: float, out: list[Alert]) -> None:
        on = e.code == c.EV_FAULT
        b = e.detail & 0x7F
        scale = SRC_SCALE[e.source] if 0 <= e.source < N_SOURCES else 0
        value = e.value / scale if scale else None
        if b >= N_FAULTS:  # a fault this gateway has no name for: still a fault
            source = SOURCE[e.source] if 0 <= e.source < N_SOURCES else NODE
            unit = SRC_UNIT[e.source] if scale else ""
            self._emit(
                out, "fault" if on else "fault_restore", n, source, f"fault_{b}", value, unit, at
            )
            return
        bit = 1 << b
        known = n.fknown & bit
        n.fknown |= bit
        n.fault_db[b].force(on)
        src = FAULT_SRC[b]
        if not on and n.faults & bit == 0 and known:
            self.counters["unmatched_restores"] += 1
            return
        if on:
            n.faults |= bit
        else:
            n.faults &= ~bit
            value = None  # a restore's source is the node: its value is no reading
        unit = "" if value is None else SRC_UNIT[e.source]
        kind = "fault" if on else "fault_restore"
        self._emit(out, kind, n, SOURCE[src], FAULT[b], value, unit, at)
