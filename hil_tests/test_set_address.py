"""`firelane node set-address` against emulated nodes (real firmware) on a virtual RS-485 bus
at 19200 baud (the Modbus default, a new node's speed).

- A new node (address 247) is moved to 5: the command confirms it by its node id at 5, a
  re-scan finds it at 5 and no longer at 247, its config.json holds 5, and after a power cycle
  it still answers at 5.
- Refused, with one message naming what is wrong and what to do, a non-zero status and no
  traceback: an address out of 1..247, the new address taken, no node at the old address, two
  nodes at the old address, a port that does not exist, a port in use by another program or by
  the gateway service.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.bus.virtual_bus import VirtualBus
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.installer_kit import firelane, no_traceback, nodes_on_bus, uid

BAUD = 19200
LINE = ("--baud", str(BAUD), "--parity", "N")


@pytest.fixture(scope="module")
def bus() -> Iterator[VirtualBus]:
    with VirtualBus(BAUD) as b:
        yield b


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, bus: VirtualBus
) -> Iterator[list[EmulatorProcess]]:
    """Nodes 3 and 4, a new node at 247, and two nodes at 9 (a conflict), for the whole module:
    the refusals leave them as they are, and only the move changes one (247 -> 5)."""
    layout = [(3, uid(3)), (4, uid(4)), (247, uid(247)), (9, uid(9)), (9, uid(0x109))]
    with nodes_on_bus(tmp_path_factory.mktemp("site"), bus, layout) as emus:
        yield emus


@pytest.fixture(scope="module")
def port(bus: VirtualBus) -> Path:
    """The installer's adapter on the bus."""
    return bus.attach("laptop")


class Scan(list[int]):
    """The addresses a scan found (a list, to compare), with its output for the message."""

    out = ""

    def __repr__(self) -> str:
        return f"{list(self)} from:\n{self.out}"


def found(port: Path, *span: str) -> Scan:
    done = firelane("bus", "scan", "--port", str(port), *LINE, *span)
    no_traceback(done)
    result = Scan(
        int(line.split()[0])
        for line in done.stdout.splitlines()
        if line[:1].isdigit() and line.split()[1][:2] in ("0x", "?")
    )
    result.out = done.stdout + done.stderr
    return result


def test_a_new_node_is_moved_and_keeps_its_address(port: Path, site: list[EmulatorProcess]) -> None:
    done = firelane("node", "set-address", "--port", str(port), *LINE, "--from", "247", "--to", "5")
    print(done.stdout, done.stderr)
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert "node 0x1A0000F7 moved from address 247 to 5" in done.stdout
    assert found(port, "--to", "10") == [3, 4, 5, 9]
    assert found(port, "--from", "247", "--to", "247") == []
    new = site[2]
    assert json.loads((new.fs / "config.json").read_text())["address"] == 5
    mark = new.mark()
    with new.control() as ctl:
        ctl.power(False)
        ctl.power(True)
    new.wait_event("uart", 20.0, since=mark)
    assert found(port, "--from", "5", "--to", "5") == [5]


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [
        (("--from", "3", "--to", "0"), 2, "--to 0: a node address is 1..247"),
        (("--from", "3", "--to", "248"), 2, "--to 248: a node address is 1..247"),
        (("--from", "3", "--to", "3"), 2, "nothing to change"),
        (("--from", "3", "--to", "4"), 1, "address 4 is already taken by node id 0x1A000004"),
        (("--from", "100", "--to", "6"), 1, "no Firelane node at address 100"),
        (("--from", "9", "--to", "20"), 1, "address 9"),
    ],
)
def test_refusals_say_what_to_do(
    port: Path, site: list[EmulatorProcess], args: tuple[str, ...], status: int, expected: str
) -> None:
    done = firelane("node", "set-address", "--port", str(port), *LINE, *args)
    no_traceback(done)
    assert done.returncode == status, done.stdout + done.stderr
    assert expected in done.stderr, done.stderr
    assert done.stderr.startswith("firelane node set-address: ")
    assert done.stderr.count("\n") == 1, done.stderr  # one message
    if args[1] == "9":  # two nodes there: the conflict, whether told by node ids or garble
        assert "a write would move all of them" in done.stderr, done.stderr


def test_a_missing_port_is_named() -> None:
    done = firelane(
        "node", "set-address", "--port", "/dev/ttyUSB99", *LINE, "--from", "247", "--to", "5"
    )
    no_traceback(done)
    assert done.returncode == 2
    assert "/dev/ttyUSB99 does not exist: plug in the USB-RS485 adapter" in done.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-c", "import time; time.sleep(120)"], "is in use by another program (pid"),
        (
            ["-c", "import time; time.sleep(120)", "gateway", "run"],
            "stop it first with `sudo systemctl stop firelane-gateway`",
        ),
    ],
)
def test_a_busy_port_is_refused(port: Path, argv: list[str], expected: str) -> None:
    with open(port, "rb") as tty:
        holder = subprocess.Popen([sys.executable, *argv], stdin=tty)
    try:
        done = firelane(
            "node", "set-address", "--port", str(port), *LINE, "--from", "247", "--to", "5"
        )
    finally:
        holder.kill()
        holder.wait()
    no_traceback(done)
    assert done.returncode == 2
    assert expected in done.stderr, done.stderr
