"""What the centre sees, and how the demo shows it. No I/O: messages and script steps go in
with the moment they happened (time.monotonic()), text comes out.

- Picture: one row per node (from the retained `node/{node}/state` messages), the `event`
  messages in arrival order, each scripted expectation matched to the first event that fits
  it after the step that caused it (its latency: step to arrival at the subscriber).
- log lines (line mode, stdout not a terminal): one line per script step, per event and per
  change of a node's link or state, from the start of the story on.
- frame() (a terminal): the whole table, redrawn in place by the caller.
- summary(): each scripted event, whether and when it arrived, against its bound.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from demo.story import ALARM_BOUND_S, Expect, Step

READINGS = (  # (name in the state message, column title, format)
    ("smoke", "SMOKE %/m", "{:.2f}"),
    ("leakage", "LEAK mA", "{:.0f}"),
    ("temperature", "TEMP C", "{:.1f}"),
    ("supply", "SUPPLY V", "{:.1f}"),
)
ALARM_KINDS = ("alarm", "pre_alarm")


@dataclass
class NodeRow:
    name: str
    house: str
    heard: bool = False
    online: bool = False
    status: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()
    readings: dict[str, float | None] = field(default_factory=dict)

    @property
    def link(self) -> str:
        if not self.heard:
            return "waiting"
        return "online" if self.online else "OFFLINE"

    @property
    def state(self) -> str:
        if not self.heard:
            return "-"
        words = []
        if "alarm" in self.status:
            words.append("ALARM " + ",".join(self.sources) if self.sources else "ALARM")
        elif "pre_alarm" in self.status:
            words.append("pre-alarm")
        if "silenced" in self.status:
            words.append("silenced")
        if self.faults:
            words.append("fault " + ",".join(self.faults))
        return "; ".join(words) or "normal"


@dataclass
class Outcome:
    """One expectation of the script and what became of it (monotonic times)."""

    expect: Expect
    driven_at: float | None = None
    arrived_at: float | None = None

    @property
    def latency(self) -> float | None:
        if self.driven_at is None or self.arrived_at is None:
            return None
        return self.arrived_at - self.driven_at

    @property
    def deadline(self) -> float | None:
        return None if self.driven_at is None else self.driven_at + self.expect.bound_s

    @property
    def verdict(self) -> str:
        latency = self.latency
        if self.driven_at is None:
            return "not played"
        if latency is None:
            return "MISSING"
        return "ok" if latency <= self.expect.bound_s else "LATE"


@dataclass(frozen=True)
class Arrival:
    at: float
    event: dict[str, Any]
    outcome: Outcome | None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def _seconds(t: float) -> str:
    return f"{t:7.2f} s"


class Picture:
    def __init__(
        self, rows: Iterable[tuple[str, str]], gateway_id: str, prefix: str, expects: list[Expect]
    ) -> None:
        self.rows = {name: NodeRow(name, house) for name, house in rows}
        self.base = f"{prefix}/{gateway_id}/"
        self.outcomes = [Outcome(e) for e in expects]
        self.arrivals: list[Arrival] = []
        self.story: list[tuple[float, str]] = []  # (monotonic, text) of the steps played
        self.kinds: dict[str, int] = {}  # every event kind received, counted
        self.duplicates = 0  # events received again (QoS 1 is at least once): same event_id
        self._event_ids: set[str] = set()
        self.gateway_status = ""
        self.t0: float | None = None  # the story's start, monotonic
        self.closed = False  # the story is over: what arrives later is not taken in

    # --- in -------------------------------------------------------------------------------

    def start(self, at: float) -> None:
        self.t0 = at

    def close(self) -> None:
        self.closed = True

    def rel(self, at: float) -> float:
        return at - (self.t0 if self.t0 is not None else at)

    def on_step(self, step: Step, at: float) -> list[str]:
        self.story.append((at, step.text))
        for expect in step.expects:
            for outcome in self.outcomes:
                if outcome.expect is expect:
                    outcome.driven_at = at
        return [f"{_seconds(self.rel(at))}  story     {step.text}"]

    def on_message(self, topic: str, payload: bytes, at: float) -> list[str]:
        """Take one message in; the log lines it gives (none before the story starts)."""
        if self.closed or not topic.startswith(self.base) or not payload:
            return []
        try:
            doc = json.loads(payload)
        except ValueError:
            return []
        if not isinstance(doc, dict):
            return []
        rest = topic[len(self.base) :]
        lines: list[str] = []
        if rest == "event":
            lines = self._event(doc, at)
        elif rest.startswith("node/") and rest.endswith("/state"):
            lines = self._state(doc)
        elif rest == "status":
            self.gateway_status = str(doc.get("state", ""))
        if self.t0 is None:
            return []
        return [f"{_seconds(self.rel(at))}  {line}" for line in lines]

    def _event(self, doc: dict[str, Any], at: float) -> list[str]:
        event_id = doc.get("event_id")
        if isinstance(event_id, str):
            if event_id in self._event_ids:
                self.duplicates += 1
                return []
            self._event_ids.add(event_id)
        kind = str(doc.get("kind"))
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        matched = None
        for outcome in self.outcomes:
            if (
                outcome.arrived_at is None
                and outcome.driven_at is not None
                and at >= outcome.driven_at
                and outcome.expect.matches(doc)
            ):
                outcome.arrived_at = at
                matched = outcome
                break
        row = self.rows.get(str(doc.get("node")))
        if row is not None and doc.get("detail") == "offline" and row.heard:
            row.online = kind != "fault"  # supervision's word, before the next state message
        arrival = Arrival(at, doc, matched)
        self.arrivals.append(arrival)
        return [f"upstream  {event_text(arrival)}"]

    def _state(self, doc: dict[str, Any]) -> list[str]:
        row = self.rows.get(str(doc.get("node")))
        if row is None:
            return []
        before = (row.heard, row.link, row.state)
        row.heard = True
        row.online = bool(doc.get("online"))
        row.status = tuple(map(str, doc.get("status") or ()))
        row.sources = tuple(map(str, doc.get("sources") or ()))
        row.faults = tuple(map(str, doc.get("faults") or ()))
        readings = doc.get("readings") or {}
        if readings:
            row.readings = {
                name: _number(readings.get(name, {}).get("value")) for name, _, _ in READINGS
            }
        if not before[0] or (row.link, row.state) == before[1:]:
            return []
        return [f"node      {row.name:<8} {row.link:<8} {row.state}"]

    # --- questions ------------------------------------------------------------------------

    def all_online(self) -> bool:
        return all(row.heard and row.online for row in self.rows.values())

    def outstanding(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.arrived_at is None]

    def unscripted_alarms(self) -> list[Arrival]:
        return [a for a in self.arrivals if a.outcome is None and a.event.get("kind") == "alarm"]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def event_text(arrival: Arrival) -> str:
    e = arrival.event
    what = str(e.get("source") or "")
    if e.get("detail"):
        what += f" ({e['detail']})"
    value = e.get("value")
    reading = f"{value:g} {e.get('unit', '')}" if isinstance(value, (int, float)) else ""
    text = f"{e.get('kind')!s:<13} {e.get('node')!s:<8} {what:<18} {reading:<12}"
    outcome = arrival.outcome
    if outcome is not None and outcome.latency is not None:
        text += f" latency {outcome.latency:5.2f} s (bound {outcome.expect.bound_s:g} s)"
    return text.rstrip()


def node_table(picture: Picture, limit: int | None = None) -> list[str]:
    """The header and a line per node; with more nodes than limit lines, the nodes with
    something to show (not online and normal) first, and a line counting the others."""
    head = f"{'NODE':<8} {'HOUSE':<20} {'LINK':<8} {'STATE':<22}"
    head += "".join(f" {title:>9}" for _, title, _ in READINGS)
    rows = list(picture.rows.values())
    hidden = 0
    if limit is not None and len(rows) > limit:
        quiet = [r for r in rows if r.link == "online" and r.state == "normal"]
        busy = [r for r in rows if r not in quiet]
        shown = {id(r) for r in (busy + quiet)[: max(0, limit - 1)]}
        hidden = len(rows) - len(shown)
        rows = [r for r in rows if id(r) in shown]
    lines = [head]
    for row in rows:
        line = f"{row.name:<8} {row.house:<20} {row.link:<8} {row.state:<22}"
        line += "".join(f" {_fmt(row.readings.get(name), spec):>9}" for name, _, spec in READINGS)
        lines.append(line)
    if hidden:
        lines.append(f"... and {hidden} more nodes, online and normal")
    return lines


def frame(picture: Picture, now: float, header: str, width: int, height: int) -> list[str]:
    """The live table for a terminal of width x height: header, nodes, the story so far and
    the events upstream (the newest that fit)."""
    # Room for the events (at least 6 lines with their titles) before all the nodes.
    limit = max(3, height - 1 - 2 - 1 - 1 - 8)
    status = f"gateway {picture.gateway_status or '-'}"
    lines = [header, f"story {picture.rel(now):6.1f} s   {status}", *node_table(picture, limit), ""]
    story = [f"{_seconds(picture.rel(at))}  {text}" for at, text in picture.story]
    events = [f"{_seconds(picture.rel(a.at))}  {event_text(a)}" for a in picture.arrivals]
    room = max(2, height - len(lines) - 3)
    story_room = min(len(story), max(1, room // 2))
    event_room = max(1, room - story_room)
    lines += ["STORY", *(story[-story_room:] if story else ["  (not started)"])]
    lines += ["UPSTREAM (events at the centre)", *(events[-event_room:] or ["  (none yet)"])]
    return [line[: max(1, width - 1)] for line in lines[: max(1, height - 1)]]


def summary(picture: Picture) -> tuple[list[str], bool]:
    """The summary lines, and whether every scripted event arrived within its bound."""
    lines = [
        "Summary: each scripted event at the centre (latency: from the script driving the "
        "input to the message at the subscriber)",
        f"  {'scripted event':<28} {'arrived':<8} {'latency':>9}  {'bound':<44} verdict",
    ]
    for o in picture.outcomes:
        arrived = "yes" if o.arrived_at is not None else "no"
        latency = "-" if o.latency is None else f"{o.latency:.2f} s"
        lines.append(
            f"  {o.expect.label:<28} {arrived:<8} {latency:>9}  {o.expect.bound_text:<44} "
            f"{o.verdict}"
        )
    good = [o for o in picture.outcomes if o.verdict == "ok"]
    ok = len(good) == len(picture.outcomes)
    alarms = [
        o.latency
        for o in picture.outcomes
        if o.latency is not None and o.expect.bound_s == ALARM_BOUND_S
    ]
    lines.append(f"  {len(good)} of {len(picture.outcomes)} scripted events arrived in time")
    if alarms:
        lines.append(
            f"  alarms against EN 54-2's {ALARM_BOUND_S:g} s: slowest {max(alarms):.2f} s, "
            f"fastest {min(alarms):.2f} s"
        )
    others = picture.unscripted_alarms()
    if others:
        names = ", ".join(f"{a.event.get('node')} {a.event.get('source')}" for a in others)
        # A false alarm is the next worst thing after a lost one: it fails the demo too.
        lines.append(f"  FALSE ALARM: {len(others)} alarm(s) nobody scripted: {names}")
        ok = False
    else:
        lines.append("  no alarm that the script did not cause")
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(picture.kinds.items()))
    again = f" (and {picture.duplicates} received twice)" if picture.duplicates else ""
    lines.append(f"  every event at the centre, by kind: {kinds or 'none'}{again}")
    return lines, ok
