"""`make bench` / `python -m bench`: every benchmark that exists so far, figures to stdout."""

from bench import outbox_bench, protocol_bench, rules_bench, uplink_bench

if __name__ == "__main__":
    protocol_bench.main()
    outbox_bench.main()
    uplink_bench.main()
    rules_bench.main()
