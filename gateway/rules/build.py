"""compile_rules: a validated RuleSpec and the config's nodes into a RuleCore, once, at start.

Everything that can be wrong with the combination (a rule naming an unknown node, a source
verified twice, two rules of one name on a node, a supervision timeout past the 100 s fault
budget) is a RuleError here, before any I/O, so nothing is checked per event.
"""

from __future__ import annotations

from collections.abc import Mapping

from .coincidence import Coincidence
from .core import RuleCore
from .node import SOURCE, NodeState
from .spec import SUPERVISION_MAX_S, NodeInfo, RuleSpec, fail
from .supervision import Supervisor
from .thresholds import measure
from .verify import Verifier


def _targets(wanted: tuple[str, ...], index: Mapping[str, int], path: str) -> list[int]:
    if not wanted:
        return list(index.values())
    for name in wanted:
        if name not in index:
            fail(path, f"no node named {name!r}", "use a node name from the config's nodes")
    return [index[name] for name in wanted]


def compile_rules(spec: RuleSpec, nodes: Mapping[str, NodeInfo], where: str = "rules") -> RuleCore:
    """Build the rule core for these nodes (keyed by name, in config order); RuleError when
    the rules name unknown nodes, verify a source twice or give a node two rules of one name,
    or a node's supervision_s is not below 100 s."""
    states: list[NodeState] = []
    index: dict[str, int] = {}
    for key, info in nodes.items():
        if key != info.name:
            fail(f"nodes.{key}", f"its NodeInfo is named {info.name!r}", "key nodes by name")
        if not 0 < info.supervision_s < SUPERVISION_MAX_S:
            fail(
                f"nodes.{key}.supervision_s",
                f"{info.supervision_s!r} s is not above 0 and below 100 s "
                "(a fault must show within 100 s)",
                "set it below 100, e.g. 60",
            )
        index[key] = len(states)
        states.append(NodeState(len(states), info, spec.debounce))
    for vi, vs in enumerate(spec.verify):
        path = f"{where}.verify[{vi}]"
        for k in _targets(vs.nodes, index, f"{path}.nodes"):
            n = states[k]
            for source in vs.sources:
                i = SOURCE.index(source)
                if n.verify[i] is not None:
                    fail(
                        f"{path}.sources",
                        f"{source!r} of node {n.name!r} is verified twice",
                        "verify each source of a node in one [[rules.verify]]",
                    )
                n.verify[i] = Verifier(vs.retard_s, vs.confirm_s)
    seen: list[dict[str, int]] = [{} for _ in states]
    for mi, ms in enumerate(spec.measure):
        path = f"{where}.measure[{mi}]"
        for k in _targets(ms.nodes, index, f"{path}.nodes"):
            earlier = seen[k].setdefault(ms.name, mi)
            if earlier != mi:
                fail(
                    f"{path}.name",
                    f"{where}.measure[{earlier}] already gives node "
                    f"{states[k].name!r} a rule named {ms.name!r}",
                    "name each rule apart",
                )
            states[k].measures.append(measure(ms))
    co = None
    if spec.coincidence is not None:
        scope = spec.coincidence.scope
        groups: dict[str, int] = {}
        of = []
        for info in nodes.values():
            key = info.house if scope == "house" else info.zone
            of.append(groups.setdefault(key, len(groups)) if key else -1)
        co = Coincidence(spec.coincidence.window_s, of)
    supervisor = Supervisor([info.supervision_s for info in nodes.values()])
    return RuleCore(states, supervisor, co)
