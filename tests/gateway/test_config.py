"""The gateway configuration: the example loads; every bad config is reported with the key and
the fix, all at once; derived timeouts; TOML and file errors; `firelane check-config`."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from gateway import config as cfg
from gateway.bus_timing import response_timeout_s
from gateway.cli import main
from gateway.config import ConfigError, GatewayConfig, load, parse
from gateway.points import LONGEST_READ
from protocol.timing import t35_us

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "gateway.example.toml"

BASE: dict[str, Any] = {
    "site": "Old Town East",
    "gateway_id": "gw-east-01",
    "storage": {"path": "/var/lib/firelane/gateway.sqlite3"},
    "mqtt": {"host": "broker.example"},
    "buses": [
        {"name": "east", "kind": "rtu", "port": "/dev/ttyUSB0"},
        {"name": "yard", "kind": "push", "port": "/dev/ttyUSB1"},
    ],
    "nodes": [
        {"name": "house-7", "bus": "east", "address": 12, "house": "No. 7", "zone": "A"},
        {"name": "house-9", "bus": "east", "address": 13, "house": "No. 9", "zone": "A"},
        {
            "name": "shop-2",
            "bus": "yard",
            "address": 2,
            "house": "No. 2",
            "zone": "B",
            "node_id": 0x1A000102,
        },
    ],
}

_DELETE = object()
_STEP = re.compile(r"([a-z_]+)(?:\[(\d+)\])?")


def edit(*changes: tuple[str, object]) -> dict[str, Any]:
    """A copy of BASE with each (dotted path, value) set; value _DELETE removes the key."""
    data = copy.deepcopy(BASE)
    for path, value in changes:
        *parents, last = path.split(".")
        here: Any = data
        for step in parents:
            m = _STEP.fullmatch(step)
            assert m is not None
            here = here.setdefault(m[1], {}) if m[2] is None else here[m[1]][int(m[2])]
        if value is _DELETE:
            del here[last]
        else:
            here[last] = value
    return data


def errors(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse(data, check_paths=False)
    return info.value.messages


def test_base_is_valid() -> None:
    config = parse(BASE, check_paths=False)
    assert isinstance(config, GatewayConfig)
    assert [n.name for n in config.nodes_on("east")] == ["house-7", "house-9"]


def test_example_loads() -> None:
    config = load(EXAMPLE, check_paths=False)
    assert (config.site, config.gateway_id) == ("Old Town East", "gw-east-01")
    assert [(b.name, b.kind, b.baud) for b in config.buses] == [
        ("east", "rtu", 19200),
        ("yard", "push", 38400),
    ]
    assert len(config.nodes) == 4
    assert config.bus("east").port.startswith("/dev/serial/by-id/")
    assert config.bus("east").polled and not config.bus("yard").polled
    house7, house9, shop2, shop4 = config.nodes
    assert house7.node_id == 0x1A00000C and house9.node_id is None
    assert shop2.key == bytes.fromhex("8f3c2a71d4e6b9058f3c2a71d4e6b905")
    assert (house7.supervision_s, house9.supervision_s) == (60.0, 45.0)
    assert config.node("shop-4") is shop4
    assert config.nodes_on("yard") == (shop2, shop4)
    mqtt = config.mqtt
    assert (mqtt.port, mqtt.tls, mqtt.client_id) == (8883, True, "gw-east-01")
    assert mqtt.client_cert is None and mqtt.password is None
    assert mqtt.password_file == Path("/etc/firelane/mqtt.pass")
    assert config.storage == cfg.StorageConfig(Path("/var/lib/firelane/gateway.sqlite3"), 10000)
    assert dict(config.rules) == {} and config.supervision_s == 60.0


def test_lookups_of_unknown_names_raise_key_error() -> None:
    config = parse(BASE, check_paths=False)
    with pytest.raises(KeyError):
        config.node("nobody")
    with pytest.raises(KeyError):
        config.bus("nowhere")
    assert config.nodes_on("nowhere") == ()


def test_defaults() -> None:
    config = parse(BASE, check_paths=False)
    east = config.bus("east")
    assert (east.baud, east.timeout_ms, east.status_every_s, east.measure_every) == (
        19200,
        0,
        1.0,
        10,
    )
    assert (
        east.offline_backoff_max_s == cfg.DEFAULT_OFFLINE_BACKOFF_S == 4.0
        and east.endpoint == "/dev/ttyUSB0"
    )
    mqtt = config.mqtt
    assert (mqtt.port, mqtt.tls, mqtt.topic_prefix, mqtt.keepalive_s) == (
        1883,
        False,
        "firelane",
        30,
    )
    assert mqtt.client_id == "gw-east-01" and mqtt.username is None
    tls = parse(edit(("mqtt.tls", True), ("mqtt.client_id", "")), check_paths=False).mqtt
    assert (tls.port, tls.client_id) == (8883, "gw-east-01")
    assert parse(edit(("mqtt.port", 1884), ("mqtt.tls", True)), check_paths=False).mqtt.port == 1884


def test_tcp_bus() -> None:
    tcp = {"name": "market", "kind": "tcp", "host": "10.0.0.5", "framer": "rtu"}
    config = parse(edit(("buses", [*BASE["buses"], tcp])), check_paths=False)
    market = config.bus("market")
    assert (market.host, market.tcp_port, market.framer, market.port) == (
        "10.0.0.5",
        502,
        "rtu",
        "",
    )
    assert market.endpoint == "10.0.0.5:502" and market.polled


def test_rules_are_passed_through_read_only_and_copied() -> None:
    rules: dict[str, Any] = {"supervision_s": 45, "smoke": {"verify_s": 60}, "coincidence": ["h"]}
    data = edit(("rules", rules))
    config = parse(data, check_paths=False)
    assert config.supervision_s == 45.0
    assert dict(config.rules) == {"smoke": {"verify_s": 60}, "coincidence": ["h"]}
    assert all(n.supervision_s == 45.0 for n in config.nodes)
    rules["smoke"]["verify_s"] = 1  # the caller's data changing later changes nothing
    assert config.rules["smoke"] == {"verify_s": 60}
    with pytest.raises(TypeError):
        config.rules["smoke"] = {}  # type: ignore[index]


def test_frozen() -> None:
    config = parse(BASE, check_paths=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.site = "elsewhere"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.buses[0].baud = 9600  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.nodes[0].address = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mqtt.host = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):  # slots: no stray attributes either
        object.__setattr__(config.storage, "typo", 1)
    again = parse(BASE, check_paths=False)
    assert again == config and hash(again) == hash(config)  # a value: comparable, hashable


def test_secrets_stay_out_of_repr() -> None:
    key = "00112233445566778899aabbccddeeff"
    data = edit(("nodes[2].key", key), ("mqtt.username", "u"), ("mqtt.password", "hunter22"))
    config = parse(data, check_paths=False)
    assert config.nodes[2].key == bytes.fromhex(key)
    assert "hunter22" not in repr(config) and "0011223344" not in repr(config)
    assert config.mqtt.password_value() == "hunter22"


# (id, changes, the message expected: it starts with the key's path and says what to do)
BAD: list[tuple[str, tuple[tuple[str, object], ...], str]] = [
    (
        "two nodes one address",
        (("nodes[1].address", 12),),
        'nodes[1].address: 12 is already used by nodes[0] ("house-7") on bus "east": give each '
        "node on a bus its own address (1..247)",
    ),
    (
        "node on an unknown bus",
        (("nodes[1].bus", "esat"),),
        'nodes[1].bus: "esat" names no bus (did you mean "east"?): use one of the [[buses]] names '
        '("east", "yard")',
    ),
    (
        "unknown key with suggestion",
        (("mqtt.prot", 1883),),
        'mqtt.prot: unknown key (did you mean "port"?): remove it or use one of the keys known '
        "here: host, port, tls, ca_file, client_cert, client_key, username, password, "
        "password_file, topic_prefix, keepalive_s, client_id",
    ),
    (
        "unknown top-level key",
        (("sit", "x"),),
        'sit: unknown key (did you mean "site"?): remove it or use one of the keys known here: '
        "site, gateway_id, storage, mqtt, buses, nodes, rules",
    ),
    (
        "unknown node key",
        (("nodes[0].adress", 5),),
        'nodes[0].adress: unknown key (did you mean "address"?): remove it',
    ),
    (
        "bool as int",
        (("buses[0].baud", True),),
        "buses[0].baud: true (a boolean) is not an integer: write e.g. baud = 19200",
    ),
    (
        "bool as address",
        (("nodes[0].address", False),),
        "nodes[0].address: false (a boolean) is not an integer: write e.g. address = 12",
    ),
    (
        "float as int",
        (("nodes[0].address", 12.0),),
        "nodes[0].address: 12.0 (a number) is not an integer: write e.g. address = 12",
    ),
    (
        "text as number",
        (("rules", {"supervision_s": "60"}),),
        'rules.supervision_s: "60" (text) is not a number: write e.g. supervision_s = 60',
    ),
    (
        "address out of range",
        (("nodes[0].address", 248),),
        "nodes[0].address: 248 is out of range: use 1..247",
    ),
    (
        "supervision out of range",
        (("rules", {"supervision_s": 95}),),
        "rules.supervision_s: 95 is out of range: use 10..90 (faults must show within 100 s)",
    ),
    (
        "node supervision out of range",
        (("nodes[0].supervision_s", 5),),
        "nodes[0].supervision_s: 5 is out of range: use 10..90 (faults must show within 100 s)",
    ),
    (
        "nan is out of range",
        (("buses[0].status_every_s", float("nan")),),
        "buses[0].status_every_s: nan is out of range: use 0.05..60",
    ),
    (
        "offline back-off too long for the alarm bound",
        (("buses[0].offline_backoff_max_s", 60),),
        "buses[0].offline_backoff_max_s: 60 is out of range: use 0.5..5 (a node off the bus is "
        "retried at least this often: its next alarm must still reach the centre within "
        "EN 54-2's 10 s)",
    ),
    ("keepalive out of range", (("mqtt.keepalive_s", 2),), "mqtt.keepalive_s: 2 is out of range"),
    (
        "max_telemetry out of range",
        (("storage.max_telemetry", 50),),
        "storage.max_telemetry: 50 is out of range: use 100..10000000",
    ),
    (
        "timeout out of range",
        (("buses[0].timeout_ms", 5),),
        "buses[0].timeout_ms: 5 is out of range: use 0 or 10..5000 (0: derived from baud)",
    ),
    (
        "one port at two baud rates",
        (("buses[1].kind", "rtu"), ("buses[1].port", "/dev/ttyUSB0"), ("buses[1].baud", 9600)),
        'buses[1].port: "/dev/ttyUSB0" is already used by buses[0] ("east") at 19200 baud, here '
        "at 9600: one line runs at one baud rate: set every node on it to one rate and list them "
        "under one bus",
    ),
    (
        "one port twice",
        (("buses[1].port", "/dev//ttyUSB0"),),
        'buses[1].port: "/dev/ttyUSB0" is already used by buses[0] ("east"): one line is one bus: '
        'put its nodes on bus "east" and remove this one',
    ),
    (
        "push node without node_id",
        (("nodes[2].node_id", _DELETE),),
        'nodes[2].node_id: required on push bus "yard": add node_id = 0x...',
    ),
    (
        "key on an rtu bus",
        (("nodes[0].key", "00112233445566778899aabbccddeeff"),),
        'nodes[0].key: only push buses authenticate frames; bus "east" is rtu: remove key',
    ),
    (
        "key not hex",
        (("nodes[2].key", "0011223344556677889 aabbccddeeff"),),
        "nodes[2].key: must be 16..128 hex digits, an even number of them (got 32 characters): "
        "write the node's push key as hex",
    ),
    ("key too short", (("nodes[2].key", "00112233"),), "nodes[2].key: must be 16..128 hex"),
    (
        "bad gateway_id",
        (("gateway_id", "GW_East"),),
        'gateway_id: "GW_East" is not allowed: use 1..63 lowercase letters, digits and "-", '
        "starting with a letter or digit",
    ),
    ("gateway_id with leading dash", (("gateway_id", "-gw"),), 'gateway_id: "-gw" is not allowed'),
    ("gateway_id too long", (("gateway_id", "g" * 64),), 'gateway_id: "ggg'),
    (
        "topic_prefix with wildcard",
        (("mqtt.topic_prefix", "fire/#"),),
        'mqtt.topic_prefix: "fire/#" has a wildcard ("#" or "+"): topics the gateway publishes '
        'take none: write e.g. "firelane"',
    ),
    (
        "topic_prefix with a slash at the end",
        (("mqtt.topic_prefix", "firelane/"),),
        'mqtt.topic_prefix: "firelane/" starts or ends with "/": the gateway adds the separators',
    ),
    (
        "topic_prefix reserved",
        (("mqtt.topic_prefix", "$SYS"),),
        'mqtt.topic_prefix: "$SYS" starts with "$"',
    ),
    (
        "password and password_file",
        (
            ("mqtt.username", "u"),
            ("mqtt.password", "p"),
            ("mqtt.password_file", "/etc/firelane/mqtt.pass"),
        ),
        "mqtt.password_file: give password or password_file, not both: remove one",
    ),
    (
        "password without username",
        (("mqtt.password", "p"),),
        "mqtt.password: a password needs a username (MQTT 3.1.1, 3.1.2.9): set mqtt.username",
    ),
    (
        "client_cert without client_key",
        (("mqtt.tls", True), ("mqtt.client_cert", "/etc/firelane/gw.pem")),
        "mqtt.client_key: client_cert and client_key go together: set both or neither",
    ),
    (
        "ca_file without tls",
        (("mqtt.ca_file", "/etc/firelane/ca.pem"),),
        "mqtt.ca_file: needs tls = true: set mqtt.tls = true or remove it",
    ),
    (
        "broker given as a URL",
        (("mqtt.host", "mqtt://broker.example"),),
        'mqtt.host: "mqtt://broker.example" is not a host name or address: give the host only',
    ),
    ("site missing", (("site", _DELETE),), 'site: required: add site = "Old Town East"'),
    ("site empty", (("site", "  "),), 'site: is empty: write e.g. site = "Old Town East"'),
    ("host missing", (("mqtt.host", _DELETE),), 'mqtt.host: required: add host = "broker'),
    ("storage missing", (("storage", _DELETE),), "storage: required: add a [storage] table"),
    (
        "rules not a table",
        (("rules", 5),),
        "rules: 5 (an integer) is not a table: write it as a [rules] table",
    ),
    (
        "buses as one table",
        (("buses", {"name": "east"}),),
        "buses: a table is not an array of tables: write each as [[buses]]",
    ),
    ("no nodes", (("nodes", []),), "nodes: required: add at least one [[nodes]] table"),
    (
        "unknown bus kind",
        (("buses[0].kind", "rtuu"),),
        'buses[0].kind: "rtuu" is not one of "rtu", "tcp", "push": use one of them (did you mean '
        '"rtu"?)',
    ),
    (
        "baud not a node baud",
        (("buses[0].baud", 14400),),
        "buses[0].baud: 14400 is not one of 9600, 19200, 38400, 57600, 115200: use one of them",
    ),
    (
        "tcp key on an rtu bus",
        (("buses[0].host", "10.0.0.5"),),
        "buses[0].host: only tcp buses take host; this one is rtu: remove it or change kind",
    ),
    (
        "poll key on a push bus",
        (("buses[1].status_every_s", 2.0),),
        "buses[1].status_every_s: only rtu and tcp buses take status_every_s; this one is push",
    ),
    (
        "tcp bus without host",
        (("buses[1].kind", "tcp"), ("buses[1].port", _DELETE), ("nodes[2].bus", "east")),
        'buses[1].host: required: add host = "10.0.0.5"',
    ),
    (
        "two buses one name",
        (("buses[1].name", "east"), ("nodes[2].bus", "east"), ("nodes[2].address", 2)),
        'buses[1].name: "east" is already used by buses[0] ("east"): give each bus its own name',
    ),
    (
        "two nodes one name",
        (("nodes[1].name", "house-7"),),
        'nodes[1].name: "house-7" is already used by nodes[0] ("house-7"): give each node its own',
    ),
    (
        "two nodes one node_id",
        (("nodes[0].node_id", 0x1A000102),),
        'nodes[2].node_id: 0x1A000102 is already used by nodes[0] ("house-7"): each node has its '
        "own NODE_ID (register 0x0003): read it from the node",
    ),
    ("node_id over u32", (("nodes[2].node_id", 1 << 32),), "nodes[2].node_id: 4294967296 is out"),
    (
        "bad node name",
        (("nodes[0].name", "House 7"),),
        'nodes[0].name: "House 7" is not allowed: use lowercase letters, digits, "_" and "-"',
    ),
    (
        "relative storage path",
        (("storage.path", "gateway.sqlite3"),),
        'storage.path: "gateway.sqlite3" is relative: give an absolute path, e.g. '
        '"/var/lib/firelane/gateway.sqlite3"',
    ),
    (
        "port not a device path",
        (("buses[0].port", "ttyUSB0"),),
        'buses[0].port: "ttyUSB0" is not a device path: give one under /dev',
    ),
    (
        "supervision shorter than three status reads",
        (("buses[0].status_every_s", 5), ("nodes[0].supervision_s", 12)),
        'nodes[0].supervision_s: 12 s is shorter than 3 status reads on bus "east" '
        "(status_every_s = 5): raise it to at least 15 or lower the bus's status_every_s",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_config_names_the_key_and_the_fix(
    changes: tuple[tuple[str, object], ...], expected: str
) -> None:
    messages = errors(edit(*changes))
    assert len(messages) == 1, messages  # one mistake, one message: no follow-on noise
    assert messages[0].startswith(expected), messages[0]


def test_every_error_is_reported_at_once() -> None:
    data = edit(
        ("gateway_id", "GW"),
        ("nodes[1].address", 12),
        ("nodes[2].node_id", _DELETE),
        ("mqtt.keepalive_s", True),
        ("buses[0].bogus", 1),
    )
    with pytest.raises(ConfigError) as info:
        parse(data, "site.toml", check_paths=False)
    keys = [m.split(":", 1)[0] for m in info.value.messages]
    assert keys == [
        "gateway_id",
        "mqtt.keepalive_s",
        "buses[0].bogus",
        "nodes[2].node_id",
        "nodes[1].address",
    ]
    lines = str(info.value).splitlines()
    assert len(lines) == 5 and all(line.startswith("site.toml: ") for line in lines)


def test_supervision_from_rules_against_a_slow_bus_names_where_it_came_from() -> None:
    data = edit(("rules", {"supervision_s": 20}), ("buses[0].status_every_s", 10))
    assert errors(data) == tuple(
        f"nodes[{i}].supervision_s: 20 s (rules.supervision_s) is shorter than 3 status reads on "
        'bus "east" (status_every_s = 10): raise it to at least 30 or lower the bus\'s '
        "status_every_s"
        for i in (0, 1)
    )


# Derived timeouts, worked by hand: (8 + 5 + 2 x 8) x 11 bits / baud + 2 x t3.5 + 10 ms node
# turnaround + 16 ms USB adapter latency.
HAND_TIMEOUT_MS = {9600: 67.250, 19200: 46.625, 38400: 37.807, 57600: 35.038, 115200: 32.269}


@pytest.mark.parametrize("baud", cfg.BAUD_RATES)
def test_timeout_derived_from_baud(baud: int) -> None:
    bus = cfg.BusConfig("east", "rtu", "/dev/ttyUSB0", baud)
    assert bus.timeout_s == pytest.approx(
        HAND_TIMEOUT_MS[baud] / 1000, abs=2e-6
    )  # t3.5 in whole µs
    # One formula for the service and the Bus default (gateway/bus_timing.py).
    assert bus.timeout_s == response_timeout_s(baud, LONGEST_READ)
    response_s = (5 + 2 * 8) * 11 / baud + t35_us(baud) / 1e6
    # Room for a 16 ms USB adapter latency (DOMAIN.md) on top of the response itself.
    assert bus.timeout_s > response_s + 0.016
    assert cfg.BusConfig("east", "rtu", "/dev/ttyUSB0", baud, timeout_ms=300).timeout_s == 0.3


def test_timeout_of_a_tcp_bus() -> None:
    assert cfg.BusConfig("m", "tcp", host="10.0.0.5").timeout_s == cfg.TCP_TIMEOUT_MS / 1000
    assert cfg.BusConfig("m", "tcp", host="10.0.0.5", timeout_ms=40).timeout_s == 0.04


def test_timeouts_through_parse() -> None:
    data = edit(("buses[0].baud", 9600), ("buses[1].timeout_ms", 120))
    config = parse(data, check_paths=False)
    assert config.bus("east").timeout_s == cfg.derived_timeout_s(9600)
    assert config.bus("yard").timeout_s == 0.12


# Files: paths checked with check_paths, TOML and reading errors.


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def local_toml(tmp_path: Path, port: str = "/dev/ttyUSB0") -> str:
    """The example with its paths moved into tmp_path (which holds the files)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    write(etc / "ca.pem", "ca")
    write(etc / "mqtt.pass", "s3cret\n")
    (tmp_path / "var").mkdir()
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("/etc/firelane", str(etc)).replace("/var/lib/firelane", f"{tmp_path}/var")
    return re.sub(r'port = "/dev/serial/by-id/[^"]*A10K[^"]*"', f'port = "{port}"', text)


def test_paths_are_checked(tmp_path: Path) -> None:
    config = load(write(tmp_path / "gw.toml", local_toml(tmp_path)))
    assert config.storage.path == tmp_path / "var" / "gateway.sqlite3"
    assert config.mqtt.password_value() == "s3cret"  # read only now, one newline dropped

    with pytest.raises(ConfigError) as info:
        load(EXAMPLE)  # its /var/lib/firelane and /etc/firelane are not on this machine
    assert [m.split(":")[0] for m in info.value.messages] == [
        "storage.path",
        "mqtt.ca_file",
        "mqtt.password_file",
    ]
    assert "storage.path: directory /var/lib/firelane does not exist: create it" in str(info.value)
    assert "mqtt.ca_file: /etc/firelane/ca.pem does not exist: create it or fix the path" in str(
        info.value
    )


def test_path_problems(tmp_path: Path) -> None:
    text = local_toml(tmp_path, port=str(tmp_path / "pty-link"))
    text = text.replace(f"{tmp_path}/var/gateway.sqlite3", f"{tmp_path}/var")
    text = text.replace(f"{tmp_path}/etc/ca.pem", f"{tmp_path}/etc")
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path / "gw.toml", text))
    assert info.value.messages == (
        f"storage.path: {tmp_path}/var is a directory: name a file in it, e.g. "
        f"{tmp_path}/var/gateway.sqlite3",
        f"mqtt.ca_file: {tmp_path}/etc is a directory: give the path of a file",
        f"buses[0].port: {tmp_path}/pty-link does not exist and is not under /dev: fix the path",
    )
    write(tmp_path / "pty-link", "")  # an existing path outside /dev is a port (a pty link)
    (tmp_path / "var" / "gateway.sqlite3").mkdir()
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "gw.toml")
    assert [m.split(":")[0] for m in info.value.messages] == ["storage.path", "mqtt.ca_file"]


def test_password_file_errors_surface_at_connect_time(tmp_path: Path) -> None:
    mqtt = cfg.MqttConfig("broker", "gw", username="u", password_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"^mqtt.password_file: cannot read .*missing"):
        mqtt.password_value()
    empty = write(tmp_path / "empty", "\n")
    with pytest.raises(ConfigError, match="is empty: write the password"):
        dataclasses.replace(mqtt, password_file=empty).password_value()
    assert cfg.MqttConfig("broker", "gw").password_value() is None


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ('site = "x"\ngateway_id = \n', "line 2, column 14", "Invalid value"),
        ('site = "x"\n[mqtt]\nhost = "a"\nport = [1,\n', "end of file", "Invalid value"),
        ("site = 'x'\nsite = 'y'\n", "line 2, column 11", "Cannot overwrite a value"),
    ],
)
def test_toml_syntax_error_has_line_and_column(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    path = write(tmp_path / "gw.toml", text)
    with pytest.raises(ConfigError) as info:
        load(path)
    (message,) = info.value.messages
    assert message.startswith(f"{where}: TOML syntax error: {what}"), message
    assert message.endswith("fix the syntax there (https://toml.io)")
    assert str(info.value).startswith(f"{path}: {where}: ")


def test_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def message(path: Path) -> str:
        with pytest.raises(ConfigError) as info:
            load(path)
        return str(info.value)

    missing = tmp_path / "missing.toml"
    assert message(missing) == f"{missing}: no such file: check the path, or start from " + (
        "docs/gateway.example.toml"
    )
    assert message(tmp_path) == f"{tmp_path}: is a directory: give the config file's path"
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'site = "x"\nhouse = "Stra\xdfe"\n')
    assert message(latin1) == f"{latin1}: line 2: not UTF-8 text: save the file as UTF-8"

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert message(missing).endswith(
        ": permission denied: make it readable by the user running firelane"
    )


# `firelane check-config`.


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "gw.toml", local_toml(tmp_path))
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr() == (f"{path}: ok (2 buses, 4 nodes)\n", "")
    assert main(["check-config", "--no-path-checks", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == f"{EXAMPLE}: ok (2 buses, 4 nodes)\n"


def test_check_config_failing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("address = 13", "address = 12")
    text = text.replace('gateway_id = "gw-east-01"', 'gateway_id = "GW"')
    path = write(tmp_path / "gw.toml", text)
    assert main(["check-config", "--no-path-checks", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f'{path}: gateway_id: "GW" is not allowed: ' + cfg._GW_RULE,
        f'{path}: nodes[1].address: 12 is already used by nodes[0] ("house-7") on bus "east": '
        "give each node on a bus its own address (1..247)",
    ]


def test_check_config_checks_paths_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 1
    assert len(capsys.readouterr().err.splitlines()) == 3


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"{tmp_path / 'nope.toml'}: no such file: check the path, or " + (
        "start from docs/gateway.example.toml\n"
    )
    assert "Traceback" not in err


def test_parity_defaults_to_even_and_refuses_others() -> None:
    from gateway.config import ConfigError, parse

    base = {
        "site": "s",
        "gateway_id": "gw-1",
        "storage": {"path": "/tmp/x.sqlite3"},
        "mqtt": {"host": "h"},
        "buses": [{"name": "b", "kind": "rtu", "port": "/dev/ttyUSB0"}],
        "nodes": [{"name": "n", "bus": "b", "address": 1, "house": "h", "zone": "z"}],
    }
    assert parse(base, check_paths=False).buses[0].parity == "E"
    base["buses"] = [{"name": "b", "kind": "rtu", "port": "/dev/ttyUSB0", "parity": "N"}]
    assert parse(base, check_paths=False).buses[0].parity == "N"
    base["buses"] = [{"name": "b", "kind": "rtu", "port": "/dev/ttyUSB0", "parity": "X"}]
    with pytest.raises(ConfigError, match=r"buses\[0\]\.parity"):
        parse(base, check_paths=False)


def test_check_config_also_checks_the_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    text = (Path(__file__).parents[2] / "docs" / "gateway.example.toml").read_text()
    bad = tmp_path / "gateway.toml"
    bad.write_text(text + "\n[rules.bogus]\nx = 1\n" if "[rules]" in text else text)
    assert main(["check-config", "--no-path-checks", str(bad)]) == 1
    assert "rules.bogus" in capsys.readouterr().err
