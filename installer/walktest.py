"""`firelane walktest`: the gateway, in this process, in test mode, until Ctrl-C, SIGTERM or
--duration; then the commissioning report.

The gateway is the real one (gateway/app.py) with its rule core in test mode: every alert it
raises, smoke tester, call point, self-test or a real fire alike, goes upstream with
`"test": true` (docs/mqtt.md), and is shown here as it happens with the node's house and zone.
Its outbox is a file of its own in the report directory (unless --storage), so the service's
database is neither needed (it may belong to another user) nor filled with test events that a
later start would replay. The service must be stopped first: two gateways on one serial line
garble each other's polls, and two MQTT clients with one id keep disconnecting each other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from gateway.app import Gateway, Observer
from gateway.config import GatewayConfig
from gateway.model import Alert, NodeEvent, Sample, Silent
from installer import report
from installer.rtu_line import STOP_SERVICE, PortError, check_port_free, service_active
from installer.walklog import WalkLog

log = logging.getLogger("firelane.walktest")


def check_ports(cfg: GatewayConfig) -> None:
    """PortError when the gateway service runs, or a serial port of the config is missing or
    in use. (The service's own user may hide its open ports from /proc; systemd does not.)"""
    if service_active():
        raise PortError(
            f"the gateway service is running and polls these nodes: stop it first with "
            f"`{STOP_SERVICE}`, and start it again after the walk test"
        )
    for bus in cfg.buses:
        if bus.kind in ("rtu", "push"):
            check_port_free(bus.port)


def run(
    cfg: GatewayConfig,
    report_dir: Path,
    *,
    duration_s: float | None = None,
    required: Iterable[str] | None = None,
    storage: Path | None = None,
    out: TextIO = sys.stdout,
) -> tuple[Path, Path, bool]:
    """Run the walk test; the report's Markdown and CSV paths, and whether every node is
    commissioned (nothing left to do)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    db = storage or report_dir / "walktest.sqlite3"
    cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, path=db))
    walk = WalkLog(cfg) if required is None else WalkLog(cfg, required)

    def show(line: str | None) -> None:
        if line is not None:
            print(line, file=out, flush=True)

    def observe(item: Alert | Sample | Silent | NodeEvent) -> None:
        now = time.time()
        if isinstance(item, Alert):
            show(walk.alert(item, now))
        else:
            show(walk.reading(item, now))

    handlers = _logging(report_dir / "walktest.log")
    upstream: report.Upstream | None = None
    try:
        nodes = len(cfg.nodes)
        show(
            f"walk test at {cfg.site}: gateway {cfg.gateway_id}, {nodes} node"
            f"{'s' * (nodes != 1)}; every activation goes upstream marked as a test."
        )
        show(
            "Activate each node (smoke tester, call point, leakage test); "
            + ("Ctrl-C to stop" if duration_s is None else f"stops after {duration_s:g} s")
            + " and write the report."
        )
        try:
            upstream = asyncio.run(_main(cfg, observe, duration_s))
        except KeyboardInterrupt:  # Ctrl-C before the gateway had its handlers: report anyway
            show("interrupted while starting")
    finally:
        walk.finish(time.time())
        for h in handlers:
            logging.getLogger().removeHandler(h)
            h.close()
    md, csv = report.write(report_dir, walk, upstream)
    return md, csv, report.complete(walk)


async def _main(
    cfg: GatewayConfig,
    observe: Observer,
    duration_s: float | None,
) -> report.Upstream:
    gateway = Gateway(cfg, test_mode=True, observer=observe)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, gateway.stop)
    if duration_s is not None:
        loop.call_later(duration_s, gateway.stop)
    try:
        await gateway.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    pending = sum(gateway.outbox.depth().values()) if gateway.outbox is not None else 0
    if gateway.uplink is None:
        return report.Upstream(False, 0, pending, "the uplink never started")
    up = gateway.uplink.state
    return report.Upstream(up.connects > 0, up.published, pending, up.last_error or None)


def _logging(path: Path) -> list[logging.Handler]:
    """The gateway's log: everything to path, warnings (a port that will not open, a broker
    that refuses) to stderr too."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(fmt)
    to_file.setLevel(logging.INFO)
    to_err = logging.StreamHandler(sys.stderr)
    to_err.setFormatter(logging.Formatter("warning: %(name)s: %(message)s"))
    to_err.setLevel(logging.WARNING)
    root.addHandler(to_file)
    root.addHandler(to_err)
    from gateway.app import quiet_pymodbus

    quiet_pymodbus()  # no frame dumps over the live view on a noisy line
    return [to_file, to_err]


__all__ = ["PortError", "check_ports", "run"]
