"""The `firelane` command line."""

from __future__ import annotations

import argparse
import sys

from gateway import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="firelane",
        description="Firelane: fire and leakage sensor nodes, their gateway and tools.",
    )
    parser.add_argument("--version", action="version", version=f"firelane {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("demo", help="run the demo: what Firelane can do so far")
    sub.add_parser("registers", help="print the node register map")
    decode = sub.add_parser("decode", help="decode captured Modbus RTU or push frames (hex)")
    decode.add_argument("hex", nargs="+", help="bytes in hex, e.g. 11 03 00 6b 00 03 76 87")
    decode.add_argument("--key", help="the node's push key (text), to verify signed frames")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "demo":
        from gateway.demo import run_demo

        return run_demo()
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
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
