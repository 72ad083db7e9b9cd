"""gateway/app.py's walk-test hook: Gateway(test_mode=True) marks every alert test, and the
observer sees every reading and every alert, without its errors reaching the data path."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import GatewayConfig, parse
from gateway.model import Alert, NodeEvent, Sample, Silent
from protocol import codes as c
from protocol import registers as r


def config(tmp: Path) -> GatewayConfig:
    return parse(
        {
            "site": "s",
            "gateway_id": "gw",
            "storage": {"path": str(tmp / "db")},
            "mqtt": {"host": "h"},
            "buses": [{"name": "b", "kind": "rtu", "port": "/dev/ttyX"}],
            "nodes": [{"name": "n1", "bus": "b", "address": 1, "house": "7", "zone": "e"}],
        },
        check_paths=False,
    )


def smoke_alarm(at: float) -> Sample:
    return Sample("n1", at, r.ST_ALARM, 1 << c.SRC_SMOKE, 0, 1, 3.5, 0, 21.0, 12.0)


@pytest.mark.parametrize("test_mode", [True, False])
def test_alerts_are_marked_test_in_test_mode_only(tmp_path: Path, test_mode: bool) -> None:
    seen: list[Alert | Sample | Silent | NodeEvent] = []
    gw = Gateway(config(tmp_path), test_mode=test_mode, observer=seen.append)
    asyncio.run(gw.on_reading(smoke_alarm(1.0)))
    sample, alert = seen
    assert isinstance(sample, Sample)
    assert isinstance(alert, Alert) and (alert.kind, alert.source) == ("alarm", "smoke")
    assert alert.test is test_mode and alert.house == "7"


def test_a_failing_observer_does_not_stop_the_data_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(item: object) -> None:
        raise RuntimeError("display gone")

    gw = Gateway(config(tmp_path), test_mode=True, observer=broken)
    with caplog.at_level(logging.ERROR):
        asyncio.run(gw.on_reading(smoke_alarm(1.0)))
    assert gw.rules.counters["samples"] == 1
    assert "event=observer_failed" in caplog.text


def test_no_observer_by_default(tmp_path: Path) -> None:
    gw = Gateway(config(tmp_path))
    asyncio.run(gw.on_reading(smoke_alarm(1.0)))
    assert gw.rules.test_mode is False
