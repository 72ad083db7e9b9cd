"""Rate-limited log lines for what a noisy line repeats (gateway/lograte.py, app.quiet_pymodbus)."""

from __future__ import annotations

import logging

from gateway.app import quiet_pymodbus
from gateway.lograte import LogRate


def test_first_line_passes_then_one_a_period_with_the_count_held_back() -> None:
    now = [0.0]
    rate = LogRate(60.0, lambda: now[0])
    assert rate.allow(("n1", "off")) == 0
    for t in (1.0, 2.0, 59.9):
        now[0] = t
        assert rate.allow(("n1", "off")) is None
    assert rate.allow(("n2", "off")) == 0  # another node: its own budget
    now[0] = 60.0
    assert rate.allow(("n1", "off")) == 3  # three held back since the last one let through
    now[0] = 200.0
    assert rate.allow(("n1", "off")) == 0


def test_pymodbus_frame_dumps_stay_out_of_the_journal() -> None:
    logger = logging.getLogger("pymodbus.logging")
    before = logging.getLogger("pymodbus").level
    try:
        quiet_pymodbus()
        assert not logger.isEnabledFor(logging.ERROR)
        assert logger.isEnabledFor(logging.CRITICAL)
    finally:
        logging.getLogger("pymodbus").setLevel(before)
