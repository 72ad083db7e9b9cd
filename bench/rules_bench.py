"""Rule core cost on CPython: samples per second and microseconds per sample for a full bus
address space (247 nodes) carrying 1,000 measurement rules, plus smoke verification and
coincidence by house, as a site might configure them.

Two workloads: samples that change nothing (the steady state: most polls of a quiet site) and
samples that change every word and reading (status, alarm and fault bits, leakage across a
rule's threshold), the worst case. Each figure is the best of several runs over fixed inputs,
on a freshly compiled core (compiling is not timed). Run with `make bench` or
`python -m bench.rules_bench`.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable

from gateway.model import Sample
from gateway.rules import NodeInfo, RuleCore, compile_rules, parse_rules
from protocol import codes, registers

NODES = 247
RULES = 1000
ROUNDS = 40  # poll cycles per run: 9,880 samples


def rules_table() -> dict[str, object]:
    """1,000 measurement rules spread round-robin over the nodes (about 4 per node)."""
    kinds = [
        {"reading": "leakage_ma", "above": 500, "below": 450, "kind": "alarm", "for_s": 2},
        {"reading": "temperature_c", "rate_per_min": 9, "window_s": 60, "kind": "alarm"},
        {"reading": "supply_v", "below": 10.8, "release": 11.1, "kind": "fault", "for_s": 10},
        {"reading": "smoke_pct_m", "above": 2.0, "kind": "pre_alarm", "for_s": 1},
    ]
    measure = [
        dict(kinds[i % len(kinds)], name=f"r{i}", nodes=[f"n{i % NODES + 1}"]) for i in range(RULES)
    ]
    return {
        "debounce": {"off_s": 5, "restore_n": 2, "restore_m": 3},
        "verify": [{"sources": ["smoke"], "retard_s": 10, "confirm_s": 60}],
        "coincidence": {"scope": "house", "window_s": 120},
        "measure": measure,
    }


def build() -> RuleCore:
    nodes = {
        f"n{a}": NodeInfo(f"n{a}", house=f"house-{a // 4}", zone=f"zone-{a // 32}")
        for a in range(1, NODES + 1)
    }
    return compile_rules(parse_rules(rules_table()), nodes)


def samples(changing: bool) -> list[Sample]:
    """ROUNDS poll cycles of every node, 1 s apart, nodes spread over the cycle."""
    out = []
    leak_bit = 1 << codes.SRC_LEAKAGE
    low_supply = 1 << codes.FAULT_LOW_SUPPLY
    for k in range(ROUNDS):
        odd = changing and k % 2 == 1
        for a in range(1, NODES + 1):
            at = k + a / (NODES + 1)
            status = registers.ST_ALARM | registers.ST_FAULT if odd else 0
            out.append(
                Sample(
                    node=f"n{a}",
                    at=at,
                    status=status,
                    sources=leak_bit if odd else 0,
                    faults=low_supply if odd else 0,
                    event_seq=k if changing else 0,
                    smoke_pct_m=0.05 + (0.01 * (k % 3) if changing else 0),
                    leakage_ma=620 if odd else 120,
                    temperature_c=21.5 + (0.1 * (k % 5) if changing else 0),
                    supply_v=10.5 if odd else 12.1,
                )
            )
    return out


def best_time(
    run: Callable[[RuleCore], int], setup: Iterable[Sample] = (), repeat: int = 5
) -> tuple[float, int]:
    """Best seconds of `repeat` runs, each on a fresh core fed `setup` first (not timed); and
    what run() returned (alerts raised)."""
    best, result = float("inf"), 0
    setup = list(setup)
    for _ in range(repeat):
        core = build()
        for s in setup:
            core.sample(s)
        start = time.perf_counter()
        result = run(core)
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_rules() -> list[tuple[str, float, float, int]]:
    """(workload, per second, microseconds each, alerts raised) for samples that change
    nothing, samples that change every word, and ticks over quiet and busy nodes."""
    rows = []
    for label, changing in (("sample, no change", False), ("sample, every word changes", True)):
        feed = samples(changing)

        def run(core: RuleCore, feed: list[Sample] = feed) -> int:
            alerts = 0
            for s in feed:
                alerts += len(core.sample(s))
            return alerts

        seconds, alerts = best_time(run)
        rows.append((label, len(feed) / seconds, seconds / len(feed) * 1e6, alerts))
    ticks = 50
    for label, feed, start in (
        (f"tick, {NODES} quiet nodes", samples(False)[:NODES], 1.0),
        # after an alarm and a fault on every node cleared: restore debounces running
        (f"tick, {NODES} nodes with timers", samples(True)[: NODES * 3], 3.0),
    ):

        def tick(core: RuleCore, start: float = start) -> int:
            return sum(len(core.tick(start + k * 0.1)) for k in range(ticks))

        seconds, alerts = best_time(tick, feed)
        rows.append((label, ticks / seconds, seconds / ticks * 1e6, alerts))
    return rows


def main() -> None:
    print(f"gateway/rules on {platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}: {NODES} nodes, {RULES} measurement rules")  # fmt: skip
    for label, rate, us, alerts in bench_rules():
        print(f"  {label:<34}{rate:10,.0f} /s {us:9.2f} us each  ({alerts} alerts)")


if __name__ == "__main__":
    main()
