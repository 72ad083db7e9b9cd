"""What the rule core keeps per node, and the protocol/ tables it reads a node's words with.

Sources and faults are bit numbers (codes.SRC_*, codes.FAULT_*), so per-node state is small
lists indexed by them; names come from protocol.names, units and scales from the register map.
"""

from __future__ import annotations

from protocol import codes as c
from protocol import names
from protocol import registers as r

from ..model import Sample
from .debounce import AlarmDebounce
from .spec import READINGS, DebounceSpec, NodeInfo
from .thresholds import Measure
from .verify import Verifier

N_SOURCES = len(names.SOURCES)  # ALARM_SOURCES bits 0..5
N_FAULTS = len(names.FAULTS)  # FAULTS bits 0..7
SRC_MASK = (1 << N_SOURCES) - 1
FAULT_MASK = (1 << N_FAULTS) - 1
SOURCE = tuple(names.SOURCES[i] for i in range(N_SOURCES))
FAULT = tuple(names.FAULTS[b] for b in range(N_FAULTS))
NODE = names.SOURCES[c.SRC_NODE]

# The Sample field and unit behind each source (None: the node, the button).
_FIELD_OF = {source: field for field, (source, _) in READINGS.items()}
SRC_FIELD = tuple(_FIELD_OF.get(name) for name in SOURCE)
SRC_UNIT = tuple(READINGS[f][1] if f else "" for f in SRC_FIELD)


def _row(register: int) -> tuple[int, ...]:
    row = names.row(register)
    if row is None:  # only if registers.py lost a register this module names
        raise LookupError(f"no register 0x{register:04x}")
    return row


# An event's value is raw, scaled as its source's register (docs/protocol.md).
_SCALE_REG = {
    c.SRC_SMOKE: r.SMOKE,
    c.SRC_LEAKAGE: r.LEAKAGE,
    c.SRC_TEMPERATURE: r.TEMPERATURE,
    c.SRC_SUPPLY: r.SUPPLY,
}
SRC_SCALE = tuple(_row(_SCALE_REG[i])[3] if i in _SCALE_REG else 0 for i in range(N_SOURCES))
# The sensor each fault bit belongs to, as the firmware reports it; the rest are the node's.
_FAULT_SRC_CODE = {
    c.FAULT_SMOKE_DIRTY: c.SRC_SMOKE,
    c.FAULT_SMOKE_INPUT: c.SRC_SMOKE,
    c.FAULT_CT_OPEN: c.SRC_LEAKAGE,
    c.FAULT_TEMP_SENSOR: c.SRC_TEMPERATURE,
    c.FAULT_LOW_SUPPLY: c.SRC_SUPPLY,
}
FAULT_SRC = tuple(_FAULT_SRC_CODE.get(b, c.SRC_NODE) for b in range(N_FAULTS))
# Pre-alarm sources against their default thresholds (registers.py), to name the source of a
# polled pre-alarm: the node's own thresholds may differ, the ranking rarely does.
PRE_LEVELS = tuple(
    (src, SRC_FIELD[src], row[7] / row[3])
    for src, row in (
        (c.SRC_SMOKE, _row(r.SMOKE_PRE_ALARM)),
        (c.SRC_LEAKAGE, _row(r.LEAKAGE_PRE_ALARM)),
    )
)


class NodeState:
    """What the core keeps per node."""

    __slots__ = (
        "fault_busy",
        "fault_db",
        "faults",
        "faultw",
        "fknown",
        "house",
        "index",
        "known",
        "last",
        "level",
        "measure_busy",
        "measures",
        "name",
        "pre_busy",
        "pre_db",
        "pre_src",
        "pushed",
        "seq",
        "silenced",
        "sources",
        "src_busy",
        "src_db",
        "src_on",
        "stale",
        "status",
        "verify",
        "zone",
    )

    def __init__(self, index: int, info: NodeInfo, d: DebounceSpec) -> None:
        self.index = index
        self.name, self.house, self.zone = info.name, info.house, info.zone
        self.last: Sample | None = None  # the last sample taken
        self.status = self.sources = self.faultw = self.seq = 0  # its words
        self.pushed = 0  # events received since it
        self.stale = False
        self.level = [0] * N_SOURCES  # per source, as told upstream: 0, 1 pre-alarm, 2 alarm
        self.known = 0  # sources whose level a sample or an event has told
        # on_s never delays the manual call point: a person pressed it (and held it 0.5 s).
        self.src_db = [
            AlarmDebounce(0.0 if i == c.SRC_BUTTON else d.on_s, d.off_s, d.restore_n, d.restore_m)
            for i in range(N_SOURCES)
        ]
        self.verify: list[Verifier | None] = [None] * N_SOURCES
        self.src_on = 0  # sources whose debounced bit is on
        self.src_busy = 0  # sources with a timer running or an alarm held for verification
        self.pre_db = AlarmDebounce(d.on_s, d.off_s, d.restore_n, d.restore_m)
        self.pre_src = -1  # the source carrying a pre-alarm raised from samples
        self.pre_busy = False
        self.faults = 0  # fault bits as told upstream
        self.fknown = 0
        self.fault_db = [
            AlarmDebounce(d.on_s, d.off_s, d.restore_n, d.restore_m) for _ in range(N_FAULTS)
        ]
        self.fault_busy = 0
        self.silenced = False
        self.measures: list[Measure] = []
        self.measure_busy = False
