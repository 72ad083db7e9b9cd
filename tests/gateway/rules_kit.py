"""Builders for the rule core tests: nodes, samples and events with readable defaults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.model import Alert, NodeEvent, Sample
from gateway.rules import NodeInfo, RuleCore, compile_rules, parse_rules
from protocol import codes as c
from protocol import registers as r

SMOKE = 1 << c.SRC_SMOKE
LEAKAGE = 1 << c.SRC_LEAKAGE
TEMPERATURE = 1 << c.SRC_TEMPERATURE
BUTTON = 1 << c.SRC_BUTTON


def nodes(
    *names: str, house: str = "h1", zone: str = "z1", supervision_s: float = 60.0
) -> dict[str, NodeInfo]:
    """Nodes in one house and zone; "name@house/zone" places one elsewhere."""
    out = {}
    for spec in names:
        name, _, where = spec.partition("@")
        h, _, z = where.partition("/")
        out[name] = NodeInfo(name, h or house, z or zone, supervision_s)
    return out


def core(
    rules: Mapping[str, Any] | None = None, infos: Mapping[str, NodeInfo] | None = None
) -> RuleCore:
    return compile_rules(parse_rules(rules or {}), infos or nodes("a", "b"))


def sample(
    node: str,
    at: float,
    sources: int = 0,
    faults: int = 0,
    status: int | None = None,
    seq: int = 0,
    smoke: float = 0.0,
    leakage: int = 100,
    temperature: float = 20.0,
    supply: float = 12.0,
) -> Sample:
    """A status block; STATUS follows the alarm and fault bits unless given."""
    if status is None:
        status = (r.ST_ALARM if sources else 0) | (r.ST_FAULT if faults else 0)
    return Sample(node, at, status, sources, faults, seq, smoke, leakage, temperature, supply)


def event(
    node: str, at: float, code: int, source: int = c.SRC_NODE, detail: int = 0, value: int = 0
) -> NodeEvent:
    return NodeEvent(node, at, code, source, detail, 0, value, 0)


def brief(alerts: Iterable[Alert]) -> list[tuple[str, str, str, str]]:
    """(kind, node, source, detail) of each alert, for readable comparisons."""
    return [(a.kind, a.node, a.source, a.detail) for a in alerts]
