"""The demo's cast and script: which node plays which part, what the script does to its
sensors and when, and what the monitoring centre must then receive. Pure: no I/O, no clock.

The timeline is written for a story of NOMINAL_S seconds and scaled to `--duration` (by default
25 s: the offline fault, which waits for the gateway's supervision, then arrives just before
the end).

    at (of 30 s)  what                                     the centre must get
     1.0          smoke 3.5 %/m at the smoke node          alarm, source smoke
     3.5          leakage 150 mA at the leakage node       (nothing: below 240 mA)
     6.0          leakage 260 mA                           pre_alarm, source leakage
    12.0          leakage 360 mA                           alarm, source leakage
    15.0          the power node loses power               fault, detail offline (after the
                                                           gateway's supervision, 10-12 s)
    19.0          the call point at the button node:       alarm, source button
                  its glass broken, so it stays pressed

The story lasts its duration; an expected message still on its way then gets until its bound.

Latency is counted from the moment the script drives the input, so it includes the node's
own confirmation (smoke: 2 s above the threshold; leakage: LEAKAGE_ALARM_DELAY, 2 s; a call
point: held 0.5 s) as well as the bus, the gateway and the broker. The call point stays pressed
(a break-glass call point does, until it is reset with its key): a press the script released
after a second could fall between two looks of a node starved of CPU on a loaded machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NOMINAL_S = 30.0
DEFAULT_DURATION_S = 25.0
MIN_DURATION_S = 15.0  # leakage needs 2 s above each threshold, and a poll, between steps
MAX_DURATION_S = 600.0
MIN_NODES, MAX_NODES = 4, 32  # four parts to cast; a process per board (2 cores: ~16 at most)
ALARM_BOUND_S = 10.0  # EN 54-2: a fire alarm shown within 10 s of the detector signalling
FAULT_STANDARD_S = 100.0  # EN 54-2: a fault shown within 100 s
FAULT_MARGIN_S = 10.0  # offline fault: supervision, then a poll cycle and the uplink

STREET = "Lantern Lane"


@dataclass(frozen=True)
class Cast:
    """Node addresses playing each part."""

    smoke: int
    leakage: int
    power: int
    button: int


def cast(nodes: int) -> Cast:
    """Spread the four parts over nodes 1..nodes (distinct houses: one node per house)."""
    if not MIN_NODES <= nodes <= MAX_NODES:
        raise ValueError(f"nodes: {nodes} is outside {MIN_NODES}..{MAX_NODES}")
    return Cast(smoke=1, leakage=max(2, nodes // 2 - 1), power=nodes - nodes // 4, button=nodes)


def node_name(address: int) -> str:
    return f"node-{address}"


def house(address: int) -> str:
    return f"No. {address} {STREET}"


def zone(address: int, nodes: int) -> str:
    return "A" if address <= (nodes + 1) // 2 else "B"


@dataclass(frozen=True)
class Expect:
    """One message the centre must receive: an `event` of this node and kind (and source or
    detail, when given) within bound_s of the step that caused it."""

    key: str
    label: str
    node: str
    kind: str
    source: str | None
    detail: str | None
    bound_s: float
    bound_text: str

    def matches(self, event: dict[str, Any]) -> bool:
        return (
            event.get("node") == self.node
            and event.get("kind") == self.kind
            and (self.source is None or event.get("source") == self.source)
            and (self.detail is None or event.get("detail") == self.detail)
        )


@dataclass(frozen=True)
class Step:
    """At at_s into the story, send request to the control socket of the node at address."""

    at_s: float
    address: int
    request: dict[str, Any]
    text: str
    expects: tuple[Expect, ...] = field(default=())


def _alarm(key: str, label: str, node: str, kind: str, source: str) -> Expect:
    return Expect(
        key, label, node, kind, source, None, ALARM_BOUND_S, f"{ALARM_BOUND_S:g} s (EN 54-2)"
    )


def script(nodes: int, duration_s: float, supervision_s: float) -> list[Step]:
    """The steps of a story of duration_s seconds with `nodes` nodes, in time order."""
    if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
        raise ValueError(
            f"duration: {duration_s:g} s is outside {MIN_DURATION_S:g}..{MAX_DURATION_S:g}"
        )
    c = cast(nodes)
    k = duration_s / NOMINAL_S
    s, lk, pw, bt = (node_name(a) for a in (c.smoke, c.leakage, c.power, c.button))
    offline_bound = supervision_s + FAULT_MARGIN_S
    steps = [
        Step(
            1.0 * k,
            c.smoke,
            {"set": {"smoke_pct": 3.5}},
            f"smoke fire in {house(c.smoke)} ({s}): smoke 3.5 %/m (alarm at 2.4)",
            (_alarm("smoke-alarm", f"smoke alarm, {s}", s, "alarm", "smoke"),),
        ),
        Step(
            3.5 * k,
            c.leakage,
            {"set": {"leakage_ma": 150.0}},
            f"leakage current creeps up in {house(c.leakage)} ({lk}): 150 mA",
        ),
        Step(
            6.0 * k,
            c.leakage,
            {"set": {"leakage_ma": 260.0}},
            f"leakage rises in {house(c.leakage)} ({lk}): 260 mA (pre-alarm at 240)",
            (_alarm("leakage-pre-alarm", f"leakage pre-alarm, {lk}", lk, "pre_alarm", "leakage"),),
        ),
        Step(
            15.0 * k,
            c.power,
            {"power": "off"},
            f"{house(c.power)} ({pw}) loses power",
            (
                Expect(
                    "offline-fault",
                    f"offline fault, {pw}",
                    pw,
                    "fault",
                    None,
                    "offline",
                    offline_bound,
                    f"{offline_bound:g} s (supervision {supervision_s:g} s; "
                    f"EN 54-2: {FAULT_STANDARD_S:g} s)",
                ),
            ),
        ),
        Step(
            12.0 * k,
            c.leakage,
            {"set": {"leakage_ma": 360.0}},
            f"leakage rises in {house(c.leakage)} ({lk}): 360 mA (alarm at 300)",
            (_alarm("leakage-alarm", f"leakage alarm, {lk}", lk, "alarm", "leakage"),),
        ),
        Step(
            19.0 * k,
            c.button,
            {"set": {"button": True}},
            f"someone breaks the glass of the call point in {house(c.button)} ({bt})",
            (_alarm("button-alarm", f"call point alarm, {bt}", bt, "alarm", "button"),),
        ),
    ]
    return sorted(steps, key=lambda step: step.at_s)


def expectations(steps: list[Step]) -> list[Expect]:
    return [e for step in steps for e in step.expects]
