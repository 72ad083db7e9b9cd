"""installer/scan.py and installer/rtu_line.py's Master on a simulated line (site_fakes.py):
what is found, how conflicts are told from noise and slow nodes, the window per address, and
the comparison with a gateway config."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import parse
from installer import scan as s
from installer.rtu_line import Master, read_request, window_s
from protocol import registers as r
from tests.installer.site_fakes import FakeLine, FakeNode


def run(nodes: list[FakeNode], first: int = 1, last: int = 247) -> s.ScanResult:
    line = FakeLine(nodes)
    return s.scan(Master(line, line.baud), first, last)


def test_windows_follow_the_baud_rate() -> None:
    # 8-byte request + 17-byte reply, t3.5 twice, 10 ms turnaround, no adapter latency.
    assert s.quick_timeout_s(115200, 0.0) == pytest.approx(0.002387 + 0.0035 + 0.010, abs=1e-5)
    assert s.quick_timeout_s(19200, 0.0) == pytest.approx(0.014323 + 0.004010 + 0.010, abs=1e-5)
    assert window_s(115200, 8, 17, 0.016) == pytest.approx(s.quick_timeout_s(115200, 0.016))
    # All 247 addresses in a few seconds at 115200 with a low-latency adapter.
    assert 247 * s.quick_timeout_s(115200, 0.002) < 5.0


def test_finds_exactly_the_nodes_with_their_identity() -> None:
    result = run([FakeNode(3, 0x1A000003, fw=(1, 2, 3)), FakeNode(200, 0xDEADBEEF)])
    assert [f.address for f in result.found] == [3, 200]
    first = result.found[0]
    assert first.identity is not None and first.identity.firmware == "1.2.3"
    assert first.node_ids == [0x1A000003] and first.conflict is None
    assert result.problems == [] and result.notes == []
    # One quick read per address, then a check of each node found.
    assert 247 <= result.transactions <= 247 + 2 * s.VERIFY_READS


def test_two_nodes_apart_in_time_are_two_replies_or_two_ids() -> None:
    result = run([FakeNode(7, 0x1), FakeNode(7, 0x2, delay_s=0.015)])
    (found,) = result.found
    assert found.conflict is not None and "address 7" in found.conflict
    assert found.node_ids == [1, 2]
    assert result.problems == [found.conflict]


def test_two_nodes_answering_together_collide_and_are_a_conflict() -> None:
    result = run([FakeNode(9, 0x1), FakeNode(9, 0x2)], 1, 20)
    (found,) = result.found
    assert found.identity is None
    assert found.conflict is not None and "every reply is garbled" in found.conflict


def test_a_node_slower_than_the_window_is_found_by_its_late_reply() -> None:
    slow = FakeNode(5, 0x55, delay_s=0.040)  # the quick window is ~16 ms at 115200
    result = run([slow, FakeNode(6, 0x66)], 1, 10)
    assert [f.address for f in result.found] == [5, 6]
    assert result.found[0].identity is not None and result.found[0].conflict is None
    assert any("answers slowly" in n for n in result.found[0].notes)
    assert result.found[1].node_ids == [0x66]  # its window was not taken for a conflict


def test_a_wrong_map_version_and_the_default_address_are_flagged() -> None:
    result = run([FakeNode(4, 0x4, map_version=2), FakeNode(247, 0xF7)], 1, 247)
    assert any("register map version 2" in p for p in result.problems)
    notes = [n for f in result.found for n in f.notes]
    assert any("set-address --from 247" in n for n in notes)


def test_range_is_checked() -> None:
    with pytest.raises(ValueError):
        run([], 0, 10)
    with pytest.raises(ValueError):
        run([], 10, 5)


def test_exchange_counts_garbage_and_other_units() -> None:
    line = FakeLine([FakeNode(2, 0x2, delay_s=0.050)])
    master = Master(line, line.baud)
    ex = master.transact(read_request(2, r.DEVICE_TYPE, 6), 0.010)
    assert not ex.replies and not ex.heard
    ex = master.transact(read_request(3, r.DEVICE_TYPE, 6), 0.100)
    assert [p.unit for p in ex.late] == [2] and not ex.replies


def cfg_text(tmp: Path, port: str) -> dict[str, object]:
    return {
        "site": "s",
        "gateway_id": "gw",
        "storage": {"path": str(tmp / "db.sqlite3")},
        "mqtt": {"host": "127.0.0.1"},
        "buses": [
            {"name": "east", "kind": "rtu", "port": port},
            {"name": "west", "kind": "rtu", "port": "/dev/ttyWEST"},
        ],
        "nodes": [
            {"name": "h3", "bus": "east", "address": 3, "house": "3", "zone": "a"},
            {"name": "h9", "bus": "east", "address": 9, "house": "9", "zone": "b"},
            {"name": "w1", "bus": "west", "address": 4, "house": "1", "zone": "c"},
        ],
    }


def test_compare_with_the_config(tmp_path: Path) -> None:
    cfg = parse(cfg_text(tmp_path, "/dev/ttyEAST"), check_paths=False)
    result = run([FakeNode(3, 0x3), FakeNode(4, 0x4)], 1, 20)
    bus, note = s.pick_bus(cfg, "/dev/ttyEAST", None)
    assert bus.name == "east" and note is None
    problems = s.compare(result, bus, cfg.nodes)
    assert len(problems) == 2, problems
    assert problems[0].startswith("configured node h9 (house 9, zone b) at address 9: not found")
    assert problems[1].startswith("address 4 (node id 0x00000004) answers but is not in the")
    text = s.render(result, {3: "h3", 4: "-"})
    assert text.splitlines()[0].split() == [
        "address", "node", "id", "firmware", "map", "type", "config", "status",
    ]  # fmt: skip
    assert text.splitlines()[1].split() == ["3", "0x00000003", "0.1.0", "1", "node", "h3", "ok"]


def test_pick_bus_asks_when_it_cannot_tell(tmp_path: Path) -> None:
    cfg = parse(cfg_text(tmp_path, "/dev/ttyEAST"), check_paths=False)
    with pytest.raises(s.BusChoiceError, match="give --bus NAME"):
        s.pick_bus(cfg, "/dev/ttyOTHER", None)
    assert s.pick_bus(cfg, "/dev/ttyOTHER", "west")[0].name == "west"
    with pytest.raises(s.BusChoiceError, match="no rtu bus of that name"):
        s.pick_bus(cfg, "/dev/ttyOTHER", "north")


def test_render_of_an_empty_bus() -> None:
    assert s.render(run([], 1, 3)) == "no node answered"


def test_a_slow_node_at_the_last_address_is_found() -> None:
    result = run([FakeNode(5, 0x55, delay_s=0.100)], 5, 5)
    assert [f.address for f in result.found] == [5]
    assert result.found[0].node_ids == [0x55]
