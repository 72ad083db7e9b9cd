"""The rule core: debounce, verification, coincidence, supervision and measurement rules,
from node samples and events to alerts. Pure functions and small state machines: no I/O,
no clock (time comes in with every input and with tick(at)).

    spec = parse_rules(config["rules"])            # RuleError names the key and the fix
    core = compile_rules(spec, {n.name: n for n in nodes})
    alerts = core.sample(s) + core.event(e) + core.silent(x) + core.tick(now)
"""

from .build import compile_rules
from .core import COUNTERS, RuleCore
from .debounce import AlarmDebounce, DelayedOnOff, Hysteresis, NOfM, RateOfRise, threshold
from .spec import (
    CoincidenceSpec,
    DebounceSpec,
    MeasureSpec,
    NodeInfo,
    RuleError,
    RuleSpec,
    VerifySpec,
    parse_rules,
)
from .verify import Verifier

__all__ = [
    "COUNTERS",
    "AlarmDebounce",
    "CoincidenceSpec",
    "DebounceSpec",
    "DelayedOnOff",
    "Hysteresis",
    "MeasureSpec",
    "NOfM",
    "NodeInfo",
    "RateOfRise",
    "RuleCore",
    "RuleError",
    "RuleSpec",
    "Verifier",
    "VerifySpec",
    "compile_rules",
    "parse_rules",
    "threshold",
]
