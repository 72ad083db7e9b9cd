"""What flows through the gateway: node readings and events in, alerts and messages out.

    bus poll / push link --Sample, NodeEvent--> rule core --Alert--> outbox --> MQTT uplink

Everything here is an immutable value with an injected time (`at`, monotonic seconds from the
gateway's clock), so the rule core and the tests never read a clock themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from protocol import registers as r


class Priority(IntEnum):
    """Upstream order (docs/mqtt.md): alarms before faults before telemetry."""

    ALARM = 0
    FAULT = 1
    TELEMETRY = 2


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a node's status block (registers STATUS..SUPPLY), from a poll or a push
    heartbeat. Values in their units (docs/registers.md)."""

    node: str  # the node's name in the gateway config
    at: float  # monotonic seconds
    status: int
    sources: int  # ALARM_SOURCES bits (codes.SRC_*)
    faults: int  # FAULTS bits (codes.FAULT_*)
    event_seq: int
    smoke_pct_m: float
    leakage_ma: int
    temperature_c: float
    supply_v: float

    @classmethod
    def from_block(cls, node: str, at: float, regs: Sequence[int]) -> Sample:
        """From the 8 status-block registers as read (raw 16-bit words)."""
        if len(regs) != r.STATUS_BLOCK_LEN:
            raise ValueError(f"a status block is {r.STATUS_BLOCK_LEN} registers, got {len(regs)}")
        temperature = regs[6] - 0x10000 if regs[6] >= 0x8000 else regs[6]
        return cls(
            node=node,
            at=at,
            status=regs[0],
            sources=regs[1],
            faults=regs[2],
            event_seq=regs[3],
            smoke_pct_m=regs[4] / 100,
            leakage_ma=regs[5],
            temperature_c=temperature / 10,
            supply_v=regs[7] / 1000,
        )


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """An event a node reported itself (a push EVENT frame; docs/protocol.md, Events)."""

    node: str
    at: float
    code: int  # codes.EV_*
    source: int  # codes.SRC_*
    detail: int
    status: int
    value: int  # raw, scaled as the source's register
    uptime_s: int


@dataclass(frozen=True, slots=True)
class Silent:
    """Nothing heard from a node at `at` (a poll timed out, or no push frame): supervision."""

    node: str
    at: float


# Alert kinds the rule core raises (the `kind` field upstream; docs/mqtt.md).
ALERT_KINDS = (
    "alarm",  # a source in alarm, verified as its rules require
    "pre_alarm",
    "restore",  # an alarm or pre-alarm source back to normal
    "fault",  # a FAULTS bit set, or "offline" (supervision)
    "fault_restore",
    "test",  # self-test result
    "button",  # a short press of the manual button (walk tests)
    "silenced",
)


@dataclass(frozen=True, slots=True)
class Alert:
    """Something the centre must hear about, as decided by the rule core."""

    kind: str  # one of ALERT_KINDS
    node: str
    house: str
    zone: str
    source: str  # protocol.names.SOURCES value, or "node"
    detail: str  # fault name (protocol.names.FAULTS), "offline", "" when none
    value: float | None  # the reading behind it, in `unit`
    unit: str
    at: float  # monotonic seconds when the rule core decided
    priority: Priority
    test: bool = False  # raised in walk-test mode: never a real alarm
