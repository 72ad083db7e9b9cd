"""installer/address.py on a simulated line: the move, and every refusal with its advice."""

from __future__ import annotations

import pytest

from installer.address import AddressError, Moved, check_addresses, set_address
from installer.rtu_line import Master
from protocol import codes as c
from protocol import registers as r
from tests.installer.site_fakes import FakeLine, FakeNode

HINT = "firelane bus scan --port P"


def move(nodes: list[FakeNode], old: int, new: int) -> tuple[Moved, FakeLine]:
    line = FakeLine(nodes, baud=19200)
    return set_address(Master(line, 19200), old, new, scan_hint=HINT), line


def refused(nodes: list[FakeNode], old: int, new: int) -> AddressError:
    with pytest.raises(AddressError) as info:
        move(nodes, old, new)
    return info.value


def test_moves_the_node_and_confirms_it_by_node_id() -> None:
    node = FakeNode(247, 0xABCD)
    moved, line = move([node, FakeNode(3, 0x3)], 247, 12)
    assert moved == Moved(0xABCD, 247, 12, moved.identity)
    assert node.address == 12 and node.saved == [12]
    writes = [p for p in line.requests if p.function == c.FC_WRITE_SINGLE]
    assert [(p.unit, p.address, p.value) for p in writes] == [(247, r.ADDRESS, 12)]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (0, 5, "--from 0: a node address is 1..247 (0 is broadcast)"),
        (5, 248, "--to 248: a node address is 1..247"),
        (5, 5, "nothing to change"),
    ],
)
def test_addresses_no_node_can_have_are_bad_input(old: int, new: int, expected: str) -> None:
    with pytest.raises(AddressError) as info:
        check_addresses(old, new)
    assert expected in str(info.value) and info.value.code == 2


def test_refuses_a_taken_address_without_writing() -> None:
    node = FakeNode(247, 0xF7)
    err = refused([node, FakeNode(3, 0x3)], 247, 3)
    assert "address 3 is already taken by node id 0x00000003" in str(err) and err.code == 1
    assert HINT in str(err) and node.saved == []


def test_refuses_when_nothing_answers_or_two_nodes_answer() -> None:
    err = refused([FakeNode(3, 0x3)], 100, 5)
    assert "no Firelane node at address 100: nothing answers there" in str(err)
    assert HINT in str(err)
    a, b = FakeNode(9, 0x1), FakeNode(9, 0x2, delay_s=0.05)
    err = refused([a, b], 9, 20)
    assert "a write would move all of them" in str(err) and a.saved == b.saved == []


def test_a_node_that_cannot_save_keeps_its_address() -> None:
    err = refused([FakeNode(4, 0x4, write_code=c.EX_DEVICE_FAILURE)], 4, 6)
    assert "could not save the new address" in str(err) and "unchanged" in str(err)


def test_a_node_that_ignores_the_write_is_reported() -> None:
    err = refused([FakeNode(4, 0x4, ignore_address=True)], 4, 6)
    assert "node 0x00000004 still answers at address 4: it did not take address 6" in str(err)


def test_a_node_lost_after_the_write_says_to_scan() -> None:
    err = refused([FakeNode(4, 0x4, silent_after_write=True)], 4, 6)
    assert "no longer answers at 4 and does not answer at 6" in str(err)
    assert HINT in str(err)
