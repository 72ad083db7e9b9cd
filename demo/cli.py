"""`firelane demo` on the command line: the options, checked before anything starts (a bad
one exits 2 with argparse's usage line and what to give instead)."""

from __future__ import annotations

import argparse
import importlib.util
import math
from typing import TYPE_CHECKING

from demo import story
from protocol.registers import BAUD_CHOICES

if TYPE_CHECKING:
    from demo.rig import BrokerAddress

BAUDS = tuple(b * 100 for b in BAUD_CHOICES)  # what a node can be set to (register BAUD)

DESCRIPTION = """\
Start emulated nodes (the real firmware, one process each) on a virtual RS-485 line, the real
gateway and an MQTT broker (amqtt, embedded; or a real one with --mqtt), play a short story (a
smoke fire in one house, leakage rising in another, a node losing power, a call point pressed)
and show what reaches the monitoring centre, live, with each alarm's latency from the sensor
to the subscriber. Ends with a summary; exits 0 when every scripted alarm arrived in time, 1
otherwise. Needs a source checkout (hil_tests/, firmware/).
"""


def _nodes(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not story.MIN_NODES <= n <= story.MAX_NODES:
        raise argparse.ArgumentTypeError(
            f"{n} is outside {story.MIN_NODES}..{story.MAX_NODES} (the story casts four "
            "nodes, and each emulated board is a process of its own)"
        )
    return n


def _baud(text: str) -> int:
    try:
        baud = int(text)
    except ValueError:
        baud = -1
    if baud not in BAUDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a node baud rate: one of {', '.join(map(str, BAUDS))}"
        )
    return baud


def _duration(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and story.MIN_DURATION_S <= seconds <= story.MAX_DURATION_S):
        raise argparse.ArgumentTypeError(
            f"{text} s is outside {story.MIN_DURATION_S:g}..{story.MAX_DURATION_S:g} s (below "
            f"{story.MIN_DURATION_S:g} s a leakage level has no time to confirm before the next)"
        )
    return seconds


def _mqtt(text: str) -> BrokerAddress:
    from demo.broker import parse_mqtt_url  # imported when used: every `firelane` pays for this

    try:
        return parse_mqtt_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the live demo: emulated nodes, the gateway, a broker, a fire",
        description=DESCRIPTION,
    )
    demo.add_argument(
        "--nodes",
        type=_nodes,
        default=8,
        metavar="N",
        help=f"emulated nodes on the line, {story.MIN_NODES}..{story.MAX_NODES} (8)",
    )
    demo.add_argument(
        "--baud", type=_baud, default=19200, help=f"line speed, {'/'.join(map(str, BAUDS))} (19200)"
    )
    demo.add_argument(
        "--duration",
        type=_duration,
        default=story.DEFAULT_DURATION_S,
        metavar="S",
        help="the story's length in seconds; its timeline is scaled to it "
        f"({story.DEFAULT_DURATION_S:g})",
    )
    demo.add_argument(
        "--mode",
        choices=("poll", "push"),
        default="poll",
        help="poll: the gateway polls the nodes (Modbus RTU); push: the nodes send signed "
        "frames (poll)",
    )
    demo.add_argument(
        "--mqtt",
        type=_mqtt,
        metavar="URL",
        help="a real broker, mqtt://[user[:password]@]host[:port], instead of the embedded one",
    )
    demo.add_argument(
        "--tour",
        action="store_true",
        help="instead: the offline tour of the wire protocol (no processes; the options above "
        "do not apply)",
    )
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.tour:
        from demo.tour import run_demo

        return run_demo()
    from demo.rig import RigError, source_root

    try:
        source_root()
    except RigError as exc:
        print(exc)
        return 2
    if args.mqtt is None and importlib.util.find_spec("amqtt") is None:
        print(
            "firelane demo: the embedded broker needs amqtt: pip install 'firelane[demo]' "
            "(make demo does), or give a broker with --mqtt mqtt://host:port"
        )
        return 2
    from demo import live

    return live.run(
        live.Options(
            nodes=args.nodes,
            baud=args.baud,
            duration_s=args.duration,
            push=args.mode == "push",
            mqtt=args.mqtt,
        )
    )
