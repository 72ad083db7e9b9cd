"""The Modbus RTU slave: requests built with protocol/, replies decoded as a master does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codes as c
from protocol import registers as r
from protocol.crc import append_crc
from protocol.errors import NEED_DATA
from protocol.master import MasterDecoder
from protocol.modbus import Pdu
from protocol.rtu import encode
from slave import Slave

UNIT = 17
STATUS_BLOCK = [0x0041, 0x0002, 0x0000, 7, 245, 12, 215, 12100]


class Bank:
    """The app's side of the slave: a register bank behind word() and write()."""

    def __init__(self, write_code: int = 0) -> None:
        self.words = {r.STATUS + i: v for i, v in enumerate(STATUS_BLOCK)}
        self.words[r.SMOKE_ALARM] = 240
        self.read: list[int] = []
        self.writes: list[tuple[int, tuple[int, ...], bool]] = []
        self.write_code = write_code

    def word(self, address: int) -> int:
        self.read.append(address)
        return self.words.get(address, 0)

    def write(self, address: int, values: tuple[int, ...], broadcast: bool) -> int:
        self.writes.append((address, tuple(values), broadcast))
        if self.write_code:
            return self.write_code
        for i, v in enumerate(values):
            self.words[address + i] = v
        return 0


def make(write_code: int = 0) -> tuple[Slave, Bank]:
    bank = Bank(write_code)
    return Slave(UNIT, bank.word, bank.write), bank


def decode(reply: bytes | None, request: Pdu) -> Pdu:
    """The reply as the gateway's decoder reads it: exactly one response to request."""
    assert reply is not None
    dec = MasterDecoder()
    dec.expect(request)
    dec.feed(reply)
    pdu = dec.next_event()
    assert isinstance(pdu, Pdu)
    assert dec.next_event() is NEED_DATA
    assert (dec.crc_errors, dec.frame_errors, dec.discarded) == (0, 0, 0)
    return pdu


def ask(slave: Slave, request: Pdu) -> Pdu:
    return decode(slave.receive(encode(request)), request)


def read(fc: int, address: int, count: int, unit: int = UNIT) -> Pdu:
    return Pdu(unit, fc, address=address, count=count)


@pytest.mark.parametrize("fc", [c.FC_READ_HOLDING, c.FC_READ_INPUT])
def test_a_read_returns_the_words(fc: int) -> None:
    slave, bank = make()
    reply = ask(slave, read(fc, r.STATUS, r.STATUS_BLOCK_LEN))
    assert reply == Pdu(UNIT, fc, True, values=STATUS_BLOCK)
    assert bank.read == list(range(r.STATUS, r.STATUS + r.STATUS_BLOCK_LEN))


@pytest.mark.parametrize(
    ("address", "count"),
    [(0x0018, 1), (r.STATUS, 9), (r.DEVICE_TYPE, 7), (r.HEARTBEAT, 3), (0xFFFF, 1)],
)
def test_a_read_of_unmapped_registers_is_exception_02(address: int, count: int) -> None:
    slave, bank = make()
    reply = ask(slave, read(c.FC_READ_HOLDING, address, count))
    assert reply == Pdu(UNIT, c.FC_READ_HOLDING, True, code=c.EX_ILLEGAL_ADDRESS)
    assert r.check_read(address, count) == c.EX_ILLEGAL_ADDRESS
    assert bank.read == []  # refused before any word is read


@pytest.mark.parametrize("count", [0, 126])
def test_a_read_of_a_bad_quantity_is_exception_03(count: int) -> None:
    slave, bank = make()
    # Built by hand: protocol/ refuses to encode a quantity outside 1..125.
    request = append_crc(bytes((UNIT, c.FC_READ_INPUT, 0, r.STATUS, count >> 8, count & 0xFF)))
    reply = decode(slave.receive(request), read(c.FC_READ_INPUT, r.STATUS, 1))
    assert reply == Pdu(UNIT, c.FC_READ_INPUT, True, code=c.EX_ILLEGAL_VALUE)
    assert bank.read == []


def test_a_single_write_calls_write_and_echoes() -> None:
    slave, bank = make()
    request = Pdu(UNIT, c.FC_WRITE_SINGLE, address=r.SMOKE_ALARM, value=300)
    assert ask(slave, request) == Pdu(UNIT, c.FC_WRITE_SINGLE, True, r.SMOKE_ALARM, value=300)
    assert bank.writes == [(r.SMOKE_ALARM, (300,), False)]
    assert ask(slave, read(c.FC_READ_HOLDING, r.SMOKE_ALARM, 1)).values == (300,)


def test_a_multiple_write_calls_write_and_answers_the_count() -> None:
    slave, bank = make()
    request = Pdu(UNIT, c.FC_WRITE_MULTIPLE, address=r.LEAKAGE_ALARM, values=(400, 320, 30))
    reply = ask(slave, request)
    assert reply == Pdu(UNIT, c.FC_WRITE_MULTIPLE, True, r.LEAKAGE_ALARM, count=3)
    assert bank.writes == [(r.LEAKAGE_ALARM, (400, 320, 30), False)]


@pytest.mark.parametrize(
    "code", [c.EX_ILLEGAL_ADDRESS, c.EX_ILLEGAL_VALUE, c.EX_DEVICE_FAILURE, c.EX_ILLEGAL_FUNCTION]
)
@pytest.mark.parametrize("fc", [c.FC_WRITE_SINGLE, c.FC_WRITE_MULTIPLE])
def test_the_write_callbacks_exception_is_the_answer(code: int, fc: int) -> None:
    slave, bank = make(write_code=code)
    request = Pdu(UNIT, fc, address=r.SMOKE_ALARM, value=5, values=(5,))
    assert ask(slave, request) == Pdu(UNIT, fc, True, code=code)
    assert len(bank.writes) == 1


@pytest.mark.parametrize(
    "request_",
    [
        Pdu(c.BROADCAST, c.FC_WRITE_SINGLE, address=r.COMMAND, value=c.CMD_SILENCE),
        Pdu(c.BROADCAST, c.FC_WRITE_MULTIPLE, address=r.SMOKE_ALARM, values=(300, 200)),
    ],
    ids=["fc06", "fc16"],
)
def test_a_broadcast_write_is_applied_and_never_answered(request_: Pdu) -> None:
    slave, bank = make()
    assert slave.receive(encode(request_)) is None
    values = (request_.value,) if request_.function == c.FC_WRITE_SINGLE else request_.values
    assert bank.writes == [(request_.address, values, True)]


def test_a_refused_broadcast_is_not_answered_either() -> None:
    slave, bank = make(write_code=c.EX_ILLEGAL_VALUE)
    request = Pdu(c.BROADCAST, c.FC_WRITE_SINGLE, address=r.ADDRESS, value=5)
    assert slave.receive(encode(request)) is None
    assert len(bank.writes) == 1
    assert slave.receive(encode(read(c.FC_READ_HOLDING, r.STATUS, 1, unit=0))) is None


def test_requests_for_another_unit_are_ignored() -> None:
    slave, bank = make()
    for unit in (1, 16, 18, 247):
        assert slave.receive(encode(read(c.FC_READ_HOLDING, r.STATUS, 8, unit))) is None
        request = Pdu(unit, c.FC_WRITE_SINGLE, address=r.SMOKE_ALARM, value=300)
        assert slave.receive(encode(request)) is None
    assert (bank.read, bank.writes) == ([], [])
    assert slave.decoder.skipped == 8


def test_diagnostic_sub_function_00_echoes() -> None:
    slave, _ = make()
    request = Pdu(UNIT, c.FC_DIAGNOSTIC, sub=0, value=0xA537)
    assert ask(slave, request) == Pdu(UNIT, c.FC_DIAGNOSTIC, True, sub=0, value=0xA537)


@pytest.mark.parametrize("sub", [1, 4, 10, 0xFFFF])
def test_other_diagnostic_sub_functions_are_exception_01(sub: int) -> None:
    slave, _ = make()
    request = Pdu(UNIT, c.FC_DIAGNOSTIC, sub=sub, value=0)
    assert ask(slave, request) == Pdu(UNIT, c.FC_DIAGNOSTIC, True, code=c.EX_ILLEGAL_FUNCTION)


def test_an_unknown_function_is_exception_01() -> None:
    slave, _ = make()
    request = append_crc(bytes((UNIT, 0x2B, 0x0E, 0x01, 0x00)))  # read device identification
    reply = slave.receive(request)
    assert reply == encode(Pdu(UNIT, 0x2B, True, code=c.EX_ILLEGAL_FUNCTION))


def test_an_unknown_function_split_across_reads_is_still_exception_01() -> None:
    slave, _ = make()
    request = append_crc(bytes((UNIT, 0x2B, 0x0E, 0x01, 0x00)))
    replies = [slave.receive(request[i : i + 1]) for i in range(len(request))]
    assert replies[-1] == encode(Pdu(UNIT, 0x2B, True, code=c.EX_ILLEGAL_FUNCTION))


STATUS_READ = read(c.FC_READ_HOLDING, r.STATUS, r.STATUS_BLOCK_LEN)


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_noise_like_an_unknown_function_for_us_does_not_hold_up_the_next_request(
    bytewise: bool,
) -> None:
    # Our address and an unknown function, then no silence: the node waits for the rest of
    # such a request, but not past a known request that ends on the last byte received.
    slave, _ = make()
    data = bytes((UNIT, 0x2B, 0x00)) + encode(STATUS_READ)
    if bytewise:
        replies = [slave.receive(data[i : i + 1]) for i in range(len(data))]
        assert replies[:-1] == [None] * (len(data) - 1)
        reply = replies[-1]
    else:
        reply = slave.receive(data)
    assert reply is not None
    assert decode(reply, STATUS_READ).values == tuple(STATUS_BLOCK)


@pytest.mark.parametrize(
    ("noise", "crc_errors", "frame_errors"),
    [
        (b"\xf8\xff\x11\x2b\x00", 0, 1),  # garbage
        (encode(STATUS_READ)[:-1] + b"\x00", 1, 0),  # a request with its CRC hit by noise
        (b"\x11\x03\x00", 0, 1),  # a request cut short: the t3.5 gap drops it
    ],
    ids=["garbage", "bad-crc", "truncated"],
)
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_noise_then_a_valid_request_is_still_answered(
    noise: bytes, crc_errors: int, frame_errors: int, bytewise: bool
) -> None:
    slave, _ = make()
    replies = []
    if bytewise:
        for b in noise:
            replies.append(slave.receive(bytes((b,))))
    else:
        replies.append(slave.receive(noise))
    slave.gap()
    assert replies == [None] * len(replies)
    data = encode(STATUS_READ)
    if bytewise:
        replies = [slave.receive(data[i : i + 1]) for i in range(len(data))]
        assert replies[:-1] == [None] * (len(data) - 1)
        reply = replies[-1]
    else:
        reply = slave.receive(data)
    assert decode(reply, STATUS_READ).values == tuple(STATUS_BLOCK)
    dec = slave.decoder
    assert (dec.crc_errors, dec.frame_errors) == (crc_errors, frame_errors)


def test_byte_at_a_time_gives_the_same_reply_as_one_feed() -> None:
    requests = [
        STATUS_READ,
        Pdu(UNIT, c.FC_WRITE_SINGLE, address=r.SMOKE_ALARM, value=300),
        Pdu(UNIT, c.FC_WRITE_MULTIPLE, address=r.LEAKAGE_ALARM, values=(400, 320)),
        Pdu(UNIT, c.FC_DIAGNOSTIC, sub=0, value=0x1234),
        read(c.FC_READ_INPUT, 0x0030, 2),
    ]
    whole_slave, _ = make()
    byte_slave, _ = make()
    for request in requests:
        data = encode(request)
        whole = whole_slave.receive(data)
        bytewise = [byte_slave.receive(data[i : i + 1]) for i in range(len(data))]
        assert bytewise[:-1] == [None] * (len(data) - 1)
        assert bytewise[-1] == whole
        assert whole is not None


def test_two_requests_in_one_chunk_answer_the_last() -> None:
    # A master waits for each reply, so this is what a late-read buffer looks like.
    slave, bank = make()
    write = Pdu(UNIT, c.FC_WRITE_SINGLE, address=r.SMOKE_ALARM, value=300)
    reply = slave.receive(encode(write) + encode(STATUS_READ))
    assert decode(reply, STATUS_READ).values == tuple(STATUS_BLOCK)
    assert len(bank.writes) == 1


@settings(deadline=None)  # simulated time, not wall time: slow machines too
@given(noise=st.binary(max_size=300), split=st.integers(min_value=1, max_value=40))
def test_any_bytes_then_a_gap_then_a_request_is_answered(noise: bytes, split: int) -> None:
    slave, _ = make()
    for i in range(0, len(noise), split):
        slave.receive(noise[i : i + split])  # whatever it makes of them, it never raises
    slave.gap()
    reply = slave.receive(encode(STATUS_READ))
    assert decode(reply, STATUS_READ).values == tuple(STATUS_BLOCK)
