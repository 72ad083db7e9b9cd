"""The `firelane` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway import __version__

if TYPE_CHECKING:
    from gateway.config import GatewayConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="firelane",
        description="Firelane: fire and leakage sensor nodes, their gateway and tools.",
    )
    parser.add_argument("--version", action="version", version=f"firelane {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("registers", help="print the node register map")
    decode = sub.add_parser("decode", help="decode captured Modbus RTU or push frames (hex)")
    decode.add_argument("hex", nargs="+", help="bytes in hex, e.g. 11 03 00 6b 00 03 76 87")
    decode.add_argument("--key", help="the node's push key (text), to verify signed frames")
    check = sub.add_parser(
        "check-config",
        help="check a gateway configuration file",
        description="Check a gateway configuration (docs/gateway.example.toml) without opening "
        "any port, socket or database. Prints every problem, one per line.",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="the TOML file")
    check.add_argument(
        "--no-path-checks",
        action="store_true",
        help="do not look paths up (to check a file away from the gateway it is meant for)",
    )
    gw = sub.add_parser("gateway", help="run the gateway service")
    gw_sub = gw.add_subparsers(dest="gateway_command", metavar="GATEWAY_COMMAND", required=True)
    run = gw_sub.add_parser(
        "run",
        help="run the gateway until SIGTERM (under systemd: deploy/firelane-gateway.service)",
        description="Poll and receive the nodes, run the rule core, keep the outbox and forward "
        "to MQTT, until SIGTERM or Ctrl-C. Logs go to stderr (the journal under systemd).",
    )
    run.add_argument("--config", required=True, type=Path, help="the gateway's TOML file")
    status = sub.add_parser("status", help="show a running gateway's buses, nodes and outbox")
    status.add_argument("--config", required=True, type=Path, help="the gateway's TOML file")
    node = sub.add_parser("node", help="node tools")
    node_sub = node.add_subparsers(dest="node_command", metavar="NODE_COMMAND", required=True)
    emulate = node_sub.add_parser(
        "emulate",
        help="run the node firmware on an emulated board (hil_tests/emulator/)",
        description="Run the node firmware, unchanged, on an emulated ESP32 board. Prints JSON "
        "event lines on stdout; a control socket drives its sensors and power.",
    )
    # The same options as `python -m hil_tests.emulator` (hil_tests/emulator/runner.py).
    emulate.add_argument(
        "--serial",
        required=True,
        type=Path,
        help="the node's RS-485 port: a "
        "character device, or where to put a symlink to a new pseudo-terminal",
    )
    emulate.add_argument("--fs", required=True, type=Path, help="the node's flash (a directory)")
    emulate.add_argument("--address", type=int, help="Modbus address for a new config.json")
    emulate.add_argument("--baud", type=int, help="baud rate for a new config.json")
    emulate.add_argument("--control", type=Path, help="control socket (default FS/control.sock)")
    emulate.add_argument("--uid", help="machine.unique_id() as 12 hex digits")
    emulate.add_argument("--console", type=Path, help="USB console: symlink to a REPL pty")
    bus = sub.add_parser("bus", help="tools for an RS-485 bus: find the nodes on it")
    bus_sub = bus.add_subparsers(dest="bus_command", metavar="BUS_COMMAND", required=True)
    # Commands that live in their own packages register themselves here; each sets
    # `func` (argparse set_defaults) to its handler, which gets the parsed args.
    from demo import cli as demo_cli
    from installer import cli_node, cli_site

    demo_cli.register(sub)
    cli_node.register(node_sub)
    cli_site.register(sub, node_sub, bus_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    func = getattr(args, "func", None)
    if func is not None:
        code: int = func(args)
        return code
    if args.command == "registers":
        from gateway.inspect import register_table

        print(register_table())
        return 0
    if args.command == "decode":
        from gateway.inspect import decode_hex

        try:
            key = args.key.encode() if args.key else None
            lines = decode_hex(" ".join(args.hex), key)
        except ValueError:
            print("firelane decode: the input is not hex; give bytes like '11 03 00 6b'")
            return 2
        print("\n".join(lines))
        return 0
    if args.command == "check-config":
        return _check_config(args.file, not args.no_path_checks)
    if args.command == "gateway":
        return _gateway_run(args.config)
    if args.command == "status":
        return _status(args.config)
    if args.command == "node" and args.node_command == "emulate":
        return _emulate(parser, args)
    parser.error(f"unknown command {args.command!r}")
    return 2


def _load_checked(path: Path, check_paths: bool = True) -> GatewayConfig:
    """The config, with its [rules] compiled against its nodes too; ConfigError otherwise."""
    from gateway.config import ConfigError, load
    from gateway.rules import NodeInfo, RuleError, compile_rules, parse_rules

    config = load(path, check_paths=check_paths)
    try:
        infos = {n.name: NodeInfo(n.name, n.house, n.zone, n.supervision_s) for n in config.nodes}
        compile_rules(parse_rules(config.rules), infos)
    except RuleError as exc:
        raise ConfigError([str(exc)], str(path)) from None
    return config


def _check_config(path: Path, check_paths: bool) -> int:
    from gateway.config import ConfigError

    try:
        config = _load_checked(path, check_paths)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    buses, nodes = len(config.buses), len(config.nodes)
    print(f"{path}: ok ({buses} bus{'es' * (buses != 1)}, {nodes} node{'s' * (nodes != 1)})")
    return 0


def _gateway_run(path: Path) -> int:
    from gateway.app import run_service
    from gateway.config import ConfigError

    try:
        config = _load_checked(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return run_service(config)


def _status(path: Path) -> int:
    from gateway.config import ConfigError, load
    from gateway.status import read_status, render, status_path

    try:
        config = load(path, check_paths=False)
        snapshot = read_status(status_path(config.storage.path))
    except (ConfigError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(render(snapshot))
    return 0


def _emulate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    # The emulator lives in the source tree (hil_tests/), not in the installed packages.
    root = Path(__file__).resolve().parents[1]
    if not (root / "hil_tests" / "emulator").is_dir():
        print("firelane node emulate: needs a Firelane source checkout (hil_tests/emulator/)")
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from hil_tests.emulator import runner

    try:
        options = runner.check(
            args.serial, args.fs, args.address, args.baud, args.control, args.uid, args.console
        )
    except ValueError as exc:
        parser.error(str(exc))
    return runner.run(options)


if __name__ == "__main__":
    sys.exit(main())
