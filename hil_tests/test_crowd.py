"""The crowd (hil_tests/crowd.py) answers Modbus as a node does: the same identity and status
registers as the real firmware on the emulated board, exceptions where the firmware gives them,
nothing for addresses it does not hold, its replies after the turnaround it was given; and in
push mode, heartbeats a gateway decodes."""

from __future__ import annotations

import os
import struct
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.crowd import Crowd, node_words, parse_addresses
from hil_tests.emulator.process import EmulatorProcess
from hil_tests.node_helpers import Bus as NodeMaster
from hil_tests.pty_kit import read_for
from protocol import codes, master, push, rtu
from protocol import registers as r
from protocol.errors import NEED_DATA
from protocol.modbus import Pdu


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A raw pty pair: (the test's end, the path the crowd opens)."""
    ours, theirs = os.openpty()
    tty.setraw(ours)
    tty.setraw(theirs)
    path = tmp_path / "tty"
    path.symlink_to(os.ttyname(theirs))
    yield ours, path
    os.close(ours)
    os.close(theirs)


def request(fd: int, unit: int, fc: int, address: int, count: int) -> float:
    os.write(fd, rtu.encode(Pdu(unit, fc, address=address, count=count)))
    return time.monotonic()


def response(fd: int, n: int, timeout: float = 1.0) -> Pdu | None:
    data = read_for(fd, n, timeout)
    if not data:
        return None
    dec = master.MasterDecoder(rtu.CLIENT)
    dec.feed(data)
    pdu = dec.next_event()
    assert pdu is not NEED_DATA and isinstance(pdu, Pdu), data.hex()
    return pdu


def test_addresses_parse() -> None:
    assert parse_addresses("9-12,20") == [9, 10, 11, 12, 20]
    with pytest.raises(ValueError):
        parse_addresses("0-3")


def test_crowd_answers_reads_for_its_addresses_only(line: tuple[int, Path]) -> None:
    fd, path = line
    with Crowd(path, [9, 10], turnaround_s=0.02) as crowd:
        sent = request(fd, 9, codes.FC_READ_HOLDING, r.STATUS, 8)
        reply = response(fd, 5 + 16)
        took = time.monotonic() - sent
        assert reply is not None and reply.unit == 9 and not reply.code
        words = node_words(9)
        assert list(reply.values) == [words[a] for a in range(r.STATUS, r.STATUS + 8)]
        assert took >= 0.02, took  # the turnaround it was given
        # FC04, identity: a Firelane node, map version 1, node id 0x1A00000A.
        request(fd, 10, codes.FC_READ_INPUT, r.DEVICE_TYPE, 6)
        ident = response(fd, 5 + 12)
        assert ident is not None and ident.function == codes.FC_READ_INPUT
        v = list(ident.values)
        assert v[0] == r.DEVICE_TYPE_NODE and v[5] == r.MAP_VERSION
        assert (v[3] << 16 | v[4]) == 0x1A00000A
        # A gap in the map: exception 02, as the firmware answers; a write: exception 01.
        request(fd, 9, codes.FC_READ_HOLDING, r.STATUS, 32)
        gap = response(fd, 5)
        assert gap is not None and gap.code == codes.EX_ILLEGAL_ADDRESS
        os.write(fd, rtu.encode(Pdu(9, codes.FC_WRITE_SINGLE, address=r.COMMAND, value=1)))
        refused = response(fd, 5)
        assert refused is not None and refused.code == codes.EX_ILLEGAL_FUNCTION
        # Not ours: silence.
        request(fd, 11, codes.FC_READ_HOLDING, r.STATUS, 8)
        assert response(fd, 1, timeout=0.2) is None
        assert crowd.requests == 4 and crowd.replies == 4


def test_flat_crowd_serves_any_span(line: tuple[int, Path]) -> None:
    fd, path = line
    with Crowd(path, [3], turnaround_s=0.0, flat=True):
        request(fd, 3, codes.FC_READ_HOLDING, 0, 32)
        reply = response(fd, 5 + 64)
        assert reply is not None and len(reply.values) == 32


def test_push_crowd_sends_heartbeats_a_gateway_decodes(line: tuple[int, Path]) -> None:
    fd, path = line
    with Crowd(path, [5, 6], heartbeat_s=0.2, baud=115200):
        data = read_for(fd, 10_000, timeout=0.5)
    dec = push.PushDecoder()
    dec.feed(data)
    frames = []
    while (f := dec.next_event()) is not NEED_DATA:
        assert isinstance(f, push.Frame)
        frames.append(f)
    assert {f.node_id for f in frames} == {0x1A000005, 0x1A000006}, frames
    assert all(f.type == push.MT_HEARTBEAT and f.counter is None for f in frames)
    block = struct.unpack(push.HEARTBEAT_FORMAT, frames[0].payload)
    assert block[0] == 0 and block[7] == node_words(5)[r.SUPPLY]


def test_crowd_serves_what_the_real_firmware_serves(tmp_path: Path, line: tuple[int, Path]) -> None:
    """Identity and the idle status word as the firmware gives them: the gateway cannot tell a
    crowd node from a real one at rest."""
    address = 21
    node = EmulatorProcess(tmp_path / "fs", tmp_path / "tty-node", address=address)
    with node:
        node.wait_event("uart")
        with NodeMaster(node.serial, unit=address) as real:
            identity = real.read(r.DEVICE_TYPE, 6)
            status = real.read(r.STATUS, 3)
    words = node_words(address)
    assert identity == [words[a] for a in range(r.DEVICE_TYPE, r.DEVICE_TYPE + 6)]
    assert status[0] & ~r.ST_TEST == words[r.STATUS] and status[1:] == [0, 0]
