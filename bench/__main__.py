"""`make bench` / `python -m bench`: every benchmark, figures to stdout, in a few minutes.

The hardware-in-the-loop ones (bus, latency, resources) run their short default here; each
has a `--full` grid: `python -m bench.bus_bench --full`, `python -m bench.latency_bench --full`,
`python -m bench.resources_bench --full`.
"""

from bench import (
    bus_bench,
    latency_bench,
    outbox_bench,
    protocol_bench,
    resources_bench,
    rules_bench,
    uplink_bench,
)

if __name__ == "__main__":
    protocol_bench.main()
    outbox_bench.main()
    uplink_bench.main()
    rules_bench.main()
    bus_bench.main([])
    latency_bench.main([])
    resources_bench.main([])
