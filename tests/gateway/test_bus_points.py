"""Points and devices without I/O: register decoding, the response timeout, the poll plan and
an offline node's back-off, with an injected clock."""

from __future__ import annotations

from struct import pack

import pytest

from gateway.backoff import Backoff
from gateway.bus_timing import read_transaction_us, response_timeout_s
from gateway.device import Device, next_retry, plan_cycle
from gateway.model import Sample
from gateway.points import (
    COUNTERS_READ,
    IDENTITY_READ,
    STATUS_READ,
    decode_counters,
    decode_event,
    decode_heartbeat,
    decode_identity,
    in_alarm,
)
from protocol import codes, push
from protocol import registers as r


def test_reads_cover_the_documented_blocks() -> None:
    # docs/registers.md, "Reading a node efficiently".
    assert STATUS_READ == (0x0010, 8)
    assert IDENTITY_READ == (0x0000, 6)
    assert COUNTERS_READ == (0x0020, 8)
    for address, count in (STATUS_READ, IDENTITY_READ, COUNTERS_READ):
        assert r.check_read(address, count) == 0


def test_identity_decodes_u32_high_word_first() -> None:
    ident = decode_identity([1, 0x0102, 3, 0x1A00, 0x0011, 1])
    assert ident.node_id == 0x1A000011
    assert ident.firmware == "1.2.3"
    assert ident.problem() is None
    assert "not a Firelane node" in (decode_identity([7, 0, 0, 0, 0, 1]).problem() or "")
    assert "map version 2" in (decode_identity([1, 0, 0, 0, 0, 2]).problem() or "")
    with pytest.raises(ValueError, match="6 registers"):
        decode_identity([1, 2, 3])


def test_counters_decode() -> None:
    c = decode_counters([0x0001, 0x0002, 5, 6, 7, codes.RESET_WATCHDOG, 1, 9])
    assert c.uptime_s == 0x10002
    assert (c.crc_errors, c.frame_errors, c.reset_count, c.boot_failures, c.queue_drops) == (
        5,
        6,
        7,
        1,
        9,
    )
    assert c.reset_cause_name == "watchdog"


def test_heartbeat_and_event_payloads() -> None:
    block = [r.ST_ALARM, 1 << codes.SRC_SMOKE, 0, 4, 300, 12, 0x10000 - 55, 12000]
    sample, uptime = decode_heartbeat("n", 1.5, pack(push.HEARTBEAT_FORMAT, *block, 86400))
    assert uptime == 86400
    assert sample == Sample("n", 1.5, r.ST_ALARM, 2, 0, 4, 3.0, 12, -5.5, 12.0)
    assert in_alarm(sample)
    payload = pack(push.EVENT_FORMAT, codes.EV_ALARM, codes.SRC_LEAKAGE, 0, 1, 500, 77)
    event = decode_event("n", 2.0, payload)
    assert (event.code, event.source, event.value, event.uptime_s) == (1, 2, 500, 77)
    bad = pack(push.EVENT_FORMAT, 99, codes.SRC_LEAKAGE, 0, 1, 500, 77)
    with pytest.raises(ValueError, match="unknown event code 99"):
        decode_event("n", 2.0, bad)


@pytest.mark.parametrize("baud", [9600, 19200, 38400, 115200])
def test_response_timeout_is_the_transaction_plus_turnaround_and_usb_latency(baud: int) -> None:
    t = response_timeout_s(baud)
    assert t == pytest.approx(read_transaction_us(baud, 8) / 1e6 + 0.010 + 0.016)
    assert 0.03 < t < 0.07  # not the 1 s a dead node would cost with a library default


def device(name: str, address: int, cap: float = 8.0) -> Device:
    return Device(name, address, backoff=Backoff(0.5, cap, rand=lambda: 1.0), measure_every=3)


def sample(name: str, status: int = 0) -> Sample:
    return Sample(name, 0.0, status, 0, 0, 0, 0.0, 0, 20.0, 12.0)


def test_dead_node_goes_offline_and_is_retried_on_its_back_off_alone() -> None:
    live, dead = device("live", 1), device("dead", 2)
    devices = [live, dead]
    polled: list[tuple[float, str]] = []
    for cycle in range(200):  # 100 ms cycles, 20 s
        now = cycle / 10
        for d, _ in plan_cycle(devices, now, cycle):
            polled.append((now, d.name))
            if d is live:
                d.answered(now, sample("live"))
            else:
                d.failed(now)
    assert sum(1 for _, n in polled if n == "live") == 200
    dead_at = [round(t, 1) for t, n in polled if n == "dead"]
    # Two failures take it offline; then 0.5, 1, 2, 4, 8, 8 s later (rand = 1: the ceiling).
    assert dead_at == [0.0, 0.1, 0.6, 1.6, 3.6, 7.6, 15.6]
    assert dead.offline and dead.failures == 7
    assert next_retry(devices) == pytest.approx(23.6)


def test_every_due_offline_node_is_retried_in_the_cycle_the_most_overdue_first() -> None:
    # A street that lost power together: each node's first reading after it comes back must
    # not queue behind the others' retries, one per cycle.
    devices = [device(f"n{i}", i) for i in range(1, 6)]
    for i, d in enumerate(devices):
        d.offline, d.retry_at = True, 1.0 - i * 0.1  # n5 is the most overdue
    devices[0].retry_at = 6.0  # n1 is not due yet
    steps = plan_cycle(devices, 5.0, 0)
    assert [(d.name, m) for d, m in steps] == [(f"n{i}", False) for i in (5, 4, 3, 2)]


def test_alarm_node_is_read_every_cycle_first_even_offline() -> None:
    a, b, c = device("a", 1), device("b", 2), device("c", 3)
    for d in (a, b, c):
        d.answered(0.0, sample(d.name))
    c.answered(0.0, sample("c", r.ST_ALARM))
    assert [d.name for d, _ in plan_cycle([a, b, c], 0.0, 5)] == ["c", "a", "b"]
    c.failed(1.0)
    c.failed(1.1)
    assert c.offline
    for cycle in range(6, 20):
        names = [d.name for d, _ in plan_cycle([a, b, c], 1.2, cycle)]
        assert names == ["c", "a", "b"]
    assert next_retry([a, b, c]) is None  # its back-off does not apply while in alarm


def test_measure_reads_are_spread_over_cycles() -> None:
    devices = [Device(f"n{i}", i, backoff=Backoff(), measure_every=3, phase=i) for i in range(1, 7)]
    for d in devices:
        d.identity = decode_identity([1, 0, 0, 0, 0, 1])
    per_cycle = [sum(m for _, m in plan_cycle(devices, 0.0, c)) for c in range(9)]
    assert per_cycle == [2] * 9  # 6 nodes, every 3rd cycle each: 2 a cycle, never 6 at once


def test_a_node_answering_again_is_online_with_its_back_off_reset() -> None:
    d = device("n", 1)
    for t in range(5):
        d.failed(float(t))
    assert d.offline and d.backoff.attempt > 0
    assert d.answered(9.0, sample("n")) is True
    assert not d.offline and d.failures == 0 and d.backoff.attempt == 0
    assert d.stats.last_seen == 9.0


def test_bad_addresses_are_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.\.247"):
        Device("x", 0, backoff=Backoff())
    with pytest.raises(ValueError, match=r"1\.\.247"):
        Device("x", 248, backoff=Backoff())
