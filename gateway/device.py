"""Devices: one per slave address on a bus, and the poll plan of one cycle.

The middle layer of bus / device / point (../shared/STYLE.md, lesson 8). A Device holds what the
poller knows about one node (its last reading, identity, counters), its statistics, and its
offline state with back-off, so a dead node costs the bus one response timeout now and then
instead of one every cycle (../shared/DOMAIN.md: "a silent node costs a whole response
timeout"). No I/O and no clock here: the bus passes `now` in, so the plan is tested alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gateway.backoff import Backoff
from gateway.model import Sample
from gateway.points import Counters, Identity, in_alarm


@dataclass(slots=True)
class DeviceStats:
    """Per-node counts since the gateway started; `at` values are monotonic seconds."""

    polls: int = 0  # transactions sent to the node (status, identity, counters, commands)
    answers: int = 0  # well-formed replies
    timeouts: int = 0  # no reply at all within the response timeout
    errors: int = 0  # a garbled reply, a Modbus exception or a reply of the wrong size
    last_seen: float | None = None  # the last well-formed reply
    last_error: str = ""


class Device:
    """One node at one slave address.

    Online, its status block is read every cycle. After `offline_after` failed status reads in
    a row it is offline: it is then retried only when its back-off (jittered, capped at
    `backoff.cap_s`) has run out. The cap bounds how late the first reading of a fire at a node
    that was off the bus (or lost two reads to noise) can be, so the configuration keeps it to
    a few seconds (config.MAX_OFFLINE_BACKOFF_S). A node whose last reading
    showed an alarm or pre-alarm is read every cycle whatever its state: a node in a fire may
    stop answering, and the first answer after that must not wait for a back-off.
    """

    def __init__(
        self,
        name: str,
        address: int,
        *,
        backoff: Backoff,
        measure_every: int = 10,
        offline_after: int = 2,
        phase: int = 0,
    ) -> None:
        if not 1 <= address <= 247:
            raise ValueError(f"node {name}: address {address} is not a slave address (1..247)")
        if measure_every < 1 or offline_after < 1:
            raise ValueError(f"node {name}: measure_every and offline_after must be >= 1")
        self.name = name
        self.address = address
        self.measure_every = measure_every
        self.offline_after = offline_after
        self.phase = phase  # spreads identity/counters reads over cycles
        self.backoff = backoff
        self.offline = False
        self.failures = 0  # consecutive failed status reads
        self.retry_at = 0.0  # offline: not before this (monotonic seconds)
        self.sample: Sample | None = None
        self.event_seq: int | None = None
        self.identity: Identity | None = None
        self.counters: Counters | None = None
        self.problem: str | None = None  # an identity that is not a readable Firelane node
        self.stats = DeviceStats()

    @property
    def urgent(self) -> bool:
        """Read every cycle, offline or not: its last reading showed an alarm or pre-alarm."""
        return in_alarm(self.sample)

    def answered(self, now: float, sample: Sample) -> bool:
        """A status read succeeded; True when this brings the node back online."""
        back = self.offline
        self.offline = False
        self.failures = 0
        self.backoff.reset()
        self.sample = sample
        self.event_seq = sample.event_seq
        self.stats.last_seen = now
        return back

    def failed(self, now: float) -> bool:
        """A status read failed (no reply, garbage, an exception); True when this takes the
        node offline."""
        self.failures += 1
        if self.offline:
            self.retry_at = now + self.backoff.next()
            return False
        if self.failures >= self.offline_after:
            self.offline = True
            self.retry_at = now + self.backoff.next()
            return True
        return False

    def measure_due(self, cycle: int) -> bool:
        """Whether to read identity and counters after this cycle's status read."""
        return self.identity is None or (cycle + self.phase) % self.measure_every == 0

    def snapshot(self) -> dict[str, Any]:
        """For `firelane status` and the gateway's own status message."""
        return {
            "name": self.name,
            "address": self.address,
            "offline": self.offline,
            "failures": self.failures,
            "status": None if self.sample is None else self.sample.status,
            "event_seq": self.event_seq,
            "node_id": None if self.identity is None else self.identity.node_id,
            "firmware": None if self.identity is None else self.identity.firmware,
            "problem": self.problem,
            **asdict(self.stats),
        }


def plan_cycle(devices: Sequence[Device], now: float, cycle: int) -> list[tuple[Device, bool]]:
    """The reads of one poll cycle, in order: (device, read identity and counters too).

    Nodes in alarm first (their status only), then every other online node, then every
    offline node whose back-off has run out, the longest overdue first. All of them: with one
    a cycle, a street of nodes that lost power together would be retried one per cycle, and
    the last one's alarm could wait for as many cycles as there are nodes.
    """
    urgent = [d for d in devices if d.urgent]
    steps = [(d, False) for d in urgent]
    steps += [(d, d.measure_due(cycle)) for d in devices if not d.urgent and not d.offline]
    due = [d for d in devices if d.offline and not d.urgent and d.retry_at <= now]
    steps += [(d, False) for d in sorted(due, key=lambda d: d.retry_at)]
    return steps


def next_retry(devices: Sequence[Device]) -> float | None:
    """When the earliest offline node is due (None when none is offline)."""
    waiting = [d.retry_at for d in devices if d.offline and not d.urgent]
    return min(waiting) if waiting else None
