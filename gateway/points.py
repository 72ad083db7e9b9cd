"""Points: what a node's register words and push payloads mean, decoded by pure functions.

The third layer of bus / device / point (../shared/STYLE.md, lesson 8). No I/O and no clock:
the caller passes the words it read and the time it read them (`at`, monotonic seconds). The
register layout is docs/registers.md; the push payloads are docs/protocol.md, Push framing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from struct import unpack_from

from gateway.model import NodeEvent, Sample
from protocol import names, push
from protocol import registers as r

# What the poller reads (docs/registers.md, "Reading a node efficiently"): (address, count).
STATUS_READ = (r.STATUS, r.STATUS_BLOCK_LEN)  # every cycle: 8 registers, 21 bytes back
IDENTITY_READ = (r.DEVICE_TYPE, r.MAP_VERSION_REG - r.DEVICE_TYPE + 1)  # 6 registers
COUNTERS_READ = (r.UPTIME, r.QUEUE_DROPS - r.UPTIME + 1)  # 8 registers
LONGEST_READ = max(STATUS_READ[1], IDENTITY_READ[1], COUNTERS_READ[1])


@dataclass(frozen=True, slots=True)
class Identity:
    """The identity block (0x0000, 6 registers)."""

    device_type: int
    fw_version: int  # major << 8 | minor
    fw_patch: int
    node_id: int  # u32 serial number: the node's identity upstream
    map_version: int

    @property
    def firmware(self) -> str:
        return f"{self.fw_version >> 8}.{self.fw_version & 0xFF}.{self.fw_patch}"

    def problem(self) -> str | None:
        """Why this is not a node the gateway can read, with what to do; None when it is."""
        if self.device_type != r.DEVICE_TYPE_NODE:
            return (
                f"device type {self.device_type} is not a Firelane node "
                f"({r.DEVICE_TYPE_NODE}): check the address in the config"
            )
        if self.map_version != r.MAP_VERSION:
            return (
                f"register map version {self.map_version}, the gateway reads version "
                f"{r.MAP_VERSION}: update the gateway or the node's firmware"
            )
        return None


@dataclass(frozen=True, slots=True)
class Counters:
    """The counters block (0x0020, 8 registers). The 16-bit ones wrap."""

    uptime_s: int
    crc_errors: int
    frame_errors: int
    reset_count: int
    reset_cause: int  # codes.RESET_*
    boot_failures: int
    queue_drops: int

    @property
    def reset_cause_name(self) -> str:
        return names.RESET_CAUSES.get(self.reset_cause, f"unknown({self.reset_cause})")


def _check(regs: Sequence[int], count: int, what: str) -> None:
    if len(regs) != count:
        raise ValueError(f"the {what} block is {count} registers, got {len(regs)}")


def decode_status(node: str, at: float, regs: Sequence[int]) -> Sample:
    """The status block (0x0010, 8 registers) as a Sample."""
    return Sample.from_block(node, at, regs)


def decode_identity(regs: Sequence[int]) -> Identity:
    _check(regs, IDENTITY_READ[1], "identity")
    return Identity(
        device_type=regs[0],
        fw_version=regs[1],
        fw_patch=regs[2],
        node_id=names.from_words(r.U32, list(regs), r.NODE_ID - r.DEVICE_TYPE),
        map_version=regs[5],
    )


def decode_counters(regs: Sequence[int]) -> Counters:
    _check(regs, COUNTERS_READ[1], "counters")
    return Counters(
        uptime_s=names.from_words(r.U32, list(regs), 0),
        crc_errors=regs[2],
        frame_errors=regs[3],
        reset_count=regs[4],
        reset_cause=regs[5],
        boot_failures=regs[6],
        queue_drops=regs[7],
    )


def in_alarm(sample: Sample | None) -> bool:
    """Whether a node's last reading shows an alarm or pre-alarm: the poller reads it every
    cycle whatever its back-off says."""
    return sample is not None and bool(sample.status & (r.ST_ALARM | r.ST_PRE_ALARM))


def decode_heartbeat(node: str, at: float, payload: bytes) -> tuple[Sample, int]:
    """A push HEARTBEAT payload: (the status block as a Sample, uptime in seconds)."""
    if len(payload) != 2 * r.STATUS_BLOCK_LEN + 4:
        raise ValueError(f"a heartbeat payload is 20 bytes, got {len(payload)}")
    fields = unpack_from(push.HEARTBEAT_FORMAT, payload)
    return Sample.from_block(node, at, fields[: r.STATUS_BLOCK_LEN]), fields[-1]


def decode_event(node: str, at: float, payload: bytes) -> NodeEvent:
    """A push EVENT payload. ValueError for a code or source this gateway does not know (the
    receiver answers NAK malformed: resending it as is cannot help)."""
    if len(payload) != 11:
        raise ValueError(f"an event payload is 11 bytes, got {len(payload)}")
    code, source, detail, status, value, uptime = unpack_from(push.EVENT_FORMAT, payload)
    if code not in names.EVENTS:
        raise ValueError(f"unknown event code {code}")
    if source not in names.SOURCES:
        raise ValueError(f"unknown event source {source}")
    return NodeEvent(
        node=node,
        at=at,
        code=code,
        source=source,
        detail=detail,
        status=status,
        value=value,
        uptime_s=uptime,
    )
