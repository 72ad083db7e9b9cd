"""The commissioning report of a walk test: Markdown for people, CSV for the site's records.

One row per configured node: seen or not, each kind of activation tested or not, the last
measurements, the faults seen, and what is still to do. Pure functions of a WalkLog (plus what
the uplink says), so the wording is unit-tested (tests/installer/test_report.py).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

from installer.walklog import FAILED, KINDS, PARTLY, TESTED, NodeRecord, WalkLog
from protocol import names
from protocol import registers as r

# What to do about each fault (docs/registers.md, Faults).
FAULT_ADVICE = {
    "smoke_chamber_dirty": "clean or replace the detector",
    "smoke_input": "check the detector wiring",
    "ct_open_circuit": "check the current transformer's plug",
    "temperature_sensor": "check the temperature sensor",
    "low_supply": "check the power unit",
    "self_test_failed": "replace the node",
    "safe_mode": "read RESET_CAUSE and reflash the node",
    "config_invalid": "reflash the node's configuration (firelane node flash)",
}
HOW_TO_TEST = {
    "smoke": "hold the smoke tester (aerosol) to the detector until the node alarms",
    "leakage": "pass a test current above the leakage alarm threshold through the "
    "transformer (e.g. the RCD test button) until the node alarms",
    "temperature": "warm the sensor with a heat tester until the node alarms",
    "button": "press the manual call point (hold it 1 s), then reset it",
    "self_test": "send the node a self_test command from the centre",
}
CSV_FIELDS = (
    "node",
    "bus",
    "address",
    "house",
    "zone",
    "seen",
    "answers",
    "polls",
    *KINDS,
    "smoke_pct_m",
    "leakage_ma",
    "temperature_c",
    "supply_v",
    "faults_seen",
    "faults_present",
    "complete",
    "todo",
)


@dataclass(frozen=True)
class Upstream:
    """What the uplink did during the walk test."""

    connected: bool  # reached the broker at least once
    published: int
    pending: int  # messages still in the outbox (not yet at the broker)
    last_error: str | None = None


def todo(n: NodeRecord, required: tuple[str, ...]) -> list[str]:
    """What is still to do for node n, in the order to do it; empty when it is commissioned."""
    out: list[str] = []
    if not n.seen:
        return [
            f"never answered: check its power and the A/B wiring, and that it has address "
            f"{n.address} (find it with `firelane bus scan`)"
        ]
    if n.offline:
        out.append("went silent during the test: check its power and wiring")
    for kind in required:
        state = n.tested.get(kind)
        if state == TESTED:
            continue
        if state == PARTLY:
            out.append(f"{kind}: reached pre-alarm only: {HOW_TO_TEST[kind]}")
        elif state == FAILED:
            out.append(f"{kind}: failed: replace the node")
        else:
            out.append(f"{kind}: not tested: {HOW_TO_TEST[kind]}")
    for name in sorted(n.faults_present):
        out.append(f"fault {name}: {FAULT_ADVICE.get(name, 'see docs/registers.md, Faults')}")
    last = n.last
    if last is not None and last.status & r.ST_ALARM:
        on = [name for bit, name in names.SOURCES.items() if last.sources >> bit & 1]
        sources = ", ".join(on) or "unknown"
        out.append(
            f"still in alarm ({sources}) at the end: clear the cause and reset it (the call "
            "point latches until a reset_alarm command)"
        )
    return out


def complete(log: WalkLog) -> bool:
    """Whether every configured node is commissioned: nothing left to do."""
    return not any(todo(n, log.required) for n in log.nodes.values())


def _state(n: NodeRecord, kind: str) -> str:
    return n.tested.get(kind, "no")


def _measure(n: NodeRecord) -> tuple[str, str, str, str]:
    s = n.last
    if s is None:
        return ("", "", "", "")
    return (
        f"{s.smoke_pct_m:.2f}",
        f"{s.leakage_ma}",
        f"{s.temperature_c:.1f}",
        f"{s.supply_v:.2f}",
    )


def rows(log: WalkLog) -> list[dict[str, str]]:
    """One dict per configured node, keyed by CSV_FIELDS."""
    out = []
    for n in log.nodes.values():
        smoke, leakage, temperature, supply = _measure(n)
        left = todo(n, log.required)
        out.append(
            {
                "node": n.name,
                "bus": n.bus,
                "address": str(n.address),
                "house": n.house,
                "zone": n.zone,
                "seen": "yes" if n.seen else "no",
                "answers": str(n.answers),
                "polls": str(n.polls),
                **{k: _state(n, k) for k in KINDS},
                "smoke_pct_m": smoke,
                "leakage_ma": leakage,
                "temperature_c": temperature,
                "supply_v": supply,
                "faults_seen": " ".join(n.faults_seen),
                "faults_present": " ".join(sorted(n.faults_present)),
                "complete": "no" if left else "yes",
                "todo": "; ".join(left),
            }
        )
    return out


def render_csv(log: WalkLog) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(log))
    return buf.getvalue()


def render_markdown(log: WalkLog, upstream: Upstream | None = None) -> str:
    ended = log.ended if log.ended is not None else time.time()
    table = rows(log)
    done = sum(1 for row in table if row["complete"] == "yes")
    lines = [
        f"# Walk test: {log.site} (gateway {log.gateway_id})",
        "",
        f"- From {_utc(log.started)} to {_utc(ended)} ({(ended - log.started) / 60:.1f} min)",
        f"- Required per node: {', '.join(log.required)}",
        f"- Nodes commissioned: {done} of {len(table)}",
    ]
    if upstream is not None:
        state = "reached the broker" if upstream.connected else "NEVER reached the broker"
        lines.append(
            f"- Upstream: {state}; {upstream.published} messages published (every event marked "
            f"test); "
            f"{upstream.pending} still waiting in the outbox"
            + (f" (last error: {upstream.last_error})" if upstream.last_error else "")
        )
    lines += [
        "",
        "| node | address | house | zone | seen | "
        + " | ".join(KINDS)
        + " | smoke %/m | leakage mA | temp degC | supply V | faults seen |",
        "|---|---|---|---|---|" + "---|" * len(KINDS) + "---|---|---|---|---|",
    ]
    for row in table:
        cells = [
            row["node"],
            row["address"],
            row["house"],
            row["zone"],
            row["seen"],
            *(row[k] for k in KINDS),
            row["smoke_pct_m"],
            row["leakage_ma"],
            row["temperature_c"],
            row["supply_v"],
            row["faults_seen"] or "-",
        ]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    lines += ["", "## Still to do", ""]
    pending = [(n, todo(n, log.required)) for n in log.nodes.values()]
    pending = [(n, items) for n, items in pending if items]
    if not pending:
        lines.append("Nothing: every node answered and passed every required test.")
    for n, items in pending:
        lines.append(f"- **{n.name}** (address {n.address}, house {n.house}, zone {n.zone})")
        lines += [f"  - {item}" for item in items]
    return "\n".join(lines) + "\n"


def write(directory: Path, log: WalkLog, upstream: Upstream | None = None) -> tuple[Path, Path]:
    """report-<stamp>.md and .csv in directory (created); their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(log.started))
    base = directory / f"walktest-{log.gateway_id}-{stamp}"
    md, csv_path = base.with_suffix(".md"), base.with_suffix(".csv")
    md.write_text(render_markdown(log, upstream), encoding="utf-8")
    csv_path.write_text(render_csv(log), encoding="utf-8")
    return md, csv_path


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
