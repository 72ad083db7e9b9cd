"""`firelane bus scan` against emulated nodes (real firmware) on a virtual RS-485 bus.

- A scan at 115200 baud finds exactly the emulated nodes, with their node ids, firmware and
  map version, in a few seconds for all 247 addresses.
- Two nodes given the same address are reported as a conflict, naming both node ids or the
  garbled replies; the exit status is 1.
- With --config (whose bus gives the baud rate and parity): a node present but not
  configured, and a configured node not found.
- Bad input: a port that does not exist, an address range out of 1..247, a config that is not
  one: one message naming the problem, exit 2, no traceback.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.bus.virtual_bus import VirtualBus
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.installer_kit import firelane, no_traceback, nodes_on_bus, uid

FAST = 115200
SCAN_BUDGET_S = 15.0  # the whole scan of 247 addresses with a loaded 2-core machine


def table(stdout: str) -> dict[int, list[str]]:
    """The scan's table rows by address."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) > 1 and cells[0].isdigit() and cells[1][:2] in ("0x", "?"):
            rows[int(cells[0])] = cells
    return rows


def elapsed(stdout: str) -> float:
    for line in stdout.splitlines():
        if " found in " in line:
            return float(line.split(" found in ")[1].split()[0])
    raise AssertionError(f"no summary line in {stdout!r}")


@pytest.fixture
def bus() -> Iterator[VirtualBus]:
    with VirtualBus(FAST) as b:
        yield b


@pytest.fixture
def site(tmp_path: Path, bus: VirtualBus) -> Iterator[list[EmulatorProcess]]:
    """Nodes at 3, 7 and 12, and a second node at 7 (another node id): a conflict."""
    layout = [(3, uid(3)), (7, uid(7)), (7, uid(0x107)), (12, uid(12))]
    with nodes_on_bus(tmp_path, bus, layout) as emus:
        yield emus


def test_scan_finds_exactly_the_nodes_and_reports_the_conflict(
    bus: VirtualBus, site: list[EmulatorProcess]
) -> None:
    port = bus.attach("laptop")
    done = firelane("bus", "scan", "--port", str(port), "--baud", str(FAST), "--parity", "N")
    print(done.stdout)
    no_traceback(done)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = table(done.stdout)
    assert sorted(rows) == [3, 7, 12], done.stdout
    assert rows[3][1:5] == ["0x1A000003", "0.1.0", "1", "node"], rows[3]
    assert rows[12][1] == "0x1A00000C" and rows[12][-1] == "ok", rows[12]
    assert rows[3][-1] == "ok", rows[3]
    assert rows[7][-1] == "CONFLICT", rows[7]
    problems = [line for line in done.stdout.splitlines() if line.startswith("PROBLEM:")]
    assert len(problems) == 1 and "address 7" in problems[0], problems
    assert elapsed(done.stdout) < SCAN_BUDGET_S


def test_scan_compares_with_the_gateway_config(
    tmp_path: Path, bus: VirtualBus, site: list[EmulatorProcess]
) -> None:
    port = bus.attach("laptop")
    config = tmp_path / "gateway.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            site = "Scan Street"
            gateway_id = "gw-scan"
            [storage]
            path = "{tmp_path / "gw.sqlite3"}"
            [mqtt]
            host = "127.0.0.1"
            [[buses]]
            name = "street"
            kind = "rtu"
            port = "{port}"
            baud = {FAST}
            parity = "N"
            [[nodes]]
            name = "house-3"
            bus = "street"
            address = 3
            house = "3"
            zone = "A"
            [[nodes]]
            name = "house-9"
            bus = "street"
            address = 9
            house = "9"
            zone = "B"
            """
        )
    )
    # No --baud, no --parity: the config's bus says 115200 and N.
    done = firelane("bus", "scan", "--port", str(port), "--to", "20", "--config", str(config))
    print(done.stdout)
    no_traceback(done)
    assert done.returncode == 1
    assert f"at {FAST} baud, 8N1" in done.stdout.splitlines()[0]
    rows = table(done.stdout)
    assert rows[3][5] == "house-3" and rows[12][5] == "-", rows
    problems = "\n".join(x for x in done.stdout.splitlines() if x.startswith("PROBLEM:"))
    assert "house-9" in problems and "not found" in problems, problems
    assert "address 12 (node id 0x1A00000C) answers but is not in the gateway config" in problems
    assert "address 7" in problems


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--port", "/dev/ttyNOPE9"], "/dev/ttyNOPE9 does not exist"),
        (["--port", "/dev/null", "--from", "0"], "--from 0 --to 247: addresses are 1..247"),
        (["--port", "/dev/null", "--to", "300"], "addresses are 1..247"),
        (["--port", "/dev/null", "--baud", "12345"], "--baud 12345: a node runs at one of"),
        (["--port", "/dev/null", "--config", "/nonexistent.toml"], "no such file"),
    ],
)
def test_bad_input_is_one_clear_message(argv: list[str], expected: str) -> None:
    done = firelane("bus", "scan", *argv)
    no_traceback(done)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr, done.stderr
    assert done.stderr.startswith("firelane bus scan: "), done.stderr


def test_an_empty_bus_says_what_to_check(bus: VirtualBus) -> None:
    port = bus.attach("laptop")
    done = firelane(
        "bus", "scan", "--port", str(port), "--baud", str(FAST), "--parity", "N", "--to", "5"
    )
    no_traceback(done)
    assert done.returncode == 1
    assert "no node answered" in done.stdout
    assert "check the A/B wiring" in done.stderr
