"""A full line: many emulated nodes (real firmware, one process each) on one virtual RS-485
bus, the real gateway process, a real mosquitto and a subscriber as the monitoring centre.

1. Polled mode at 9600, 19200 and 115200 baud: every node is heard, 15 s of polling with
   nothing happening raises nothing (no false alarm, nobody offline), and fires in three
   houses at once (the first, a middle and the last address) each reach the centre within
   10 s. Printed: the
   time to hear every node, the gateway's measured poll cycle against the round-robin wire
   bound (nodes x one 8-register FC03 transaction, ../shared/DOMAIN.md) and each latency.
2. Push mode at 19200 baud (signed frames, heartbeats every 5 s; PUSH_NODES nodes,
   environment FIRELANE_HIL_PUSH_NODES, default 8): every node is heard through
   its heartbeats, fires in three houses at once (their frames collide on the half-duplex
   line and are resent after jittered back-off) each arrive within 10 s, a short press of a
   call point arrives as a `button` event and not as an alarm, and nothing goes offline.

NODES (environment FIRELANE_HIL_NODES, default 16) is how many emulated nodes share the line:
see hil_tests/README.md for why 16 and not 32 on a 2-core machine (each emulated node samples
its CT at 1 kHz in Python: 5-6 % of a core per node, polled or not). The bus's response
timeout is scenario_kit.HOST_TIMEOUT_MS, for the same reason. Printed as well: the CPU the
nodes and the gateway used, and the load average.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import pytest

from gateway.bus_timing import read_transaction_us
from hil_tests.scenario_kit import (
    ALARM_LIMIT_S,
    HOST_TIMEOUT_MS,
    Site,
    TimedCollector,
    node_events,
    node_name,
    report,
    wait_all_states,
    wait_event,
)

NODES = int(os.environ.get("FIRELANE_HIL_NODES", "16"))
PUSH_NODES = int(os.environ.get("FIRELANE_HIL_PUSH_NODES", "8"))  # see hil_tests/README.md
SUPERVISION_S = 30.0
QUIET_S = 15.0  # polling with nothing happening, before the fires
SMOKE_FIRE = 3.5


def fire_addresses(n: int) -> list[int]:
    return sorted({1, (n + 1) // 2, n})


async def quiet_for(centre: TimedCollector, seconds: float) -> None:
    """Let the centre listen for seconds (a span in which anything false would show)."""
    with contextlib.suppress(TimeoutError):
        await centre.wait_for(lambda _: False, seconds)


async def measure_cpu(site: Site, centre: TimedCollector, seconds: float) -> str:
    """Listen for seconds, measuring the CPU the nodes and the gateway use meanwhile."""
    nodes0, gw0 = site.cpu_seconds()
    t0 = time.monotonic()
    await quiet_for(centre, seconds)
    nodes1, gw1 = site.cpu_seconds()
    wall = time.monotonic() - t0
    n = len(site.nodes)
    load = os.getloadavg()[0]
    return (
        f"CPU over {wall:.0f} s: nodes {(nodes1 - nodes0) / wall * 100:.0f} % of a core "
        f"({(nodes1 - nodes0) / wall * 100 / n:.1f} % each), gateway "
        f"{(gw1 - gw0) / wall * 100:.0f} %; load average {load:.1f} on {os.cpu_count()} cores"
    )


async def fires(site: Site, centre: TimedCollector, addresses: list[int]) -> list[float]:
    """Smoke in several houses at once; each alarm's latency."""
    started = await asyncio.gather(*(site.set(a, smoke_pct=SMOKE_FIRE) for a in addresses))
    arrivals = await asyncio.gather(
        *(
            wait_event(centre, node_name(a), "alarm", "smoke", timeout=30, site=site)
            for a in addresses
        )
    )
    return [at - t for t, (_, at) in zip(started, arrivals, strict=True)]


@pytest.mark.slow
@pytest.mark.parametrize("baud", [9600, 19200, 115200])
def test_a_full_polled_line_raises_nothing_false_and_every_fire_in_time(
    tmp_path: Path, baud: int
) -> None:
    addresses = list(range(1, NODES + 1))
    with Site(
        tmp_path, addresses, baud=baud, supervision_s=SUPERVISION_S, timeout_ms=HOST_TIMEOUT_MS
    ) as site:

        async def main() -> None:
            async with TimedCollector(site.broker.port, site.topic) as centre:
                heard = await wait_all_states(centre, site, 60)
                cpu = await measure_cpu(site, centre, QUIET_S)
                assert not node_events(centre.got), f"before any fire: {node_events(centre.got)}"
                snapshot = site.status_snapshot()
                (bus,) = snapshot["buses"]
                burning = fire_addresses(NODES)
                latencies = await fires(site, centre, burning)
                site.check_alive()
                wire_s = NODES * read_transaction_us(baud, 8) / 1e6
                devices = bus["nodes"]
                polls = sum(d["polls"] for d in devices)
                failed = sum(d["timeouts"] + d["errors"] for d in devices)
                cycle_ms = bus["cycle_ms"]
                report(
                    f"{NODES} polled nodes at {baud} baud",
                    [
                        f"nodes booted in {site.node_start_s:.1f} s, all heard {heard:.2f} s "
                        "after the gateway started",
                        f"poll cycle {cycle_ms} ms; round-robin wire bound {wire_s * 1000:.0f} ms"
                        f" (cycle/bound {cycle_ms / 1000 / wire_s:.2f}); utilisation "
                        f"{bus['utilisation']}",
                        f"transactions {polls}, failed {failed}",
                        cpu,
                        *(
                            f"{node_name(a)}: smoke -> alarm at the centre {lat:.2f} s"
                            for a, lat in zip(burning, latencies, strict=True)
                        ),
                    ],
                )
                for lat in latencies:
                    assert lat < ALARM_LIMIT_S, latencies
                fired = {node_name(a) for a in burning}
                for e in node_events(centre.got):  # offline faults included
                    assert e["kind"] == "alarm" and e["node"] in fired, f"false event: {e}"
                for name in fired:
                    assert len(node_events(centre.got, name, ["alarm"])) == 1

        asyncio.run(main())


@pytest.mark.slow
def test_a_full_push_line_delivers_fires_and_a_button_press(tmp_path: Path) -> None:
    addresses = list(range(1, PUSH_NODES + 1))
    baud = 19200
    with Site(
        tmp_path,
        addresses,
        baud=baud,
        link_mode="push",
        timeout_ms=HOST_TIMEOUT_MS,
        heartbeat_s=5,
        supervision_s=SUPERVISION_S,
    ) as site:

        async def main() -> None:
            async with TimedCollector(site.broker.port, site.topic) as centre:
                heard = await wait_all_states(centre, site, 60)
                cpu = await measure_cpu(site, centre, QUIET_S)
                early = [e for e in node_events(centre.got) if e["kind"] not in ("test",)]
                assert not early, f"before any fire: {early}"
                stats0 = site.bus.stats()
                burning = fire_addresses(PUSH_NODES)
                latencies = await fires(site, centre, burning)

                # A short press of node 2's call point: a `button` event, not an alarm.
                presser = 2 if 2 not in burning else 3
                t_press = await site.set(presser, button=True)
                pressed = await site.uptime_ms(presser)
                await site.wait_uptime(presser, pressed + 150)
                await site.set(presser, button=False)
                _, at = await wait_event(
                    centre, node_name(presser), "button", timeout=20, site=site
                )
                press_latency = at - t_press
                up = await site.uptime_ms(presser)
                await site.wait_uptime(presser, up + 1000)  # an alarm would be on its way
                await quiet_for(centre, 2.0)
                site.check_alive()
                stats = {k: v - stats0[k] for k, v in site.bus.stats().items()}
                report(
                    f"{PUSH_NODES} push nodes at {baud} baud",
                    [
                        f"nodes booted in {site.node_start_s:.1f} s, all heard {heard:.2f} s "
                        "after the gateway started",
                        *(
                            f"{node_name(a)}: smoke -> alarm at the centre {lat:.2f} s"
                            for a, lat in zip(burning, latencies, strict=True)
                        ),
                        f"{node_name(presser)}: short press -> button event {press_latency:.2f} s",
                        cpu,
                        f"line during the fires: {stats['collisions']} collisions, "
                        f"{stats['bytes_on_line']} bytes",
                    ],
                )
                for lat in latencies:
                    assert lat < ALARM_LIMIT_S, latencies
                fired = {node_name(a) for a in burning}
                for e in node_events(centre.got):
                    if e["kind"] == "test":  # the power-up self-test's result, pushed
                        assert e["detail"] == "passed", e
                        continue
                    if e["kind"] == "button":
                        assert e["node"] == node_name(presser), e
                        continue
                    assert e["kind"] == "alarm" and e["node"] in fired, f"false event: {e}"
                for name in fired:
                    assert len(node_events(centre.got, name, ["alarm"])) == 1
                assert len(node_events(centre.got, kinds=["button"])) == 1

        asyncio.run(main())


@pytest.mark.slow
def test_push_mode_on_a_small_line(tmp_path: Path) -> None:
    """The push path on 4 nodes: one fire, one short press (quick to run alone)."""
    with Site(
        tmp_path,
        [1, 2, 3, 4],
        link_mode="push",
        heartbeat_s=5,
        supervision_s=15,
        timeout_ms=HOST_TIMEOUT_MS,
    ) as site:

        async def main() -> None:
            async with TimedCollector(site.broker.port, site.topic) as centre:
                heard = await wait_all_states(centre, site, 30)
                t_fire = await site.set(3, smoke_pct=SMOKE_FIRE)
                _, at = await wait_event(centre, "node-3", "alarm", "smoke", timeout=20, site=site)
                fire_latency = at - t_fire
                t_press = await site.set(1, button=True)
                pressed = await site.uptime_ms(1)
                await site.wait_uptime(1, pressed + 150)
                await site.set(1, button=False)
                _, at = await wait_event(centre, "node-1", "button", timeout=20, site=site)
                report(
                    "4 push nodes at 19200 baud",
                    [
                        f"all heard in {heard:.2f} s",
                        f"node-3: smoke -> alarm {fire_latency:.2f} s",
                        f"node-1: short press -> button event {at - t_press:.2f} s",
                    ],
                )
                assert fire_latency < ALARM_LIMIT_S
                site.check_alive()
                assert [
                    (e["node"], e["kind"])
                    for e in node_events(centre.got, kinds=["alarm", "button"])
                ] == [
                    ("node-3", "alarm"),
                    ("node-1", "button"),
                ]

        asyncio.run(main())
