"""The MQTT topic and payload scheme (docs/mqtt.md), as pure functions: values in, bytes out.

Nothing here opens a socket or reads a clock: the caller passes `utc` (wall-clock seconds) and
the ids, so every payload is reproducible in a test. The uplink (gateway/uplink.py) publishes
what these functions build; the outbox (gateway/outbox.py) stores the event and state messages
in between.

Topics, under `{prefix}/{gateway_id}/`:

    event                 alarms, faults, restores, tests...    QoS 1, not retained (outbox)
    node/{node}/state     latest state of one node              QoS 1, retained (outbox)
    status                the gateway's own, and its last will  QoS 1, retained (direct)
    command               from the centre (subscribed)          QoS 1
    command/result        one answer per command                QoS 1, not retained (direct)

Every payload is one UTF-8 JSON object whose first field is `"schema": SCHEMA`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from gateway.model import Alert, Priority, Sample
from protocol import names

__all__ = [
    "COMMANDS",
    "MAX_COMMAND_BYTES",
    "MAX_COMMAND_ID_CHARS",
    "SCHEMA",
    "Command",
    "CommandError",
    "CommandResult",
    "Direct",
    "Outgoing",
    "Topics",
    "command_result",
    "event_message",
    "iso_utc",
    "offline_status",
    "parse_command",
    "stamp",
    "state_message",
    "status_message",
]

# Bump on any change a consumer could trip over (a field renamed, removed or re-typed); adding a
# field is not a change (consumers ignore fields they do not know). docs/mqtt.md, Versioning.
SCHEMA = 1

# Commands the centre may send (protocol.names.COMMANDS, the node's own command codes).
COMMANDS = frozenset(names.COMMANDS.values())
MAX_COMMAND_BYTES = 1024  # a command is a few short fields; anything longer is not one
MAX_COMMAND_ID_CHARS = 64  # a uuid is 36; room for the centre's own schemes
_COMMAND_FIELDS = frozenset({"schema", "id", "command", "node"})

# Readings in a node's state: (field, unit), units as in docs/registers.md.
_READINGS = (
    ("smoke", "%/m"),
    ("leakage", "mA"),
    ("temperature", "degC"),
    ("supply", "V"),
)
_FORBIDDEN_IN_NAME = ("/", "+", "#", "\0")


class Outgoing(NamedTuple):
    """A message for the outbox: pass the fields to Outbox.put (or Uplink.submit)."""

    topic: str
    payload: bytes
    priority: Priority
    event_id: str | None  # None: the outbox assigns one (node state, which coalesces)
    retain: bool
    coalesce: bool  # a newer message on the same topic replaces this one while queued


class Direct(NamedTuple):
    """A message the uplink publishes itself, outside the outbox (status, command results)."""

    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one gateway. Construct with Topics.of(prefix, gateway_id), which checks
    that they are valid MQTT topic names (MQTT 3.1.1, 4.7)."""

    base: str  # "{prefix}/{gateway_id}"

    @classmethod
    def of(cls, prefix: str, gateway_id: str) -> Topics:
        check_name(gateway_id, "gateway id")
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("the MQTT topic prefix is empty: set it, e.g. 'firelane'")
        if prefix.startswith("$"):
            raise ValueError(
                f"MQTT topic prefix {prefix!r}: topics starting with $ are the broker's"
            )
        for level in prefix.split("/"):
            if not level or any(c in level for c in _FORBIDDEN_IN_NAME[1:]):
                raise ValueError(
                    f"MQTT topic prefix {prefix!r}: levels must be non-empty, without + # or NUL"
                )
        return cls(f"{prefix}/{gateway_id}")

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def command(self) -> str:
        return f"{self.base}/command"

    @property
    def command_result(self) -> str:
        return f"{self.base}/command/result"

    def node_state(self, node: str) -> str:
        check_name(node, "node name")
        return f"{self.base}/node/{node}/state"


def check_name(name: str, what: str) -> None:
    """A name that becomes one topic level (gateway id, node): non-empty, no / + # or NUL."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"the {what} is empty")
    if any(c in name for c in _FORBIDDEN_IN_NAME):
        raise ValueError(f"{what} {name!r}: it is one MQTT topic level, so no / + # or NUL")


def iso_utc(utc: float) -> str:
    """Wall-clock seconds as ISO 8601 UTC with milliseconds: '2025-03-01T08:15:02.250Z'."""
    ms = math.floor(utc * 1000)
    t = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _json(fields: Mapping[str, object]) -> bytes:
    # allow_nan=False: NaN is not JSON; _finite() maps non-finite readings to null first.
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def stamp(payload: bytes, seq: int) -> bytes:
    """The payload as published: `"seq": N` (the outbox's sequence) inserted after the schema
    field. A payload that is not a JSON object from this module goes out unchanged.

    The outbox assigns seq when the message is put, after the payload was built, so the uplink
    stamps it at publish time. It is a pure function of the entry: every resend of an entry is
    the same bytes, so a duplicate is recognisably one (same event_id, same seq).
    """
    head = b'{"schema":%d,' % SCHEMA
    if not payload.startswith(head):
        return payload
    return b'%s"seq":%d,%s' % (head, seq, payload[len(head) :])


def event_message(
    alert: Alert, *, event_id: str, site: str, gateway_id: str, prefix: str, utc: float
) -> Outgoing:
    """An alert as an `event` message (QoS 1, not retained).

    event_id: a new uuid4 hex per alert, made by the caller and kept with the alert until it is
    in the outbox (Outbox.put returns the queued entry for an id put twice, so a retried put
    cannot queue it twice). utc: when the rule core decided, as wall-clock seconds.
    """
    check_name(alert.node, "node name")
    fields = {
        "schema": SCHEMA,
        "event_id": event_id,
        "utc": iso_utc(utc),
        "gateway": gateway_id,
        "site": site,
        "node": alert.node,
        "house": alert.house,
        "zone": alert.zone,
        "kind": alert.kind,
        "priority": alert.priority.name.lower(),
        "source": alert.source,
        "detail": alert.detail,
        "value": _finite(alert.value),
        "unit": alert.unit,
        "test": alert.test,
    }
    topic = Topics.of(prefix, gateway_id).event
    return Outgoing(topic, _json(fields), alert.priority, event_id, False, False)


def state_message(
    node: str,
    *,
    house: str,
    zone: str,
    sample: Sample | None,
    online: bool,
    last_seen_utc: float | None,
    site: str,
    gateway_id: str,
    prefix: str,
    utc: float,
) -> Outgoing:
    """A node's latest state (retained, telemetry priority, coalescing: only the newest state of
    a node waits in the outbox). sample: its last status block, None if never heard from;
    online: False once supervision declared it silent (the last readings are kept)."""
    fields: dict[str, object] = {
        "schema": SCHEMA,
        "utc": iso_utc(utc),
        "gateway": gateway_id,
        "site": site,
        "node": node,
        "house": house,
        "zone": zone,
        "online": online,
        "last_seen": None if last_seen_utc is None else iso_utc(last_seen_utc),
    }
    if sample is None:
        fields.update(status=[], sources=[], faults=[], node_seq=None, readings={})
    else:
        values = (sample.smoke_pct_m, sample.leakage_ma, sample.temperature_c, sample.supply_v)
        fields.update(
            status=names.bits(names.STATUS_BITS, sample.status),
            sources=[n for bit, n in names.SOURCES.items() if sample.sources >> bit & 1],
            faults=[n for bit, n in names.FAULTS.items() if sample.faults >> bit & 1],
            node_seq=sample.event_seq,
            readings={
                name: {"value": _finite(v), "unit": unit}
                for (name, unit), v in zip(_READINGS, values, strict=True)
            },
        )
    topic = Topics.of(prefix, gateway_id).node_state(node)
    return Outgoing(topic, _json(fields), Priority.TELEMETRY, None, True, True)


def status_message(
    *,
    site: str,
    gateway_id: str,
    prefix: str,
    utc: float,
    version: str,
    uptime_s: float,
    outbox_depth: Mapping[Priority, int],
    buses: Mapping[str, object],
    uplink: Mapping[str, object],
) -> Direct:
    """The gateway's retained `online` status, published on each connect and periodically."""
    fields = {
        "schema": SCHEMA,
        "state": "online",
        "utc": iso_utc(utc),
        "gateway": gateway_id,
        "site": site,
        "version": version,
        "uptime_s": round(uptime_s, 3),
        "outbox": {p.name.lower(): outbox_depth.get(p, 0) for p in Priority},
        "buses": dict(buses),
        "uplink": dict(uplink),
    }
    return Direct(Topics.of(prefix, gateway_id).status, _json(fields), True)


def offline_status(
    *, reason: str, site: str, gateway_id: str, prefix: str, utc: float | None
) -> Direct:
    """The retained `offline` status: the last will (reason "connection_lost", utc None: the
    broker sends it at a time the gateway cannot know) or a graceful stop ("stopped", with utc)."""
    fields = {
        "schema": SCHEMA,
        "state": "offline",
        "reason": reason,
        "utc": None if utc is None else iso_utc(utc),
        "gateway": gateway_id,
        "site": site,
    }
    return Direct(Topics.of(prefix, gateway_id).status, _json(fields), True)


@dataclass(frozen=True, slots=True)
class Command:
    """A validated command from the centre: {"id": ..., "command": ..., "node": ...}."""

    id: str
    command: str  # one of COMMANDS
    node: str  # a node of this gateway


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What the command handler reports: ok, or failed with a detail saying why."""

    ok: bool
    detail: str = ""


class CommandError(ValueError):
    """A command refused before it reached a node. `reason` says why in words for the centre;
    `command_id` is the command's id when it could be read (the rejection carries it)."""

    def __init__(self, reason: str, command_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id


def parse_command(payload: bytes, nodes: Set[str]) -> Command:
    """A command payload, validated: JSON object, known fields only, schema (if given) SCHEMA,
    a non-empty string id, a known command, a node of this gateway. Raises CommandError."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError(f"command longer than {MAX_COMMAND_BYTES} bytes")
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CommandError(f"bad JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CommandError("a command is a JSON object")
    raw_id = doc.get("id")
    command_id = raw_id if isinstance(raw_id, str) and raw_id else None
    if command_id is None:
        raise CommandError("missing id: a command needs a non-empty string id")
    if len(command_id) > MAX_COMMAND_ID_CHARS:
        raise CommandError(f"id longer than {MAX_COMMAND_ID_CHARS} characters")
    unknown = sorted(set(doc) - _COMMAND_FIELDS)
    if unknown:
        raise CommandError(f"unknown field {unknown[0]!r}", command_id)
    schema = doc.get("schema", SCHEMA)
    if schema != SCHEMA or isinstance(schema, bool):
        raise CommandError(f"schema {schema!r} not supported (this gateway: {SCHEMA})", command_id)
    command = doc.get("command")
    if command not in COMMANDS:
        known = ", ".join(sorted(COMMANDS))
        raise CommandError(f"unknown command {command!r} (known: {known})", command_id)
    node = doc.get("node")
    if not isinstance(node, str) or not node:
        raise CommandError("missing node", command_id)
    if node not in nodes:
        raise CommandError(f"unknown node {node!r}", command_id)
    return Command(command_id, str(command), node)


def command_result(
    command_id: str | None,
    *,
    status: str,
    detail: str,
    command: str | None,
    node: str | None,
    gateway_id: str,
    prefix: str,
    utc: float,
) -> Direct:
    """The answer to one command on `command/result`: status "ok", "failed" (the node or bus
    could not do it) or "rejected" (refused before reaching a node; id null if unreadable)."""
    if status not in ("ok", "failed", "rejected"):
        raise ValueError(f"command status {status!r}: ok, failed or rejected")
    fields = {
        "schema": SCHEMA,
        "id": command_id,
        "status": status,
        "detail": detail,
        "command": command,
        "node": node,
        "utc": iso_utc(utc),
        "gateway": gateway_id,
    }
    return Direct(Topics.of(prefix, gateway_id).command_result, _json(fields), False)
