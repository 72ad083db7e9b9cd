"""`firelane demo`: emulated nodes on a virtual RS-485 line, the real gateway, a broker and a
subscriber standing in for the monitoring centre, playing the story in demo/story.py.

Order of start: the broker (embedded amqtt, or --mqtt), the centre's subscriber, the bus, the
nodes, the gateway; then the story, once every node is online at the centre. Order of stop,
on every path (the end, an error, Ctrl-C, SIGTERM): the gateway (it flushes and says offline),
the nodes, the bus, the subscriber, the broker; the working directory last. A second Ctrl-C
skips the orderly part and kills what still runs.

Exit status: 0 when every scripted event arrived within its bound, 1 otherwise (or when a
part failed), 128 + the signal when interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from demo import story
from demo.broker import EmbeddedBroker
from demo.centre import Centre, CentreError
from demo.rig import BrokerAddress, NodeSpec, Rig, RigError, gateway_config
from demo.view import Picture, frame, summary

PREFIX = "firelane"
SITE = "Lantern Lane (demo)"
SUPERVISION_POLL_S = 10.0  # the shortest the gateway takes (docs/gateway.md)
SUPERVISION_PUSH_S = 12.0  # push: at least twice the nodes' 5 s heartbeat
READY_S = 60.0  # from the gateway's start to every node online at the centre
REFRESH_S = 0.25  # terminal redraw period
CHECK_S = 0.5  # how often waits look at the gateway and the bus


@dataclass(frozen=True)
class Options:
    nodes: int = 8
    baud: int = 19200
    duration_s: float = story.DEFAULT_DURATION_S
    push: bool = False
    mqtt: BrokerAddress | None = None

    @property
    def supervision_s(self) -> float:
        return SUPERVISION_PUSH_S if self.push else SUPERVISION_POLL_S


class Output:
    """Plain lines, or (on a terminal) a table redrawn in place below them."""

    def __init__(self, stream: TextIO, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self._drawn = 0  # lines of the live frame on screen
        self.gone = False  # the reader closed the pipe

    def _write(self, text: str) -> None:
        """Write and flush; once the reader has gone (`firelane demo | head`), write nothing
        more: the demo still runs to its end and stops what it started."""
        if self.gone:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self.gone = True
            with contextlib.suppress(OSError, ValueError):  # no second error at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())

    def say(self, text: str = "") -> None:
        self._drawn = 0
        self._write(text + "\n")

    def log(self, lines: list[str]) -> None:
        if not self.tty and lines:
            self._write("".join(line + "\n" for line in lines))

    def draw(self, lines: list[str]) -> None:
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self._write(up + "\x1b[J" + "".join(line + "\n" for line in lines))
        self._drawn = len(lines)


def run(opts: Options, stream: TextIO | None = None) -> int:
    """The demo from start to summary; the exit status."""
    out_stream = stream if stream is not None else sys.stdout
    tty = out_stream.isatty() and os.environ.get("TERM") != "dumb"
    out = Output(out_stream, tty)
    workdir = Path(tempfile.mkdtemp(prefix="firelane-demo-"))
    nodes = [
        NodeSpec(
            story.node_name(a),
            a,
            story.house(a),
            story.zone(a, opts.nodes),
            secrets.token_bytes(16) if opts.push else None,
        )
        for a in range(1, opts.nodes + 1)
    ]
    rig = Rig(workdir, opts.baud, opts.push, nodes)
    signalled: list[int] = []
    try:
        return asyncio.run(_main(opts, out, rig, signalled))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sig = signalled[0] if signalled else signal.SIGINT
        out.say(f"demo: interrupted ({signal.Signals(sig).name}); stopped everything it started")
        return 128 + sig
    finally:
        rig.kill()
        shutil.rmtree(workdir, ignore_errors=True)


async def _main(opts: Options, out: Output, rig: Rig, signalled: list[int]) -> int:
    began = time.monotonic()
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGHUP):

        def on_signal(sig: int = sig) -> None:
            signalled.append(sig)
            task.cancel()

        loop.add_signal_handler(sig, on_signal)

    gateway_id = f"demo-{secrets.token_hex(3)}"
    steps = story.script(opts.nodes, opts.duration_s, opts.supervision_s)
    picture = Picture(
        ((n.name, n.house) for n in rig.nodes), gateway_id, PREFIX, story.expectations(steps)
    )
    changed = asyncio.Event()
    mode = "push mode (the nodes send)" if opts.push else "polled mode (the gateway asks)"
    header = (
        f"Firelane demo: {opts.nodes} nodes, one RS-485 line at {opts.baud} baud, {mode}; "
        f"story of {opts.duration_s:g} s"
    )
    out.say(header)

    def step_done(what: str, detail: str = "") -> None:
        out.say(f"  {what:<9} {detail:<62} {time.monotonic() - began:5.1f} s")

    def on_message(topic: str, payload: bytes, at: float) -> None:
        out.log(picture.on_message(topic, payload, at))
        changed.set()

    failure = ""
    lines: list[str] = []
    ok = False
    try:
        async with AsyncExitStack() as stack:
            if opts.mqtt is None:
                embedded = await stack.enter_async_context(EmbeddedBroker())
                broker = embedded.address
                step_done("broker", f"amqtt, embedded, on {broker.host}:{broker.port}")
            else:
                broker = opts.mqtt
            topic = f"{PREFIX}/{gateway_id}/#"
            centre = await stack.enter_async_context(Centre(broker, topic, on_message))
            if opts.mqtt is not None:
                step_done("broker", f"{broker.host}:{broker.port} (--mqtt)")
                retained = [f"{PREFIX}/{gateway_id}/status"]
                retained += [f"{PREFIX}/{gateway_id}/node/{n.name}/state" for n in rig.nodes]
                stack.push_async_callback(centre.clear_retained, retained)
            step_done("centre", f"subscribed to {topic}")
            stack.push_async_callback(asyncio.to_thread, rig.stop)

            paths = await asyncio.to_thread(rig.start_bus)
            step_done("bus", f"virtual RS-485, {len(paths)} devices, paced at {opts.baud} baud")
            await asyncio.to_thread(rig.start_nodes)
            step_done("nodes", f"{opts.nodes} emulated boards booted, the real firmware listening")
            rig.start_gateway(
                gateway_config(
                    workdir=rig.workdir,
                    serial=paths["gateway"],
                    broker=broker,
                    gateway_id=gateway_id,
                    site=SITE,
                    baud=opts.baud,
                    push=opts.push,
                    nodes=rig.nodes,
                    supervision_s=opts.supervision_s,
                )
            )
            step_done("gateway", f"firelane gateway run, gateway id {gateway_id}")
            ready = await _wait(picture.all_online, time.monotonic() + READY_S, changed, rig)
            if not ready:
                waiting = [r.name for r in picture.rows.values() if not (r.heard and r.online)]
                raise RigError(
                    f"not every node was online at the centre within {READY_S:g} s "
                    f"(missing: {', '.join(waiting)});\n--- gateway log (tail) ---\n"
                    f"{rig.gateway_log_tail()}"
                )
            step_done("ready", "every node online at the centre; the story begins")
            out.say()
            await _play(opts, out, rig, picture, steps, changed, header)
            picture.close()
            lines, ok = summary(picture)
            out.say("stopping the gateway, the nodes, the bus and the broker ...")
    except (RigError, CentreError) as exc:
        failure = str(exc)
    if failure:
        out.say(f"demo: FAILED: {failure}")
        return 1
    out.say()
    for line in lines:
        out.say(line)
    verdict = "ok" if ok else "FAILED (a scripted event did not arrive in time)"
    out.say(f"demo: {verdict}; wall time {time.monotonic() - began:.1f} s")
    return 0 if ok else 1


async def _wait(
    done: Callable[[], bool], deadline: float, changed: asyncio.Event, rig: Rig
) -> bool:
    """Until done() (re-checked on every message), or the deadline; RigError if the gateway
    or the bus dies meanwhile."""
    while not done():
        rig.check_alive()
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(left, CHECK_S)):
                await changed.wait()
    return True


async def _play(
    opts: Options,
    out: Output,
    rig: Rig,
    picture: Picture,
    steps: list[story.Step],
    changed: asyncio.Event,
    header: str,
) -> None:
    t0 = time.monotonic()
    picture.start(t0)
    redraw: asyncio.Task[None] | None = None
    if out.tty:

        async def refresh() -> None:
            while True:
                size = shutil.get_terminal_size()
                out.draw(frame(picture, time.monotonic(), header, size.columns, size.lines))
                await asyncio.sleep(REFRESH_S)

        redraw = asyncio.create_task(refresh(), name="demo.redraw")
    try:
        for step in steps:
            await _wait(lambda: False, t0 + step.at_s, changed, rig)
            out.log(picture.on_step(step, time.monotonic()))
            await asyncio.to_thread(_drive, rig, step)
        # The story runs its length; then what is still on its way gets until its bound.
        await _wait(lambda: False, t0 + opts.duration_s, changed, rig)
        deadlines = [o.deadline for o in picture.outstanding() if o.deadline is not None]
        if deadlines:
            await _wait(lambda: not picture.outstanding(), max(deadlines), changed, rig)
    finally:
        if redraw is not None:
            redraw.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await redraw
            size = shutil.get_terminal_size()
            out.draw(frame(picture, time.monotonic(), header, size.columns, size.lines))
            out.say()


def _drive(rig: Rig, step: story.Step) -> None:
    from hil_tests.emulator.control import ControlError

    try:
        with rig.control(step.address) as ctl:
            ctl.request(step.request)
    except (ControlError, OSError) as exc:
        raise RigError(
            f"node-{step.address} did not take {step.request} ({step.text}): {exc}"
        ) from None
