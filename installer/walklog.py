"""What a walk test saw, node by node: the gateway's readings and alerts in, one record per
configured node out. Pure: the caller passes the wall-clock time of each item, and gets back
the line to show live (or None).

What counts as tested (an activation the gateway saw, in polled or push mode):

| kind | tested when | partly |
|---|---|---|
| smoke, leakage, temperature | an alarm from that source | a pre-alarm only |
| button | a press (push mode) or the call point's alarm (held, latched) | |
| self_test | the node's STATUS shows its self-test running, or a test result (push) | |
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.config import GatewayConfig
from gateway.model import Alert, NodeEvent, Sample, Silent
from protocol import names
from protocol import registers as r

KINDS = ("smoke", "leakage", "temperature", "button", "self_test")
DEFAULT_REQUIRED = ("smoke", "leakage", "button")
TESTED = "tested"
PARTLY = "pre-alarm only"
FAILED = "failed"


@dataclass
class NodeRecord:
    """One configured node during the walk test."""

    name: str
    bus: str
    address: int
    house: str
    zone: str
    polls: int = 0  # readings expected: answered or silent
    answers: int = 0
    first_seen: float | None = None  # wall clock
    last_seen: float | None = None
    tested: dict[str, str] = field(default_factory=dict)  # kind -> TESTED, PARTLY, FAILED
    last: Sample | None = None
    faults_seen: list[str] = field(default_factory=list)  # in order, once each
    faults_present: set[str] = field(default_factory=set)
    offline: bool = False
    alerts: int = 0

    @property
    def seen(self) -> bool:
        return self.answers > 0

    def fault(self, name: str, on: bool) -> None:
        if on:
            if name not in self.faults_seen:
                self.faults_seen.append(name)
            self.faults_present.add(name)
        else:
            self.faults_present.discard(name)

    def mark(self, kind: str, outcome: str) -> None:
        """A kind's best outcome so far: tested beats failed beats pre-alarm only."""
        rank = {PARTLY: 0, FAILED: 1, TESTED: 2}
        if rank[outcome] >= rank.get(self.tested.get(kind, ""), -1):
            self.tested[kind] = outcome


class WalkLog:
    """Records per configured node; feed it with reading() and alert()."""

    def __init__(self, cfg: GatewayConfig, required: Iterable[str] = DEFAULT_REQUIRED) -> None:
        self.site = cfg.site
        self.gateway_id = cfg.gateway_id
        self.required = tuple(required)
        unknown = [k for k in self.required if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
        self.nodes = {
            n.name: NodeRecord(n.name, n.bus, n.address, n.house, n.zone) for n in cfg.nodes
        }
        self.started = time.time()
        self.ended: float | None = None
        self.alerts: list[tuple[float, Alert]] = []

    def reading(self, item: Sample | Silent | NodeEvent, utc: float) -> str | None:
        """A reading the gateway received; a line to show when the node was heard first, went
        quiet, or began a self-test."""
        n = self.nodes.get(item.node)
        if n is None:
            return None
        if isinstance(item, Silent):
            n.polls += 1
            return None
        first = n.answers == 0
        n.answers += 1
        n.polls += isinstance(item, Sample)
        n.first_seen = n.first_seen if n.first_seen is not None else utc
        n.last_seen = utc
        line = None
        if first:
            line = f"{_clock(utc)}  seen      {_where(n)}  answers"
        if isinstance(item, Sample):
            was = n.last
            n.last = item
            for bit, name in names.FAULTS.items():
                if item.faults & (1 << bit):
                    n.fault(name, True)
            testing = bool(item.status & r.ST_TEST)
            if testing and (was is None or not was.status & r.ST_TEST):
                if "self_test" not in n.tested:
                    n.mark("self_test", TESTED)
                if not first:
                    line = f"{_clock(utc)}  TEST      {_where(n)}  self-test running"
        return line

    def alert(self, alert: Alert, utc: float) -> str | None:
        """An alert the gateway sent upstream; the line to show."""
        self.alerts.append((utc, alert))
        n = self.nodes.get(alert.node)
        if n is None:
            return None
        n.alerts += 1
        kind, source = alert.kind, alert.source
        if kind in ("alarm", "pre_alarm") and source in ("smoke", "leakage", "temperature"):
            n.mark(source, TESTED if kind == "alarm" else PARTLY)
        elif (kind == "alarm" and source == "button") or kind == "button":
            n.mark("button", TESTED)
        elif kind == "test":
            n.mark("self_test", TESTED if alert.detail == "passed" else FAILED)
        elif kind in ("fault", "fault_restore"):
            if alert.detail == "offline":
                n.offline = kind == "fault"
            else:
                n.fault(alert.detail, kind == "fault")
            if alert.detail == "self_test_failed" and kind == "fault":
                n.mark("self_test", FAILED)
        value = "" if alert.value is None else f"  {alert.value:g} {alert.unit}".rstrip()
        detail = f" ({alert.detail})" if alert.detail else ""
        mark = "TEST" if alert.test else "REAL"
        what = f"{kind.replace('_', '-')} {source}{detail}"
        return f"{_clock(utc)}  {mark:<8}  {_where(n)}  {what}{value}"

    def finish(self, utc: float) -> None:
        self.ended = utc


def _where(n: NodeRecord) -> str:
    return f"{n.name} (house {n.house}, zone {n.zone})"


def _clock(utc: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(utc))
