"""The [rules] table of the gateway config, validated into frozen dataclasses.

    [rules]
    supervision_s = 60                 # the config's business (per node); accepted, ignored here
    debounce = {on_s = 0, off_s = 5, restore_n = 2, restore_m = 3}

    [[rules.verify]]                   # none by default: every alarm goes out at once
    sources = ["smoke"]                # smoke, leakage, temperature; never the manual button
    retard_s = 10                      # adds up to this much latency to a real fire
    confirm_s = 60
    nodes = ["n17"]                    # optional: default every node

    [rules.coincidence]
    scope = "house"                    # or "zone"
    window_s = 120

    [[rules.measure]]                  # a second opinion on a reading, from the gateway
    name = "leakage-high"              # the alert's detail; unique per node
    reading = "leakage_ma"             # leakage_ma, temperature_c, smoke_pct_m, supply_v
    above = 500                        # on at >= 500 ...
    below = 450                        # ... off below 450 (default: off below `above`)
    kind = "alarm"                     # alarm, pre_alarm or fault
    for_s = 2                          # must hold this long (off_s: to clear; default for_s)

    [[rules.measure]]
    reading = "supply_v"
    below = 10.8                       # `below` alone: on at <= 10.8 ...
    release = 11.1                     # ... off above 11.1
    kind = "fault"

    [[rules.measure]]
    reading = "temperature_c"
    rate_per_min = 9                   # rate of rise over window_s (default 60)
    kind = "alarm"

Every error is a RuleError naming the dotted key and what to do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from protocol import codes as c
from protocol import names
from protocol import registers as r


class RuleError(ValueError):
    """A [rules] table (or the nodes given to compile_rules) that cannot be used."""


def _unit(register: int) -> str:
    return str(names.describe(register)["unit"])


# Readings a measurement rule may watch (Sample fields): the source they belong to, their unit.
READINGS = {
    "smoke_pct_m": (names.SOURCES[c.SRC_SMOKE], _unit(r.SMOKE)),
    "leakage_ma": (names.SOURCES[c.SRC_LEAKAGE], _unit(r.LEAKAGE)),
    "temperature_c": (names.SOURCES[c.SRC_TEMPERATURE], _unit(r.TEMPERATURE)),
    "supply_v": (names.SOURCES[c.SRC_SUPPLY], _unit(r.SUPPLY)),
}
# Sources whose alarms may be verified: sensors, never the manual call point.
VERIFIABLE = tuple(names.SOURCES[s] for s in (c.SRC_SMOKE, c.SRC_LEAKAGE, c.SRC_TEMPERATURE))
MEASURE_KINDS = ("alarm", "pre_alarm", "fault")
SCOPES = ("house", "zone")

# Bounds, each with its reason (../shared/DOMAIN.md).
ALARM_S = 10.0  # fire alarm shown <= 10 s after the detector signals (EN 54-2)
RETARD_MAX_S = 60.0  # UL 864: retard (with reset and restart) at most 60 s
CONFIRM_MIN_S = 60.0  # UL 864: confirmation window at least 60 s
SUPERVISION_MAX_S = 100.0  # fault shown <= 100 s (EN 54-2; GB/T 45839-2025 5.5.1)
MEASURE_ALARM_FOR_MAX_S = 30.0  # residual-current detector response <= 30 s (GB 14287.2)
MEASURE_FAULT_FOR_MAX_S = 90.0  # inside the 100 s fault budget, with a poll to spare


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What the rule core needs to know about a node (from the gateway config)."""

    name: str
    house: str
    zone: str
    supervision_s: float = 60.0


@dataclass(frozen=True, slots=True)
class DebounceSpec:
    """The debounce of bits a node reports in its samples (debounce.AlarmDebounce). on_s
    delays every alarm by that much (none by default) but never the manual button's."""

    on_s: float = 0.0
    off_s: float = 5.0
    restore_n: int = 2
    restore_m: int = 3


@dataclass(frozen=True, slots=True)
class VerifySpec:
    sources: tuple[str, ...]
    retard_s: float
    confirm_s: float = CONFIRM_MIN_S
    nodes: tuple[str, ...] = ()  # empty: every node


@dataclass(frozen=True, slots=True)
class CoincidenceSpec:
    scope: str = "house"
    window_s: float = 120.0


@dataclass(frozen=True, slots=True)
class MeasureSpec:
    """mode "above": on at >= level, off below release; "below": on at <= level, off above
    release; "rate": on at a rise of >= level per minute over window_s, off below it."""

    name: str
    reading: str
    kind: str
    mode: str
    level: float
    release: float
    window_s: float = 60.0
    for_s: float = 0.0
    off_s: float = 0.0
    nodes: tuple[str, ...] = ()  # empty: every node


@dataclass(frozen=True, slots=True)
class RuleSpec:
    debounce: DebounceSpec = DebounceSpec()
    verify: tuple[VerifySpec, ...] = ()
    coincidence: CoincidenceSpec | None = None
    measure: tuple[MeasureSpec, ...] = ()


def fail(path: str, problem: str, fix: str) -> NoReturn:
    raise RuleError(f"{path}: {problem}; {fix}")


def _keys(table: Mapping[str, Any], path: str, allowed: Sequence[str]) -> None:
    for key in table:
        if key not in allowed:
            fail(f"{path}.{key}", "unknown key", "use one of " + ", ".join(allowed))


def _table(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        fail(path, f"expected a table, got {value!r}", "write it as a TOML table")
    return value


def _tables(value: object, path: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        fail(path, f"expected an array of tables, got {value!r}", f"write [[{path}]] sections")
    return [_table(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _number(
    table: Mapping[str, Any], key: str, path: str, default: float | None, lo: float, hi: float
) -> float:
    """A number in [lo, hi]; `default` when absent (None: required)."""
    where = f"{path}.{key}"
    if key not in table:
        if default is None:
            fail(where, "missing", f"set it to a number from {lo:g} to {hi:g}")
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        fail(where, f"expected a number, got {value!r}", f"write a number from {lo:g} to {hi:g}")
    if not lo <= value <= hi:
        fail(where, f"{value!r} is outside {lo:g}..{hi:g}", f"set it from {lo:g} to {hi:g}")
    return float(value)


def _choice(table: Mapping[str, Any], key: str, path: str, choices: Sequence[str]) -> str:
    value = table.get(key)
    if value not in choices:
        got = "missing" if value is None else f"{value!r} is not known"
        fail(f"{path}.{key}", got, "use one of " + ", ".join(repr(x) for x in choices))
    return str(value)


def _names(table: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    value = table.get(key, [])
    where = f"{path}.{key}"
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        fail(where, f"expected a list of names, got {value!r}", 'write e.g. ["n1", "n2"]')
    if len(set(value)) != len(value):
        fail(where, "a name appears twice", "list each once")
    return tuple(value)


def _debounce(value: object, path: str) -> DebounceSpec:
    t = _table(value, path)
    _keys(t, path, ("on_s", "off_s", "restore_n", "restore_m"))
    on_s = _number(t, "on_s", path, 0.0, 0.0, ALARM_S)
    off_s = _number(t, "off_s", path, 5.0, 0.0, 60.0)
    m = _number(t, "restore_m", path, 3, 1, 16)
    n = _number(t, "restore_n", path, min(2, m), 1, 16)
    for key, v in (("restore_m", m), ("restore_n", n)):
        if v != int(v):
            fail(f"{path}.{key}", f"{v:g} is not a whole number", "write a count of samples")
    if n > m:
        fail(f"{path}.restore_n", f"{n:g} is more than restore_m ({m:g})", "make n <= m")
    return DebounceSpec(on_s, off_s, int(n), int(m))


def _verify(t: Mapping[str, Any], path: str) -> VerifySpec:
    _keys(t, path, ("sources", "retard_s", "confirm_s", "nodes"))
    sources = _names(t, "sources", path)
    if not sources:
        fail(f"{path}.sources", "missing or empty", "list the sources to verify, e.g. ['smoke']")
    for s in sources:
        if s == names.SOURCES[c.SRC_BUTTON]:
            fail(
                f"{path}.sources",
                "the manual button is never verified (a person pressed it)",
                "remove 'button'",
            )
        if s not in VERIFIABLE:
            fail(f"{path}.sources", f"{s!r} is not a source", "use " + ", ".join(VERIFIABLE))
    retard = _number(t, "retard_s", path, None, 0.1, RETARD_MAX_S)
    confirm = _number(t, "confirm_s", path, CONFIRM_MIN_S, CONFIRM_MIN_S, 3600.0)
    return VerifySpec(sources, retard, confirm, _names(t, "nodes", path))


def _coincidence(value: object, path: str) -> CoincidenceSpec:
    t = _table(value, path)
    _keys(t, path, ("scope", "window_s"))
    scope = _choice(t, "scope", path, SCOPES) if "scope" in t else "house"
    return CoincidenceSpec(scope, _number(t, "window_s", path, 120.0, 1.0, 3600.0))


def _measure(t: Mapping[str, Any], path: str) -> MeasureSpec:
    allowed = (
        "name",
        "reading",
        "kind",
        "above",
        "below",
        "release",
        "rate_per_min",
        "window_s",
        "for_s",
        "off_s",
        "nodes",
    )
    _keys(t, path, allowed)
    reading = _choice(t, "reading", path, tuple(READINGS))
    kind = _choice(t, "kind", path, MEASURE_KINDS)
    big = 1e6
    window = 60.0
    if "rate_per_min" in t:
        for key in ("above", "below", "release"):
            if key in t:
                fail(f"{path}.{key}", "a rate rule has no level", "drop it or make two rules")
        mode = "rate"
        level = release = _number(t, "rate_per_min", path, None, 1e-6, big)
        window = _number(t, "window_s", path, 60.0, 1.0, 600.0)
    else:
        if "window_s" in t:
            fail(f"{path}.window_s", "only rate rules have a window", "drop it")
        if "above" in t:
            mode = "above"
            level = _number(t, "above", path, None, -big, big)
            if "below" in t and "release" in t:
                fail(f"{path}.release", "`below` already sets the release", "keep one of them")
            key = "below" if "below" in t else "release"
            release = _number(t, key, path, level, -big, big)
            if release > level:
                fail(
                    f"{path}.{key}",
                    f"{release:g} is above the threshold {level:g}",
                    "set the release level at or below `above`",
                )
        elif "below" in t:
            mode = "below"
            level = _number(t, "below", path, None, -big, big)
            release = _number(t, "release", path, level, -big, big)
            if release < level:
                fail(
                    f"{path}.release",
                    f"{release:g} is below the threshold {level:g}",
                    "set the release level at or above `below`",
                )
        else:
            fail(path, "no condition", "set `above`, `below` or `rate_per_min`")
    for_max = MEASURE_FAULT_FOR_MAX_S if kind == "fault" else MEASURE_ALARM_FOR_MAX_S
    for_s = _number(t, "for_s", path, 0.0, 0.0, for_max)
    off_s = _number(t, "off_s", path, for_s, 0.0, 3600.0)
    name = t.get("name", f"{reading}-{mode}")
    if not isinstance(name, str) or not name:
        fail(f"{path}.name", f"expected a name, got {name!r}", 'write e.g. "leakage-high"')
    return MeasureSpec(
        name, reading, kind, mode, level, release, window, for_s, off_s, _names(t, "nodes", path)
    )


def parse_rules(table: Mapping[str, Any], where: str = "rules") -> RuleSpec:
    """Validate the [rules] table (a parsed TOML mapping) into a RuleSpec; RuleError if not."""
    t = _table(table, where)
    _keys(t, where, ("supervision_s", "debounce", "verify", "coincidence", "measure"))
    debounce = _debounce(t["debounce"], f"{where}.debounce") if "debounce" in t else DebounceSpec()
    verify = tuple(
        _verify(v, f"{where}.verify[{i}]")
        for i, v in enumerate(_tables(t.get("verify", []), f"{where}.verify"))
    )
    coincidence = None
    if "coincidence" in t:
        coincidence = _coincidence(t["coincidence"], f"{where}.coincidence")
    measure = tuple(
        _measure(m, f"{where}.measure[{i}]")
        for i, m in enumerate(_tables(t.get("measure", []), f"{where}.measure"))
    )
    return RuleSpec(debounce, verify, coincidence, measure)
