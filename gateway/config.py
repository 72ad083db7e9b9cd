"""The gateway's configuration: one TOML file, read once into frozen dataclasses.

docs/gateway.example.toml is the annotated reference of every key. parse() checks everything
before the gateway opens a port, a socket or the database, and reports every problem at once:
each message starts with the key's dotted path (`nodes[3].address`) and ends with what to do.
The filesystem is only looked at (a path exists, its directory exists), never opened; a password
file is read when the uplink connects (MqttConfig.password_value), so `firelane check-config`
needs no secrets. Units are in the names (../shared/STYLE.md lesson 9).
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway._config_reader import ConfigError, Reader, toml_text
from gateway.bus_timing import response_timeout_s
from gateway.points import LONGEST_READ
from protocol import registers

__all__ = [
    "BAUD_RATES",
    "BUS_KINDS",
    "DEFAULT_OFFLINE_BACKOFF_S",
    "MAX_OFFLINE_BACKOFF_S",
    "TCP_TIMEOUT_MS",
    "BusConfig",
    "ConfigError",
    "GatewayConfig",
    "MqttConfig",
    "NodeConfig",
    "StorageConfig",
    "derived_timeout_s",
    "load",
    "parse",
]

BAUD_RATES = tuple(b * 100 for b in registers.BAUD_CHOICES)  # what a node can be set to
BUS_KINDS = ("rtu", "tcp", "push")
FRAMERS = ("socket", "rtu")
PARITIES = ("E", "N", "O")
# A tcp bus has no baud rate here (the converter's serial side is set in the converter) and a
# LAN adds its own delay: a fixed default, about three times a 16-register read at 9600 baud.
TCP_TIMEOUT_MS = 250
# An offline node (2 reads unanswered: off the bus, or noise) is retried with a back-off capped
# here. An alarm it raises meanwhile is read at the next retry, so the cap plus the node's own
# confirmation (2 s) plus a poll cycle must stay inside EN 54-2's 10 s (DOMAIN.md). A dead node
# then costs one response timeout every 4 s: ~1.2 % of the line at 19200 baud.
DEFAULT_OFFLINE_BACKOFF_S = 4.0
MAX_OFFLINE_BACKOFF_S = 5.0
DEFAULT_SUPERVISION_S = 60.0
# Faults must show within 100 s (../shared/DOMAIN.md, EN 54-2 / GB/T 45839-2025 5.5.1): the
# supervision timeout plus the time to report it must stay inside that.
SUPERVISION_RANGE_S = (10, 90)
_WITHIN_100_S = " (faults must show within 100 s)"
MIN_STATUS_READS_PER_SUPERVISION = 3  # silent this many status periods before "offline"

_NAME = re.compile(r"[a-z0-9_-]{1,64}")
_GATEWAY_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HEX = re.compile(r"[0-9a-fA-F]*")
_TOP_KEYS = ("site", "gateway_id", "storage", "mqtt", "buses", "nodes", "rules")
_STORAGE_KEYS = ("path", "max_telemetry")
# fmt: off
_MQTT_KEYS = (
    "host", "port", "tls", "ca_file", "client_cert", "client_key", "username", "password",
    "password_file", "topic_prefix", "keepalive_s", "client_id",
)
# fmt: on
_POLL_KEYS = ("status_every_s", "measure_every", "offline_backoff_max_s")
_BUS_KEYS = {
    "rtu": ("name", "kind", "port", "baud", "parity", "timeout_ms", *_POLL_KEYS),
    "tcp": ("name", "kind", "host", "tcp_port", "framer", "timeout_ms", *_POLL_KEYS),
    "push": ("name", "kind", "port", "baud", "parity", "timeout_ms"),
}
_ALL_BUS_KEYS = tuple(dict.fromkeys(k for keys in _BUS_KEYS.values() for k in keys))
_NODE_KEYS = ("name", "bus", "address", "house", "zone", "node_id", "key", "supervision_s")
_GW_RULE = (
    'use 1..63 lowercase letters, digits and "-", starting with a letter or digit (it is part '
    "of MQTT topics and the client id)"
)
_NAME_RULE = 'use lowercase letters, digits, "_" and "-" (at most 64)'


def derived_timeout_s(baud: int) -> float:
    """The response timeout of a serial bus at `baud` when its timeout_ms is 0: the one formula,
    gateway/bus_timing.response_timeout_s, for the longest read the poller makes (8 registers,
    gateway/points.py LONGEST_READ):

        timeout = (8 + 5 + 2 x 8) x 11 / baud + 2 x t3.5   # request, response, their silences
                + 10 ms   # the node's turnaround (docs/firmware.md, Links)
                + 16 ms   # a USB-RS485 adapter (FTDI) holds received bytes up to 16 ms (DOMAIN.md)

    The request's own wire time is in because pymodbus starts the clock when it hands the
    request to the port (transaction.py, execute), not when the last byte has left the wire.
    Short, baud-derived timeouts keep a dead node from eating the cycle (DOMAIN.md): 67.3 ms at
    9600 baud, 32.3 ms at 115200. A node that answers slower needs an explicit timeout_ms.
    """
    return response_timeout_s(baud, LONGEST_READ)


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """[storage]: the outbox database."""

    path: Path  # the SQLite file; its directory exists
    max_telemetry: int = 10_000  # telemetry entries kept at most; alarms are never evicted


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """[mqtt]: the uplink. Optional files are None when not configured."""

    host: str
    client_id: str  # gateway_id unless set
    port: int = 1883  # 8883 by default with tls
    tls: bool = False
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    topic_prefix: str = "firelane"
    keepalive_s: int = 30

    def password_value(self) -> str | None:
        """The password to connect with: `password`, or the contents of `password_file` (one
        trailing newline dropped) read now, at connect time, or None without either. ConfigError
        when the file cannot be read or is empty."""
        if self.password_file is None:
            return self.password
        where = "mqtt.password_file"
        try:
            text = self.password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                [
                    f"{where}: cannot read {self.password_file} ({why}): make it a text file "
                    "readable by the gateway's user"
                ]
            ) from exc
        text = text.removesuffix("\n").removesuffix("\r")
        if not text:
            raise ConfigError([f"{where}: {self.password_file} is empty: write the password"])
        return text


@dataclass(frozen=True, slots=True)
class BusConfig:
    """One [[buses]] entry: a serial line (rtu, push) or a Modbus TCP endpoint (tcp). port and
    baud are for rtu and push buses, host, tcp_port and framer for tcp ones; the poll settings
    apply to rtu and tcp."""

    name: str
    kind: str  # one of BUS_KINDS
    port: str = ""  # a device path, rtu and push
    baud: int = 19200  # rtu and push
    host: str = ""  # tcp
    tcp_port: int = 502  # tcp
    framer: str = "socket"  # tcp: "socket" (Modbus TCP) or "rtu" (RTU over TCP)
    timeout_ms: int = 0  # 0: derived, see timeout_s
    status_every_s: float = 1.0  # target period of each node's status read
    measure_every: int = 10  # identity and counters every N cycles
    offline_backoff_max_s: float = DEFAULT_OFFLINE_BACKOFF_S
    # rtu and push: "E" (8E1, the Modbus default, Serial Line V1.02 2.5.1), "N" (8N1; some
    # adapters, and pseudo-terminals, which refuse parity settings) or "O".
    parity: str = "E"

    @property
    def polled(self) -> bool:
        """Whether the gateway polls this bus (rtu, tcp) rather than receives pushes."""
        return self.kind != "push"

    @property
    def endpoint(self) -> str:
        """What the bus connects to: the port, or host:tcp_port (for task names and logs)."""
        return f"{self.host}:{self.tcp_port}" if self.kind == "tcp" else self.port

    @property
    def timeout_s(self) -> float:
        """The effective response timeout: timeout_ms when set; else derived_timeout_s(baud)
        on a serial bus and TCP_TIMEOUT_MS on a tcp one."""
        if self.timeout_ms:
            return self.timeout_ms / 1000
        if self.kind == "tcp":
            return TCP_TIMEOUT_MS / 1000
        return derived_timeout_s(self.baud)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One [[nodes]] entry."""

    name: str
    bus: str  # a BusConfig.name
    address: int  # Modbus unit, 1..247
    house: str
    zone: str
    node_id: int | None = None  # NODE_ID (u32); always set on push buses
    key: bytes | None = field(default=None, repr=False)  # push authentication key
    supervision_s: float = DEFAULT_SUPERVISION_S  # effective: its own or [rules] supervision_s


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole file. `rules` is [rules] without supervision_s (which is `supervision_s`
    here): a read-only view of a copy, validated by the rule core."""

    site: str
    gateway_id: str
    storage: StorageConfig
    mqtt: MqttConfig
    buses: tuple[BusConfig, ...]
    nodes: tuple[NodeConfig, ...]
    rules: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    supervision_s: float = DEFAULT_SUPERVISION_S

    def nodes_on(self, bus_name: str) -> tuple[NodeConfig, ...]:
        """The nodes on a bus, in file order."""
        return tuple(n for n in self.nodes if n.bus == bus_name)

    def node(self, name: str) -> NodeConfig:
        """The node called `name`; KeyError when there is none."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def bus(self, name: str) -> BusConfig:
        """The bus called `name`; KeyError when there is none."""
        for b in self.buses:
            if b.name == name:
                return b
        raise KeyError(name)


def load(path: Path, *, check_paths: bool = True) -> GatewayConfig:
    """Read and parse the TOML file at `path`. Every problem, including a missing or
    unreadable file and a TOML syntax error (with its line and column), is a ConfigError."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        fix = "check the path, or start from docs/gateway.example.toml"
        raise ConfigError([f"no such file: {fix}"], source) from None
    except PermissionError:
        fix = "make it readable by the user running firelane"
        raise ConfigError([f"permission denied: {fix}"], source) from None
    except IsADirectoryError:
        raise ConfigError(["is a directory: give the config file's path"], source) from None
    except OSError as exc:
        raise ConfigError([f"cannot read the file ({exc.strerror})"], source) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        message = f"line {line}: not UTF-8 text: save the file as UTF-8"
        raise ConfigError([message], source) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_message(str(exc))], source) from None
    return parse(data, source, check_paths=check_paths)


def _syntax_message(detail: str) -> str:
    # Python 3.11's TOMLDecodeError has the position only in its text: "... (at line 3,
    # column 7)" or "... (at end of document)".
    m = re.fullmatch(r"(.*) \(at (?:line (\d+), column (\d+)|(end of document))\)", detail)
    if m is None:
        return f"TOML syntax error: {detail}: fix the syntax (https://toml.io)"
    where = f"line {m[2]}, column {m[3]}" if m[2] else "end of file"
    return f"{where}: TOML syntax error: {m[1]}: fix the syntax there (https://toml.io)"


def parse(
    data: Mapping[str, Any], source: str = "<config>", *, check_paths: bool = True
) -> GatewayConfig:
    """The configuration in `data` (as tomllib parses it), or ConfigError listing every
    problem. With check_paths False, no path is looked up on the filesystem (for examples and
    tests); everything else is checked the same."""
    r = Reader(check_paths)
    top = r.table(data, "", _TOP_KEYS)
    site = r.text(top, "", "site", '"Old Town East"', required=True)
    gateway_id = r.text(
        top, "", "gateway_id", '"gw-east-01"', required=True, pattern=_GATEWAY_ID, rule=_GW_RULE
    )
    storage = _storage(r, r.table(top.get("storage"), "storage", _STORAGE_KEYS, required=True))
    mqtt = _mqtt(r, r.table(top.get("mqtt"), "mqtt", _MQTT_KEYS, required=True), gateway_id)
    rules_table = r.table(top.get("rules", {}), "rules", None)
    supervision_s = r.number(
        rules_table, "rules", "supervision_s", *SUPERVISION_RANGE_S, default=60, why=_WITHIN_100_S
    )
    rules = copy.deepcopy({k: v for k, v in rules_table.items() if k != "supervision_s"})
    tables = list(r.array(top, "buses", "[[buses]]"))
    buses = tuple(_bus(r, t, p) for t, p in tables)
    # Nodes are checked against the buses; a bus whose own entry is broken (None here) has its
    # own error already, so its nodes are not checked against it.
    by_name: dict[str, tuple[str, BusConfig | None]] = {}
    for (t, p), b in zip(tables, buses, strict=True):
        if isinstance(t.get("name"), str):
            usable = r.ok(f"{p}.name") and r.ok(f"{p}.kind")
            by_name.setdefault(t["name"], (p, b if usable else None))
    nodes = tuple(
        _node(r, t, p, by_name, supervision_s) for t, p in r.array(top, "nodes", "[[nodes]]")
    )
    _cross_check(r, buses, nodes)
    if r.errors:
        raise ConfigError(r.errors, source)
    return GatewayConfig(
        site, gateway_id, storage, mqtt, buses, nodes, MappingProxyType(rules), supervision_s
    )


def _storage(r: Reader, t: Mapping[str, Any]) -> StorageConfig:
    path = r.path(t, "storage", "path", '"/var/lib/firelane/gateway.sqlite3"', parent=True)
    max_telemetry = r.integer(t, "storage", "max_telemetry", 100, 10_000_000, default=10_000)
    return StorageConfig(path or Path(), max_telemetry)


def _mqtt(r: Reader, t: Mapping[str, Any], gateway_id: str) -> MqttConfig:
    host = r.host(t, "mqtt", "host", '"broker.example"')
    tls = r.boolean(t, "mqtt", "tls", default=False)
    port = r.integer(t, "mqtt", "port", 1, 65535, default=8883 if tls else 1883)
    files = {
        k: r.path(t, "mqtt", k, f'"/etc/firelane/{k}.pem"', required=False)
        for k in ("ca_file", "client_cert", "client_key")
    }
    for k, f in files.items():
        if f is not None and not tls:
            r.error(f"mqtt.{k}", "needs tls = true: set mqtt.tls = true or remove it")
    cert, key = files["client_cert"], files["client_key"]
    if (cert is None) != (key is None) and r.ok("mqtt.client_cert") and r.ok("mqtt.client_key"):
        missing = "client_key" if key is None else "client_cert"
        r.error(f"mqtt.{missing}", "client_cert and client_key go together: set both or neither")
    user = r.text(t, "mqtt", "username", '"gw-east-01"') or None
    password = r.text(t, "mqtt", "password", '"..."') or None
    pw_file = r.path(t, "mqtt", "password_file", '"/etc/firelane/mqtt.pass"', required=False)
    if password is not None and pw_file is not None:
        r.error("mqtt.password_file", "give password or password_file, not both: remove one")
    elif (password is not None or pw_file is not None) and user is None:
        key_ = "mqtt.password" if password is not None else "mqtt.password_file"
        r.error(key_, "a password needs a username (MQTT 3.1.1, 3.1.2.9): set mqtt.username")
    prefix = r.text(t, "mqtt", "topic_prefix", '"firelane"', default="firelane")
    if "topic_prefix" in t and r.ok("mqtt.topic_prefix"):
        _check_topic_prefix(r, prefix)
    keepalive = r.integer(t, "mqtt", "keepalive_s", 5, 3600, default=30)
    cid = r.text(t, "mqtt", "client_id", '"gw-east-01"') or gateway_id
    ca = files["ca_file"]
    return MqttConfig(
        host, cid, port, tls, ca, cert, key, user, password, pw_file, prefix, keepalive
    )


def _check_topic_prefix(r: Reader, prefix: str) -> None:
    problem = ""
    if "#" in prefix or "+" in prefix:
        problem = 'has a wildcard ("#" or "+"): topics the gateway publishes take none'
    elif prefix.startswith("/") or prefix.endswith("/"):
        problem = 'starts or ends with "/": the gateway adds the separators itself'
    elif "//" in prefix:
        problem = 'has an empty level ("//")'
    elif prefix.startswith("$"):
        problem = 'starts with "$", which brokers reserve for themselves ($SYS)'
    elif "\x00" in prefix:
        problem = "holds a NUL character"
    if problem:
        r.error("mqtt.topic_prefix", f'{toml_text(prefix)} {problem}: write e.g. "firelane"')


def _bus(r: Reader, t: Mapping[str, Any], p: str) -> BusConfig:
    kind = r.choice(t, p, "kind", BUS_KINDS, '"rtu"') or ""
    r.check_keys(t, p, _BUS_KEYS.get(kind, _ALL_BUS_KEYS), ignore=_ALL_BUS_KEYS)
    if kind in _BUS_KEYS:
        for key in t:
            if key in _ALL_BUS_KEYS and key not in _BUS_KEYS[kind]:
                takers = " and ".join(k for k, keys in _BUS_KEYS.items() if key in keys)
                r.error(
                    f"{p}.{key}",
                    f"only {takers} buses take {key}; this one is {kind}: remove it or change kind",
                )
    name = r.text(t, p, "name", '"east"', required=True, pattern=_NAME, rule=_NAME_RULE)
    port, baud, host, tcp_port, framer, parity = "", 19200, "", 502, "socket", "E"
    if kind in ("rtu", "push"):
        port = r.device(t, p, "port", '"/dev/ttyUSB0"')
        baud = r.choice(t, p, "baud", BAUD_RATES, "19200", default=19200) or 19200
        parity = r.choice(t, p, "parity", PARITIES, '"E"', default="E") or "E"
    elif kind == "tcp":
        host = r.host(t, p, "host", '"10.0.0.5"')
        tcp_port = r.integer(t, p, "tcp_port", 1, 65535, default=502)
        framer = r.choice(t, p, "framer", FRAMERS, '"socket"', default="socket") or "socket"
    timeout_ms = r.integer(
        t, p, "timeout_ms", 10, 5000, default=0, zero_ok=True, why=" (0: derived from baud)"
    )
    every_s = r.number(t, p, "status_every_s", 0.05, 60, default=1.0)
    measure = r.integer(t, p, "measure_every", 1, 1000, default=10)
    backoff_s = r.number(
        t,
        p,
        "offline_backoff_max_s",
        0.5,
        MAX_OFFLINE_BACKOFF_S,
        default=DEFAULT_OFFLINE_BACKOFF_S,
        why=" (a node off the bus is retried at least this often: its next alarm must still "
        "reach the centre within EN 54-2's 10 s)",
    )
    return BusConfig(
        name,
        kind,
        port,
        baud,
        host,
        tcp_port,
        framer,
        timeout_ms,
        every_s,
        measure,
        backoff_s,
        parity,
    )


def _node(
    r: Reader,
    t: Mapping[str, Any],
    p: str,
    buses: Mapping[str, tuple[str, BusConfig | None]],
    supervision_s: float,
) -> NodeConfig:
    r.check_keys(t, p, _NODE_KEYS)
    name = r.text(t, p, "name", '"house-7"', required=True, pattern=_NAME, rule=_NAME_RULE)
    bus_name = r.text(t, p, "bus", '"east"', required=True)
    bus_path, bus = buses.get(bus_name, ("", None))
    if bus_name and bus_name not in buses and r.ok("buses"):
        usable = [name for name, (_, b) in buses.items() if b is not None]
        names = ", ".join(map(toml_text, usable)) or "none yet: fix the [[buses]] tables"
        r.error(
            f"{p}.bus",
            f"{toml_text(bus_name)} names no bus{r.suggest(bus_name, usable)}: "
            f"use one of the [[buses]] names ({names})",
        )
    address = r.integer(t, p, "address", 1, 247, example="12")
    house = r.text(t, p, "house", '"No. 7 Lantern Lane"', required=True)
    zone = r.text(t, p, "zone", '"A"', required=True)
    node_id = None
    if "node_id" in t:
        node_id = r.integer(t, p, "node_id", 0, 0xFFFF_FFFF, example="0x1A00000C")
    elif bus is not None and bus.kind == "push":
        r.error(
            f"{p}.node_id",
            f"required on push bus {toml_text(bus.name)}: add node_id = "
            "0x... (the node's NODE_ID register, 0x0003, sent in every push frame)",
        )
    key = None
    if "key" in t:
        key = _push_key(r, t, p)
        if bus is not None and bus.kind != "push":
            r.error(
                f"{p}.key",
                f"only push buses authenticate frames; bus {toml_text(bus.name)} "
                f"is {bus.kind}: remove key",
            )
    own = r.number(
        t, p, "supervision_s", *SUPERVISION_RANGE_S, default=supervision_s, why=_WITHIN_100_S
    )
    checked = (f"{p}.supervision_s", "rules.supervision_s", f"{bus_path}.status_every_s")
    if bus is not None and bus.polled and all(r.ok(k) for k in checked):
        least = MIN_STATUS_READS_PER_SUPERVISION * bus.status_every_s
        if own < least:
            given = "" if "supervision_s" in t else " (rules.supervision_s)"
            r.error(
                f"{p}.supervision_s",
                f"{own:g} s{given} is shorter than "
                f"{MIN_STATUS_READS_PER_SUPERVISION} status reads on bus "
                f"{toml_text(bus.name)} (status_every_s = {bus.status_every_s:g}): raise it "
                f"to at least {least:g} or lower the bus's status_every_s",
            )
    return NodeConfig(name, bus_name, address, house, zone, node_id, key, own)


def _push_key(r: Reader, t: Mapping[str, Any], p: str) -> bytes | None:
    text = r.text(t, p, "key", '"00112233445566778899aabbccddeeff"', required=True)
    if not r.ok(f"{p}.key"):
        return None
    if not _HEX.fullmatch(text) or len(text) % 2 or not 16 <= len(text) <= 128:
        r.error(
            f"{p}.key",
            f"must be 16..128 hex digits, an even number of them (got "
            f"{len(text)} characters): write the node's push key as hex",
        )
        return None
    return bytes.fromhex(text)


def _cross_check(r: Reader, buses: tuple[BusConfig, ...], nodes: tuple[NodeConfig, ...]) -> None:
    bus_names = [(f"buses[{i}]", b.name, b.name) for i, b in enumerate(buses)]
    r.unique(bus_names, "name", "give each bus its own name")
    node_names = [(f"nodes[{i}]", n.name, n.name) for i, n in enumerate(nodes)]
    r.unique(node_names, "name", "give each node its own name")
    seen: dict[str, tuple[int, BusConfig]] = {}
    for i, b in enumerate(buses):
        key = "host" if b.kind == "tcp" else "port"
        if not b.endpoint or not r.ok(f"buses[{i}].{key}"):
            continue
        if b.endpoint not in seen:
            seen[b.endpoint] = (i, b)
            continue
        j, first = seen[b.endpoint]
        what = f"{toml_text(b.endpoint)} is already used by buses[{j}] ({toml_text(first.name)})"
        if b.kind != "tcp" and first.kind != "tcp" and first.baud != b.baud:
            r.error(
                f"buses[{i}].port",
                f"{what} at {first.baud} baud, here at {b.baud}: one "
                "line runs at one baud rate: set every node on it to one rate and list "
                "them under one bus",
            )
        else:
            r.error(
                f"buses[{i}].{key}",
                f"{what}: one line is one bus: put its nodes on bus "
                f"{toml_text(first.name)} and remove this one",
            )
    for bus in dict.fromkeys(n.bus for n in nodes):
        on_bus = [(f"nodes[{i}]", n.name, n.address) for i, n in enumerate(nodes) if n.bus == bus]
        fix = "give each node on a bus its own address (1..247)"
        r.unique(on_bus, "address", fix, f" on bus {toml_text(bus)}")
    ids = [(f"nodes[{i}]", n.name, n.node_id) for i, n in enumerate(nodes) if n.node_id is not None]
    fix = "each node has its own NODE_ID (register 0x0003): read it from the node"
    r.unique(ids, "node_id", fix, show=lambda v: f"0x{v:08X}")
