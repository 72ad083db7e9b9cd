"""python -m hil_tests.bus --baud 19200 --devices gateway,node1,node2 [--ber 1e-3] [--dir DIR]

Prints one JSON line {"baud": ..., "devices": {name: path}} once the bus runs, then relays until
SIGINT or SIGTERM, prints its counters as a JSON line on stderr and exits 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from hil_tests.bus.faults import Faults
from hil_tests.bus.virtual_bus import VirtualBus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil_tests.bus", description=__doc__)
    parser.add_argument("--baud", type=int, default=19200)
    parser.add_argument("--devices", required=True, help="comma-separated device names")
    parser.add_argument("--ber", type=float, default=0.0, help="bit error rate")
    parser.add_argument("--drop", type=float, default=0.0, help="dropped byte rate")
    parser.add_argument("--noise-every", type=float, default=None, help="seconds between bursts")
    parser.add_argument("--noise-bytes", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="receive latency (FTDI 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default=None, help="where the device symlinks go")
    args = parser.parse_args(argv)
    names = [n for n in args.devices.split(",") if n]
    if not names:
        parser.error("--devices needs at least one name")
    try:
        faults = Faults(
            ber=args.ber,
            drop_rate=args.drop,
            noise_every_s=args.noise_every,
            noise_bytes=args.noise_bytes,
            latency_ms=args.latency_ms,
        )
    except ValueError as e:
        parser.error(str(e))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with VirtualBus(args.baud, faults=faults, seed=args.seed, directory=args.dir) as bus:
        paths = {name: str(bus.attach(name)) for name in names}
        print(json.dumps({"baud": args.baud, "devices": paths}), flush=True)
        stop.wait()
        print(json.dumps({"stats": bus.stats()}), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
