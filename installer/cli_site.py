"""`firelane bus scan`, `firelane node set-address` and `firelane walktest` on the command line.

Exit status, all three: 0 done and nothing wrong; 1 the bus or the site has a problem (a
conflict, a node missing, an address taken, a node that did not take its address, a node not
yet commissioned); 2 the command could not run (bad arguments, a port missing or busy, a bad
config file). Every failure is one message on stderr saying what is wrong and what to do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from protocol.codes import ADDRESS_MAX

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

    from gateway.config import GatewayConfig
    from installer.rtu_line import SerialLine

BAUDS = (9600, 19200, 38400, 57600, 115200)  # registers.BAUD_CHOICES x 100


def register(sub: Sub, node_sub: Sub, bus_sub: Sub) -> None:
    """Add the scan, set-address and walktest commands; each sets `func` to its handler."""
    scan = bus_sub.add_parser(
        "scan",
        help="find the nodes on a bus: address, node id, firmware, map version",
        description="Read the identity of every address on an RS-485 bus with short, "
        "baud-derived timeouts (all 247 in about 4 s at 115200 baud), then check each one "
        "that answered. Flags address conflicts and, with --config, nodes missing from the "
        "gateway config and configured nodes not found. Exit 0: nodes found, no problem; 1: "
        "problems (or nothing found); 2: bad input.",
    )
    _line_options(scan)
    scan.add_argument("--from", dest="first", type=int, default=1, help="first address (1)")
    scan.add_argument("--to", dest="last", type=int, default=ADDRESS_MAX, help="last (247)")
    scan.add_argument("--config", type=Path, help="the gateway's TOML file, to compare with")
    scan.add_argument("--bus", help="which bus of --config this port is (when it cannot tell)")
    scan.add_argument(
        "--timeout-ms",
        type=float,
        help="window per address in the quick pass (default: derived from the baud rate)",
    )
    scan.set_defaults(func=scan_command)

    move = node_sub.add_parser(
        "set-address",
        help="change a node's Modbus address over the bus, confirmed by reading it back",
        description="Write a node's ADDRESS register: the node saves it to its config.json "
        "and answers at the new address from then on. Refuses when the new address is taken "
        "or two nodes answer at the old one.",
    )
    _line_options(move)
    move.add_argument("--from", dest="old", type=int, required=True, help="its address now")
    move.add_argument("--to", dest="new", type=int, required=True, help="its new address")
    move.set_defaults(func=set_address_command)

    walk = sub.add_parser(
        "walktest",
        help="commissioning walk test: the gateway in test mode, then a report",
        description="Run the gateway in test mode: every activation (smoke tester, call point, "
        "leakage, self-test) is shown live with its house and zone and sent upstream marked "
        "as a test, never as a real alarm. On Ctrl-C, SIGTERM or after --duration it writes "
        "the commissioning report (Markdown and CSV). Stop the gateway service first.",
    )
    walk.add_argument("--config", type=Path, required=True, help="the gateway's TOML file")
    walk.add_argument(
        "--report",
        type=Path,
        default=Path("."),
        help="directory for the report, the log and the test outbox (default: here)",
    )
    walk.add_argument("--duration", type=float, help="stop after this many seconds")
    walk.add_argument(
        "--require",
        default="smoke,leakage,button",
        help="kinds each node must pass: smoke, leakage, temperature, button, self_test "
        "(default smoke,leakage,button)",
    )
    walk.add_argument(
        "--storage", type=Path, help="outbox database (default: REPORT/walktest.sqlite3)"
    )
    walk.set_defaults(func=walktest_command)


def _line_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="the USB-RS485 adapter, e.g. /dev/ttyUSB0")
    p.add_argument(
        "--baud", type=int, help="baud rate (default: the bus's in --config, else 19200)"
    )
    p.add_argument(
        "--parity",
        choices=("E", "N", "O"),
        help="E (8E1, the Modbus default), N (8N1) or O (8O1) (default: the bus's in --config, "
        "else E)",
    )


def _fail(prog: str, message: str, code: int) -> int:
    print(f"firelane {prog}: {message}", file=sys.stderr)
    return code


def _line_defaults(args: argparse.Namespace, baud: int = 19200, parity: str = "E") -> None:
    """--baud and --parity not given: the bus's from the config, else the Modbus defaults."""
    args.baud = baud if args.baud is None else args.baud
    args.parity = parity if args.parity is None else args.parity


def _open(prog: str, args: argparse.Namespace) -> SerialLine | int:
    from installer.rtu_line import STOP_SERVICE, PortError, open_line, service_active

    if args.baud not in BAUDS:
        known = ", ".join(map(str, BAUDS))
        return _fail(prog, f"--baud {args.baud}: a node runs at one of {known}", 2)
    try:
        line = open_line(args.port, args.baud, args.parity)
    except PortError as exc:
        return _fail(prog, str(exc), 2)
    if service_active():
        print(
            f"warning: the gateway service is running; if it uses {args.port}, its polls will "
            f"garble this command's: stop it first with `{STOP_SERVICE}`",
            file=sys.stderr,
        )
    return line


def _load(prog: str, path: Path) -> GatewayConfig | int:
    from gateway.config import ConfigError, load
    from gateway.rules import NodeInfo, RuleError, compile_rules, parse_rules

    try:
        cfg = load(path, check_paths=False)
        infos = {n.name: NodeInfo(n.name, n.house, n.zone, n.supervision_s) for n in cfg.nodes}
        compile_rules(parse_rules(cfg.rules), infos)
    except ConfigError as exc:
        return _fail(prog, f"{exc}\n(check it with `firelane check-config {path}`)", 2)
    except RuleError as exc:
        return _fail(prog, f"{path}: [rules]: {exc}", 2)
    return cfg


def scan_command(args: argparse.Namespace) -> int:
    from installer import scan as s
    from installer.rtu_line import Master, PortError

    prog = "bus scan"
    if not 1 <= args.first <= args.last <= ADDRESS_MAX:
        return _fail(
            prog,
            f"--from {args.first} --to {args.last}: addresses are 1..{ADDRESS_MAX}, from <= to",
            2,
        )
    cfg = bus = None
    note = None
    if args.config is not None:
        loaded = _load(prog, args.config)
        if isinstance(loaded, int):
            return loaded
        cfg = loaded
        try:
            bus, note = s.pick_bus(cfg, args.port, args.bus)
        except s.BusChoiceError as exc:
            return _fail(prog, str(exc), 2)
    if bus is not None:
        _line_defaults(args, bus.baud, bus.parity)
    _line_defaults(args)
    opened = _open(prog, args)
    if isinstance(opened, int):
        return opened
    timeout = None if args.timeout_ms is None else args.timeout_ms / 1000
    with opened as line:
        master = Master(line, args.baud)
        quick = timeout or s.quick_timeout_s(args.baud, line.latency_s)
        print(
            f"scanning {args.port} addresses {args.first}..{args.last} at {args.baud} baud, "
            f"8{args.parity}1, {quick * 1000:.1f} ms per address",
            flush=True,
        )
        try:
            result = s.scan(master, args.first, args.last, timeout_s=timeout)
        except PortError as exc:
            return _fail(prog, str(exc), 1)
        except KeyboardInterrupt:
            return _fail(prog, "interrupted: nothing was changed on the bus", 130)
    problems = list(result.problems)
    notes = list(result.notes)
    names = None
    if cfg is not None and bus is not None:
        problems += s.compare(result, bus, cfg.nodes)
        names = {f.address: s.config_name(cfg.nodes, bus, f.address) or "-" for f in result.found}
        if note:
            notes.append(note)
        if bus.baud != args.baud or bus.parity != args.parity:
            notes.append(
                f"the config's bus {bus.name} runs at {bus.baud} baud, parity {bus.parity}; "
                f"this scan at {args.baud}, {args.parity}"
            )
    print(s.render(result, names))
    for n in notes:
        print(f"note: {n}")
    for p in problems:
        print(f"PROBLEM: {p}")
    found = len(result.found)
    print(
        f"{found} node{'s' * (found != 1)} found in {result.elapsed_s:.1f} s, "
        f"{len(problems)} problem{'s' * (len(problems) != 1)}"
    )
    if not found:
        print(
            "nothing answered: check the A/B wiring (swap A and B if unsure), the baud rate "
            "and parity (--baud, --parity), the terminations, and that the nodes have power",
            file=sys.stderr,
        )
        return 1
    return 1 if problems else 0


def set_address_command(args: argparse.Namespace) -> int:
    from installer.address import AddressError, check_addresses, set_address
    from installer.rtu_line import Master, PortError

    prog = "node set-address"
    try:
        check_addresses(args.old, args.new)
    except AddressError as exc:
        return _fail(prog, str(exc), exc.code)
    _line_defaults(args)
    opened = _open(prog, args)
    if isinstance(opened, int):
        return opened
    hint = f"firelane bus scan --port {args.port} --baud {args.baud} --parity {args.parity}"
    with opened as line:
        try:
            moved = set_address(Master(line, args.baud), args.old, args.new, scan_hint=hint)
        except AddressError as exc:
            return _fail(prog, str(exc), exc.code)
        except (PortError, KeyboardInterrupt) as exc:
            why = str(exc) if isinstance(exc, PortError) else "interrupted"
            return _fail(
                prog,
                f"{why}: the node may or may not have its new address: check with `{hint}`",
                1 if isinstance(exc, PortError) else 130,
            )
    print(
        f"node 0x{moved.node_id:08X} moved from address {moved.old} to {moved.new} and answers "
        f"there (firmware {moved.identity.firmware}); it keeps the address after a restart. "
        f"Set `address = {moved.new}` for it in the gateway config."
    )
    return 0


def walktest_command(args: argparse.Namespace) -> int:
    from gateway.outbox import OutboxError
    from installer import walktest
    from installer.rtu_line import PortError
    from installer.walklog import KINDS

    prog = "walktest"
    required = tuple(k.strip() for k in args.require.split(",") if k.strip())
    unknown = [k for k in required if k not in KINDS]
    if unknown:
        return _fail(prog, f"--require {args.require}: unknown {unknown}; use {KINDS}", 2)
    if args.duration is not None and args.duration <= 0:
        return _fail(prog, f"--duration {args.duration}: give a positive number of seconds", 2)
    loaded = _load(prog, args.config)
    if isinstance(loaded, int):
        return loaded
    try:
        walktest.check_ports(loaded)
    except PortError as exc:
        return _fail(prog, str(exc), 2)
    try:
        md, csv, complete = walktest.run(
            loaded,
            args.report,
            duration_s=args.duration,
            required=required,
            storage=args.storage,
        )
    except OSError as exc:
        return _fail(prog, f"{exc}: check that --report {args.report} is writable", 2)
    except OutboxError as exc:
        return _fail(prog, f"{exc} (the walk test's outbox, --storage)", 2)
    print(f"report: {md}\n        {csv}")
    if not complete:
        print("some nodes are not commissioned yet: see 'Still to do' in the report")
    return 0 if complete else 1
