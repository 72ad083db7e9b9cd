"""MQTT uplink throughput: outbox entries published at QoS 1 into a local mosquitto, per second.

Each run queues N alarm events in a real outbox (SQLite, WAL, on a temporary directory), starts
the uplink against a mosquitto started here on a free loopback port (as tests/gateway/mosquitto.py
does), and times from the connection to the last entry acked after its PUBACK: pending() reads,
PUBLISH, PUBACK, ack_many() deletes. Nobody subscribes, so this is the gateway's side alone.
Figures for inflight 16 (the default) and 1 (one PUBACK round trip per message), against
mosquitto's defaults and with `set_tcp_nodelay true`.

Run with `make bench` or `python -m bench.uplink_bench` (needs /usr/sbin/mosquitto).
"""

from __future__ import annotations

import asyncio
import platform
import tempfile
import time
import uuid
from pathlib import Path

from gateway.messages import Command, CommandResult, event_message
from gateway.model import Alert, Priority
from gateway.outbox import Item, Outbox
from gateway.uplink import Uplink, UplinkSettings
from tests.gateway.mosquitto import Mosquitto

MESSAGES = 2000
NODELAY = ["set_tcp_nodelay true"]


async def _no_commands(command: Command) -> CommandResult:
    return CommandResult(False, "bench")


def _items(n: int) -> list[Item]:
    items: list[Item] = []
    for i in range(n):
        alert = Alert(
            kind="alarm", node="n1", house="12", zone="east", source="smoke", detail="",
            value=3.1, unit="%/m", at=float(i), priority=Priority.ALARM,
        )  # fmt: skip
        m = event_message(
            alert, event_id=uuid.uuid4().hex, site="bench", gateway_id="gw-bench",
            prefix="firelane", utc=time.time(),
        )  # fmt: skip
        items.append((m.priority, m.topic, m.payload, m.event_id, m.retain, m.coalesce))
    return items


async def _drain(port: int, path: Path, n: int, inflight: int) -> float:
    """Messages per second from connect to the last ack."""
    with Outbox(path) as outbox:
        outbox.put_many(_items(n))
        done = asyncio.Event()
        connected_at: list[float] = []
        uplink: Uplink | None = None

        def beat() -> None:  # called on every drain pass
            if uplink is None:
                return
            if uplink.state.connected and not connected_at:
                connected_at.append(time.perf_counter())
            if uplink.state.published >= n:
                done.set()

        settings = UplinkSettings(
            host="127.0.0.1", port=port, gateway_id="gw-bench", site="bench", inflight=inflight
        )
        uplink = Uplink(settings, outbox, nodes=frozenset(), on_command=_no_commands, beat=beat)
        async with uplink:
            task = asyncio.create_task(uplink.run())
            await asyncio.wait_for(done.wait(), 300)
            elapsed = time.perf_counter() - connected_at[0]
            await uplink.stop(5)
            await task
        return n / elapsed


def main() -> None:
    print(f"MQTT uplink on {platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}: outbox -> mosquitto (loopback), QoS 1, "
          f"best of 3 runs of {MESSAGES}")  # fmt: skip
    # mosquitto leaves Nagle's algorithm on for its clients unless set_tcp_nodelay is true: its
    # PUBACKs to a burst then wait on the gateway's delayed ACKs (docs/mqtt.md, Broker).
    for label, extra in (("mosquitto defaults", []), ("set_tcp_nodelay true", NODELAY)):
        with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "b", extra=extra) as b:
            for inflight in (16, 1):
                runs = [Path(tmp) / f"o{inflight}-{i}.db" for i in range(3)]
                rate = max(asyncio.run(_drain(b.port, p, MESSAGES, inflight)) for p in runs)
                print(f"  {label:<22} inflight {inflight:>2}: {rate:8,.0f} messages/s")


if __name__ == "__main__":
    main()
