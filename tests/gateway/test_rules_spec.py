"""The [rules] table: defaults, the documented example, and every error naming key and fix."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from gateway.rules import (
    CoincidenceSpec,
    DebounceSpec,
    MeasureSpec,
    NodeInfo,
    RuleError,
    RuleSpec,
    VerifySpec,
    compile_rules,
    parse_rules,
    spec,
)

from .rules_kit import nodes


def test_an_empty_table_is_the_defaults_no_verification_no_delay() -> None:
    got = parse_rules({})
    assert got == RuleSpec()
    assert got.debounce == DebounceSpec(on_s=0.0, off_s=5.0, restore_n=2, restore_m=3)
    assert got.verify == () and got.coincidence is None and got.measure == ()


def test_the_documented_example_parses() -> None:
    doc = spec.__doc__ or ""
    text = "\n".join(line[4:] for line in doc.splitlines() if line.startswith("    "))
    got = parse_rules(tomllib.loads(text)["rules"])
    assert got.debounce == DebounceSpec(0.0, 5.0, 2, 3)
    assert got.verify == (VerifySpec(("smoke",), 10.0, 60.0, ("n17",)),)
    assert got.coincidence == CoincidenceSpec("house", 120.0)
    leak, supply, heat = got.measure
    assert leak == MeasureSpec("leakage-high", "leakage_ma", "alarm", "above", 500, 450, 60.0, 2, 2)
    assert supply == MeasureSpec("supply_v-below", "supply_v", "fault", "below", 10.8, 11.1)
    assert heat.mode == "rate" and heat.level == heat.release == 9 and heat.window_s == 60


def test_supervision_s_is_accepted_and_left_to_the_config() -> None:
    assert parse_rules({"supervision_s": 45}) == RuleSpec()


def test_small_variants() -> None:
    got = parse_rules(
        {
            "debounce": {"off_s": 0, "restore_n": 1, "restore_m": 1, "on_s": 2},
            "coincidence": {"scope": "zone"},
            "measure": [
                {"reading": "leakage_ma", "above": 400, "release": 380, "kind": "pre_alarm"},
                {"reading": "supply_v", "below": 10.5, "kind": "fault", "for_s": 30, "off_s": 60},
            ],
        },
        where="site.rules",
    )
    assert got.debounce == DebounceSpec(2.0, 0.0, 1, 1)
    assert got.coincidence == CoincidenceSpec("zone", 120.0)
    assert got.measure[0].release == 380 and got.measure[0].name == "leakage_ma-above"
    assert got.measure[1].release == 10.5 and got.measure[1].off_s == 60


ALARM = {"reading": "leakage_ma", "kind": "alarm"}
ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown-key", {"verifiy": []}, "rules.verifiy: unknown key", "use one of supervision_s"),
    ("debounce-not-table", {"debounce": 5}, "rules.debounce: expected a table", "TOML table"),
    ("debounce-key", {"debounce": {"of_s": 5}}, "rules.debounce.of_s: unknown key", "off_s"),
    ("on-too-long", {"debounce": {"on_s": 11}}, "rules.debounce.on_s: 11 is outside 0..10", ""),
    ("bool-number", {"debounce": {"off_s": True}}, "rules.debounce.off_s: expected a number", ""),
    ("nan", {"debounce": {"off_s": float("nan")}}, "off_s: expected a number", ""),
    ("n-over-m", {"debounce": {"restore_n": 3, "restore_m": 2}}, "restore_n: 3 is more", "n <= m"),
    ("n-fraction", {"debounce": {"restore_n": 1.5}}, "restore_n: 1.5 is not a whole", "count"),
    ("verify-table", {"verify": {"sources": ["smoke"]}}, "rules.verify: expected an array", ""),
    ("verify-button", {"verify": [{"sources": ["button"], "retard_s": 5}]},
     "rules.verify[0].sources: the manual button is never verified", "remove 'button'"),
    ("verify-unknown", {"verify": [{"sources": ["fog"], "retard_s": 5}]},
     "'fog' is not a source", "use smoke, leakage, temperature"),
    ("verify-empty", {"verify": [{"sources": [], "retard_s": 5}]}, "sources: missing", ""),
    ("verify-twice", {"verify": [{"sources": ["smoke", "smoke"], "retard_s": 5}]},
     "sources: a name appears twice", "list each once"),
    ("retard-missing", {"verify": [{"sources": ["smoke"]}]}, "retard_s: missing", "0.1 to 60"),
    ("retard-long", {"verify": [{"sources": ["smoke"], "retard_s": 61}]},
     "rules.verify[0].retard_s: 61 is outside 0.1..60", "set it from 0.1 to 60"),
    ("confirm-short", {"verify": [{"sources": ["smoke"], "retard_s": 5, "confirm_s": 30}]},
     "confirm_s: 30 is outside 60..3600", ""),
    ("nodes-not-names", {"verify": [{"sources": ["smoke"], "retard_s": 5, "nodes": "a"}]},
     "nodes: expected a list of names", ""),
    ("scope", {"coincidence": {"scope": "street"}}, "scope: 'street' is not known", "'house'"),
    ("window", {"coincidence": {"window_s": 0}}, "window_s: 0 is outside 1..3600", ""),
    ("measure-reading", {"measure": [{"reading": "noise", "above": 1, "kind": "alarm"}]},
     "rules.measure[0].reading: 'noise' is not known", "'leakage_ma'"),
    ("measure-kind", {"measure": [{"reading": "leakage_ma", "above": 1}]}, "kind: missing", ""),
    ("no-condition", {"measure": [ALARM]}, "rules.measure[0]: no condition", "rate_per_min"),
    ("rate-and-level", {"measure": [ALARM | {"rate_per_min": 9, "above": 5}]},
     "measure[0].above: a rate rule has no level", ""),
    ("window-on-level", {"measure": [ALARM | {"above": 5, "window_s": 60}]},
     "window_s: only rate rules", ""),
    ("release-above", {"measure": [ALARM | {"above": 500, "below": 550}]},
     "measure[0].below: 550 is above the threshold 500", "at or below `above`"),
    ("below-and-release", {"measure": [ALARM | {"above": 500, "below": 450, "release": 400}]},
     "release: `below` already sets", ""),
    ("release-below", {"measure": [ALARM | {"below": 10, "release": 9}]},
     "release: 9 is below the threshold 10", "at or above `below`"),
    ("alarm-for-long", {"measure": [ALARM | {"above": 500, "for_s": 31}]},
     "for_s: 31 is outside 0..30", ""),
    ("fault-for-long", {"measure": [ALARM | {"kind": "fault", "above": 500, "for_s": 91}]},
     "for_s: 91 is outside 0..90", ""),
    ("name", {"measure": [ALARM | {"above": 500, "name": ""}]}, "name: expected a name", ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("table", "problem", "fix"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors_name_the_key_and_the_fix(table: dict[str, Any], problem: str, fix: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules(table)
    assert problem in str(caught.value)
    assert fix in str(caught.value).partition(";")[2]
    assert isinstance(caught.value, ValueError)


def test_where_prefixes_every_path() -> None:
    with pytest.raises(RuleError, match=r"^gw\.rules\.verify\[0\]\.retard_s: missing"):
        parse_rules({"verify": [{"sources": ["smoke"]}]}, where="gw.rules")
    with pytest.raises(RuleError, match=r"^rules: expected a table"):
        parse_rules([])  # type: ignore[arg-type]


COMPILE_ERRORS: list[tuple[str, dict[str, Any], dict[str, NodeInfo], str]] = [
    ("verify-unknown-node", {"verify": [{"sources": ["smoke"], "retard_s": 5, "nodes": ["x"]}]},
     nodes("a"), "rules.verify[0].nodes: no node named 'x'"),
    ("verify-twice", {"verify": [{"sources": ["smoke"], "retard_s": 5},
                                 {"sources": ["leakage", "smoke"], "retard_s": 9, "nodes": ["a"]}]},
     nodes("a"), "rules.verify[1].sources: 'smoke' of node 'a' is verified twice"),
    ("measure-unknown-node", {"measure": [ALARM | {"above": 5, "nodes": ["a", "q"]}]},
     nodes("a"), "rules.measure[0].nodes: no node named 'q'"),
    ("measure-same-name", {"measure": [ALARM | {"above": 5, "name": "x"},
                                       ALARM | {"above": 9, "name": "x", "nodes": ["b"]}]},
     nodes("a", "b"), "rules.measure[1].name: rules.measure[0] already gives node 'b'"),
    ("supervision", {}, nodes("a", supervision_s=100), "nodes.a.supervision_s: 100 s"),
    ("supervision-zero", {}, nodes("a", supervision_s=0),
     "nodes.a.supervision_s: 0 s is not above 0"),
    ("misnamed", {}, {"a": NodeInfo("b", "h", "z")}, "nodes.a: its NodeInfo is named 'b'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("table", "infos", "message"),
    [e[1:] for e in COMPILE_ERRORS],
    ids=[e[0] for e in COMPILE_ERRORS],
)
def test_compile_errors(table: dict[str, Any], infos: dict[str, NodeInfo], message: str) -> None:
    with pytest.raises(RuleError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        compile_rules(parse_rules(table), infos)


def test_one_name_on_disjoint_nodes_is_fine() -> None:
    table = {"measure": [ALARM | {"above": 5, "name": "x", "nodes": ["a"]},
                         ALARM | {"above": 9, "name": "x", "nodes": ["b"]}]}  # fmt: skip
    compile_rules(parse_rules(table), nodes("a", "b"))
