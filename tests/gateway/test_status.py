from __future__ import annotations

from pathlib import Path

import pytest

from gateway.status import read_status, render, status_path, write_status

SNAPSHOT = {
    "gateway_id": "gw-east-01",
    "site": "Old Town East",
    "version": "0.1.0",
    "uptime_s": 3600,
    "written": 1000.0,
    "uplink": {"connected": True, "published": 42, "reconnects": 1, "last_error": ""},
    "outbox": {"alarm": 0, "fault": 1, "telemetry": 7},
    "buses": [
        {
            "name": "east",
            "endpoint": "/dev/ttyUSB0",
            "state": "polling",
            "utilisation": 0.82,
            "cycle_s": 0.25,
        }
    ],
    "nodes": [
        {
            "name": "house-7",
            "house": "No. 7 Lantern Lane",
            "zone": "A",
            "state": "alarm",
            "last_seen_s": 995.0,
        }
    ],
    "stalled": [],
}


def test_round_trip_and_report(tmp_path: Path) -> None:
    path = status_path(tmp_path / "gateway.sqlite3")
    assert path.name == "gateway.status.json"
    write_status(path, SNAPSHOT)
    text = render(read_status(path), now=1002.0)
    assert "gw-east-01" in text and "connected" in text and "DISCONNECTED" not in text
    assert "telemetry 7" in text and "utilisation 82%" in text and "cycle 250 ms" in text
    assert "house-7" in text and "alarm" in text and "7 s ago" in text
    assert "WARNING" not in text
    assert not list(tmp_path.glob("*.tmp"))


def test_an_old_snapshot_is_flagged(tmp_path: Path) -> None:
    assert "WARNING: this status is 100 s old" in render(SNAPSHOT, now=1100.0)


def test_missing_and_broken_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has not run"):
        read_status(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable status"):
        read_status(bad)
