"""The process test_outbox.py kills: puts alarms as fast as it can and reports each one committed.

    python -m tests.gateway.outbox_child PATH BATCH

Puts alarms with event ids burst-0, burst-1, ... in put_many bursts of BATCH (1: single puts), and
prints every event id of a burst, one a line, flushed, right after the put returned: a printed id
is one the outbox has committed. Runs until it is killed.
"""

from __future__ import annotations

import sys
from itertools import count
from pathlib import Path

from gateway.model import Priority
from gateway.outbox import Outbox

TOPIC = "firelane/site/gw/alarm"


def main(argv: list[str]) -> None:
    path, batch = Path(argv[0]), int(argv[1])
    with Outbox(path) as outbox:
        ids = (f"burst-{i}" for i in count())
        while True:
            burst = [next(ids) for _ in range(batch)]
            if batch == 1:
                outbox.put(Priority.ALARM, TOPIC, burst[0].encode(), event_id=burst[0])
            else:
                outbox.put_many(
                    [(Priority.ALARM, TOPIC, i.encode(), i, False, False) for i in burst]
                )
            sys.stdout.write("".join(f"{i}\n" for i in burst))
            sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
