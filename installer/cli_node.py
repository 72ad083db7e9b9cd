"""`firelane node build` and `firelane node flash` on the command line.

Every failure an installer can meet prints one message saying what is wrong and a line saying
what to do, and exits non-zero, without a traceback (installer/errors.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from installer.errors import InstallError
from installer.target import BoardTarget

BUILD_PROG = "firelane node build"
FLASH_PROG = "firelane node flash"
BAUDS = (9600, 19200, 38400, 57600, 115200)
CONFIRM_S = 20.0  # after the reset, until the node must answer on the bus


def register(node_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the build and flash commands; each sets `func` to its handler."""
    build = node_sub.add_parser(
        "build",
        help="compile firmware/ and protocol/ for the ESP32 into a versioned bundle",
        description="Compile firmware/ and protocol/ with mpy-cross (-march=xtensawin) into "
        "build/firelane-node-VERSION/: mpy/ for an ESP32, py/ (the sources) for the emulated "
        "board, and manifest.json with every file's size and sha256.",
    )
    build.add_argument("--out", type=Path, help="parent directory of the bundle (default build/)")
    build.set_defaults(func=build_command)

    flash = node_sub.add_parser(
        "flash",
        help="copy the firmware bundle and a config.json onto a node, verify and confirm",
        description="Put the node into maintenance mode, copy the bundle and a generated "
        "config.json over its USB console (mpremote), check every file's sha256 on the node, "
        "restart it, and confirm over RS-485 (--bus) that it runs this version at --address.",
    )
    where = flash.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="the node's USB console, e.g. /dev/ttyUSB0")
    where.add_argument(
        "--target", help="dir:PATH: an emulated node's flash directory (the emulator's --fs)"
    )
    flash.add_argument("--address", type=int, required=True, help="Modbus address, 1-247")
    flash.add_argument("--house", required=True, help="the house, as the command centre sees it")
    flash.add_argument("--zone", required=True, help="the zone or room")
    flash.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another config.json setting, e.g. --set leakage_alarm_ma=350 (repeatable)",
    )
    flash.add_argument("--bundle", type=Path, help="bundle directory (default: build/, current)")
    flash.add_argument("--bus", help="the RS-485 adapter's port, to confirm over Modbus")
    flash.add_argument("--baud", type=int, help="the bus's baud rate (default: the node's)")
    flash.add_argument(
        "--timeout", type=float, default=5.0, help="seconds the board has to answer (default 5)"
    )
    flash.add_argument(
        "--install-micropython",
        metavar="IMAGE",
        help="a MicroPython .bin for the ESP32: when the board has none (or the wrong one), "
        "erase it and write this with esptool first",
    )
    flash.set_defaults(func=flash_command)


def build_command(args: argparse.Namespace) -> int:
    from installer import bundle

    try:
        built = bundle.build(args.out)
    except InstallError as exc:
        print(exc.render(BUILD_PROG), file=sys.stderr)
        return exc.code
    m = built.manifest
    for kind in bundle.SETS:
        files = built.files(kind)
        size = sum(f.size for f in files)
        print(f"  {kind + '/':<5} {len(files)} files, {size:,} bytes  ({m['set_notes'][kind]})")
    print(
        f"built {built.dir} (firmware {built.version}, register map v{m['map_version']}, "
        f"{m['mpy_cross']}; needs MicroPython {m['micropython']['min_version']}+)"
    )
    return 0


def flash_command(args: argparse.Namespace) -> int:
    try:
        return _flash(args)
    except InstallError as exc:
        print(exc.render(FLASH_PROG), file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(
            f"\n{FLASH_PROG}: interrupted. The node is left in maintenance mode (LED lit, no "
            "app) and boots that way until a flash completes.\n  run the same command again "
            "to finish the flash",
            file=sys.stderr,
        )
        return 130


def _flash(args: argparse.Namespace) -> int:
    from installer import bundle, confirm, flash, micropython
    from installer.target import DirTarget, Target

    if not 1 <= args.address <= 247:
        raise InstallError(
            f"--address {args.address} is out of range: a node address is 1-247",
            "give the address planned for this house (247 is what an uncommissioned node has)",
            code=2,
        )
    if args.baud is not None and args.baud not in BAUDS:
        raise InstallError(f"--baud {args.baud}: one of {', '.join(map(str, BAUDS))}", code=2)
    built = bundle.load(args.bundle) if args.bundle else bundle.latest()
    config = flash.make_config(args.address, args.house, args.zone, args.set)
    target: Target
    if args.target is not None:
        if not args.target.startswith("dir:"):
            raise InstallError(
                f"--target {args.target}: give dir:PATH (a flash directory)",
                "for a board, use --port",
                code=2,
            )
        target = DirTarget(args.target[4:])
    else:
        target = _open_board(args.port, args.timeout, args.install_micropython)
    print(f"{FLASH_PROG}: {built.name} -> {target.description}")
    try:
        if args.install_micropython and isinstance(target, BoardTarget):
            info = target.identify()
            if info.file_set() is None:
                target.close()
                micropython.install(args.port, args.install_micropython)
                target = BoardTarget(args.port, max(args.timeout, 10.0))
        report = flash.flash(target, built, config)
        print(
            f"installed {built.name} ({report.file_set} set): {len(report.copied)} copied, "
            f"{len(report.unchanged)} unchanged"
            + (f", removed {', '.join(report.removed)}" if report.removed else "")
        )
        print(f"config.json: address {args.address}, house {args.house!r}, zone {args.zone!r}")
        if report.boot_check:
            print(f"boot check (soft reset, app not started): {report.boot_check}")
        print(f"node {report.restart}")
        if args.bus:
            baud = args.baud or int(config.get("baud", 19200))
            ident = confirm.read_identity(args.bus, baud, args.address, CONFIRM_S)
            expected_map = built.manifest["map_version"]
            if ident.version != built.version or ident.map_version != expected_map:
                raise InstallError(
                    f"the node answers with {ident}, not firmware {built.version} (map "
                    f"v{expected_map})",
                    "run the same flash command again; if it repeats, look at the node's "
                    "console (mpremote connect PORT repl) for an error at boot",
                )
            if ident.address != args.address:
                raise InstallError(
                    f"the node answers at address {ident.address}, not {args.address}",
                    "run the same flash command again",
                )
            print(f"confirmed over {args.bus}: {ident}")
        else:
            print("not confirmed over RS-485: give --bus PORT to read version and address back")
        console = target.console_output()
        if "Traceback" in console:
            raise InstallError(
                "the node printed an error on its console after the reset:\n" + console.strip(),
                "note the error and report it; the node may not be protecting the house",
            )
    finally:
        target.close()
    return 0


def _open_board(port: str, timeout: float, image: str | None) -> BoardTarget:
    from installer import micropython

    try:
        return BoardTarget(port, timeout)
    except InstallError as exc:
        if image is None or "does not answer" not in exc.message:
            raise
    print(f"{FLASH_PROG}: no MicroPython REPL on {port}; installing {image}")
    micropython.install(port, image)
    return BoardTarget(port, max(timeout, 10.0))
