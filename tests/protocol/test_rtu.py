"""The RTU codec battery (../shared/STYLE.md lesson 3): for every message kind, round-trip, every
strict prefix is NEED_DATA, byte-at-a-time equals one feed; a table of malformed frames; two
endpoints back to back; hypothesis properties on top."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.inspect import read_all
from protocol import codes, master, registers, rtu
from protocol.errors import NEED_DATA, CRCError, FrameError
from protocol.modbus import Pdu

NODE = 17

REQUESTS = {
    "read-holding": Pdu(NODE, codes.FC_READ_HOLDING, address=0x10, count=8),
    "read-input": Pdu(NODE, codes.FC_READ_INPUT, address=0x20, count=125),
    "write-single": Pdu(NODE, codes.FC_WRITE_SINGLE, address=0x44, value=350),
    "write-multiple": Pdu(NODE, codes.FC_WRITE_MULTIPLE, address=0x42, count=3, values=(1, 2, 3)),
    "write-multiple-max": Pdu(
        NODE, codes.FC_WRITE_MULTIPLE, address=0, count=123, values=tuple(range(123))
    ),
    "diagnostic-echo": Pdu(NODE, codes.FC_DIAGNOSTIC, sub=0, value=0xA55A),
    "broadcast-write": Pdu(0, codes.FC_WRITE_SINGLE, address=0x60, value=1),
}
RESPONSES = {
    "read-response": Pdu(NODE, codes.FC_READ_HOLDING, True, values=(1, 0xFFFF, 0x8000)),
    "read-response-max": Pdu(NODE, codes.FC_READ_INPUT, True, values=tuple(range(125))),
    "write-single-echo": Pdu(NODE, codes.FC_WRITE_SINGLE, True, address=0x44, value=350),
    "write-multiple-response": Pdu(NODE, codes.FC_WRITE_MULTIPLE, True, address=0x42, count=3),
    "diagnostic-response": Pdu(NODE, codes.FC_DIAGNOSTIC, True, sub=0, value=0xA55A),
    "exception": Pdu(NODE, codes.FC_READ_HOLDING, True, code=codes.EX_ILLEGAL_ADDRESS),
}
ALL = [(name, pdu, rtu.SERVER) for name, pdu in REQUESTS.items()] + [
    (name, pdu, rtu.CLIENT) for name, pdu in RESPONSES.items()
]


def classes(events: list[Any]) -> list[Any]:
    """Events with each FrameError replaced by its class, so tables can list the expected ones."""
    return [type(e) if isinstance(e, FrameError) else e for e in events]


def drain(dec: rtu.RtuDecoder) -> list[Any]:
    """Every event until NEED_DATA."""
    return classes(read_all(dec))


def feed_all(dec: rtu.RtuDecoder, data: bytes) -> list[Any]:
    """Through the read loop firmware and gateway use (gateway.inspect.read_all)."""
    return classes(read_all(dec, data))


def decoder(role: int) -> rtu.RtuDecoder:
    return rtu.RtuDecoder(rtu.SERVER, NODE) if role == rtu.SERVER else master.MasterDecoder(role)


@pytest.mark.parametrize(("name", "pdu", "role"), ALL, ids=[a[0] for a in ALL])
def test_round_trip(name: str, pdu: Pdu, role: int) -> None:
    assert feed_all(decoder(role), rtu.encode(pdu)) == [pdu]


@pytest.mark.parametrize(("name", "pdu", "role"), ALL, ids=[a[0] for a in ALL])
def test_every_strict_prefix_is_need_data(name: str, pdu: Pdu, role: int) -> None:
    frame = rtu.encode(pdu)
    for cut in range(len(frame)):
        dec = decoder(role)
        dec.feed(frame[:cut])
        assert dec.next_event() is NEED_DATA, f"prefix of {cut} bytes"


@pytest.mark.parametrize(("name", "pdu", "role"), ALL, ids=[a[0] for a in ALL])
def test_byte_at_a_time_equals_one_feed(name: str, pdu: Pdu, role: int) -> None:
    frame = rtu.encode(pdu) * 2
    dec = decoder(role)
    events: list[Any] = []
    for i in range(len(frame)):
        events += feed_all(dec, frame[i : i + 1])
    assert events == feed_all(decoder(role), frame) == [pdu, pdu]


def test_known_frame_bytes() -> None:
    # Modbus Application Protocol V1.1b3, 6.3 example: read 3 registers from 0x006B of unit 17;
    # the CRC is the one every Modbus tool prints for this frame.
    frame = rtu.encode(Pdu(17, codes.FC_READ_HOLDING, address=0x6B, count=3))
    assert frame.hex() == "1103006b00037687"


def with_crc(body: bytes) -> bytes:
    from protocol.crc import append_crc

    return append_crc(body)


# (id, role, bytes, gap after feeding, expected events)
MALFORMED: list[tuple[str, int, bytes, bool, list[Any]]] = [
    (
        "bad-crc",
        rtu.SERVER,
        rtu.encode(REQUESTS["read-holding"])[:-1] + b"\x00",
        True,
        [CRCError],
    ),
    ("unit-out-of-range", rtu.SERVER, b"\xf8\x03\x00\x00\x00\x01\x00\x00", True, [FrameError]),
    (
        "truncated-by-silence",
        rtu.SERVER,
        rtu.encode(REQUESTS["read-holding"])[:5],
        True,
        [FrameError],
    ),
    (
        "read-count-zero",
        rtu.SERVER,
        with_crc(bytes([NODE, 3, 0, 0, 0, 0])),
        False,
        [Pdu(NODE, 3, address=0, count=0, code=codes.EX_ILLEGAL_VALUE)],
    ),
    (
        "read-count-126",
        rtu.SERVER,
        with_crc(bytes([NODE, 4, 0, 0, 0, 126])),
        False,
        [Pdu(NODE, 4, address=0, count=126, code=codes.EX_ILLEGAL_VALUE)],
    ),
    (
        "write-multiple-byte-count-mismatch",
        rtu.SERVER,
        with_crc(bytes([NODE, 16, 0, 0x42, 0, 2, 2, 0, 1])),
        False,
        [Pdu(NODE, 16, address=0x42, count=2, code=codes.EX_ILLEGAL_VALUE)],
    ),
    (
        "unknown-function-to-us",
        rtu.SERVER,
        with_crc(bytes([NODE, 0x2B, 0x0E, 0x01, 0x00])),
        False,
        [Pdu(NODE, 0x2B, code=codes.EX_ILLEGAL_FUNCTION)],
    ),
    (
        "diagnostic-other-sub-function",
        rtu.SERVER,
        with_crc(bytes([NODE, 8, 0, 1, 0, 0])),
        False,
        [Pdu(NODE, 8, sub=1, value=0)],
    ),
    ("request-to-another-node", rtu.SERVER, rtu.encode(Pdu(5, 3, address=0, count=1)), False, []),
    (
        "another-nodes-response",
        rtu.SERVER,
        rtu.encode(Pdu(5, 3, True, values=(NODE, 3, 0))),
        False,
        [],
    ),
    (
        # Byte count 3 is no response, but these 8 bytes are a valid read request (at 0x0300,
        # 258 registers): a gateway that hears it skips it rather than raising.
        "odd-byte-count-is-a-request-not-a-response",
        rtu.CLIENT,
        with_crc(bytes([NODE, 3, 3, 0, 1, 2])),
        False,
        [],
    ),
    (
        "read-response-odd-byte-count",
        rtu.CLIENT,
        with_crc(bytes([NODE, 3, 1, 0x55])),
        True,
        [FrameError],
    ),
    (
        "read-response-zero-byte-count",
        rtu.CLIENT,
        with_crc(bytes([NODE, 3, 0])),
        True,
        [FrameError],
    ),
    (
        "response-from-broadcast-address",
        rtu.CLIENT,
        rtu.encode(Pdu(0, 6, True, address=1)),
        False,
        [],
    ),
    ("request-seen-by-client", rtu.CLIENT, rtu.encode(REQUESTS["read-holding"]), False, []),
    ("noise-only", rtu.CLIENT, bytes(range(250, 256)) * 3, True, [FrameError]),
]


@pytest.mark.parametrize(
    ("name", "role", "data", "gap", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed(name: str, role: int, data: bytes, gap: bool, expected: list[Any]) -> None:
    dec = decoder(role)
    events = feed_all(dec, data)
    if gap:
        dec.gap()
        events += drain(dec)
    assert events == expected
    # Whatever happened, the decoder is back in step: a good frame right after is decoded.
    good = REQUESTS["read-holding"] if role == rtu.SERVER else RESPONSES["read-response"]
    assert feed_all(dec, rtu.encode(good)) == [good]


def test_one_error_per_run_of_garbage_and_counters() -> None:
    dec = decoder(rtu.SERVER)
    garbage = bytes([0xFF] * 40)
    frame = rtu.encode(REQUESTS["write-single"])
    assert feed_all(dec, garbage + frame) == [FrameError, REQUESTS["write-single"]]
    assert dec.discarded == 40
    assert dec.frame_errors == 1
    assert dec.frames == 1


def test_shared_bus_conversation_is_filtered_to_our_requests() -> None:
    """A node hears the whole bus: requests to others, their answers, and its own request."""
    bus = b"".join(
        [
            rtu.encode(Pdu(3, 3, address=0x10, count=8)),
            rtu.encode(Pdu(3, 3, True, values=range(8))),
            rtu.encode(Pdu(4, 16, address=0x40, count=2, values=(5, 6))),
            rtu.encode(Pdu(4, 16, True, address=0x40, count=2)),
            rtu.encode(REQUESTS["read-holding"]),
            rtu.encode(Pdu(9, 3, True, code=2)),
            rtu.encode(REQUESTS["broadcast-write"]),
        ]
    )
    dec = decoder(rtu.SERVER)
    assert feed_all(dec, bus) == [REQUESTS["read-holding"], REQUESTS["broadcast-write"]]
    assert dec.skipped == 5
    assert dec.discarded == 0


def test_gap_stops_waiting_for_a_long_frame_that_is_really_noise() -> None:
    # A noise byte pair that looks like the start of a 209-byte FC16 request would make the
    # decoder wait for 209 bytes; the t3.5 silence tells it the frame ended.
    dec = decoder(rtu.SERVER)
    frame = rtu.encode(REQUESTS["read-holding"])
    assert feed_all(dec, bytes([NODE, 16, 0, 0, 0, 0, 200]) + frame) == []
    dec.gap()
    assert drain(dec) == [FrameError, REQUESTS["read-holding"]]


def test_buffer_is_bounded_and_never_stalls() -> None:
    dec = decoder(rtu.CLIENT)
    assert dec.feed(bytes(1000)) == rtu.MAX_FRAME
    assert dec.feed(b"\x01") == 0  # full until drained
    assert drain(dec) == [FrameError]  # all-zero noise: unit 0, function 0
    assert dec.feed(bytes(10)) == 10


def test_encode_rejects_fields_that_do_not_fit() -> None:
    bad = [
        Pdu(248, 3, address=0, count=1),
        Pdu(1, 3, address=0, count=0),
        Pdu(1, 3, address=0xFFFF, count=2),
        Pdu(1, 16, address=0, values=tuple(range(124))),
        Pdu(1, 3, True, values=(0x10000,)),
        Pdu(1, 0x41, address=0, count=1),
        Pdu(1, 3, False, code=2),
    ]
    for pdu in bad:
        with pytest.raises(ValueError):
            rtu.encode(pdu)


class Node:
    """A minimal slave over a dict of registers, enough to put two endpoints back to back."""

    def __init__(self) -> None:
        self.regs = {a: 0 for a in range(0x70) if registers.check_read(a, 1) == 0}
        self.decoder = rtu.RtuDecoder(rtu.SERVER, NODE)

    def receive(self, data: bytes) -> bytes:
        out = b""
        for req in feed_all(self.decoder, data):
            reply = self.handle(req)
            if reply is not None and req.unit != codes.BROADCAST:
                out += rtu.encode(reply)
        return out

    def handle(self, req: Pdu) -> Pdu | None:
        if req.code:
            return req.refusal()
        fc = req.function
        if fc in (codes.FC_READ_HOLDING, codes.FC_READ_INPUT):
            bad = registers.check_read(req.address, req.count)
            if bad:
                return Pdu(req.unit, fc, True, code=bad)
            read = [self.regs[a] for a in range(req.address, req.address + req.count)]
            return Pdu(req.unit, fc, True, values=read)
        if fc in (codes.FC_WRITE_SINGLE, codes.FC_WRITE_MULTIPLE):
            values = req.values if fc == codes.FC_WRITE_MULTIPLE else (req.value,)
            bad = registers.check_write(req.address, values)
            if bad:
                return Pdu(req.unit, fc, True, code=bad)
            for i, v in enumerate(values):
                self.regs[req.address + i] = v
            if fc == codes.FC_WRITE_SINGLE:
                return Pdu(req.unit, fc, True, address=req.address, value=req.value)
            return Pdu(req.unit, fc, True, address=req.address, count=len(values))
        return Pdu(req.unit, fc, True, sub=req.sub, value=req.value)


def test_two_endpoints_back_to_back() -> None:
    node = Node()
    gateway = master.MasterDecoder()

    def ask(req: Pdu) -> list[Any]:
        return feed_all(gateway, node.receive(rtu.encode(req)))

    assert ask(Pdu(NODE, 16, address=registers.SMOKE_ALARM, values=(300, 200))) == [
        Pdu(NODE, 16, True, address=registers.SMOKE_ALARM, count=2)
    ]
    assert ask(Pdu(NODE, 3, address=registers.SMOKE_ALARM, count=2)) == [
        Pdu(NODE, 3, True, values=(300, 200))
    ]
    assert ask(Pdu(NODE, 6, address=registers.LEAKAGE_ALARM, value=5000)) == [
        Pdu(NODE, 6, True, code=codes.EX_ILLEGAL_VALUE)
    ]
    assert ask(Pdu(NODE, 6, address=registers.STATUS, value=1)) == [
        Pdu(NODE, 6, True, code=codes.EX_ILLEGAL_ADDRESS)
    ]
    assert ask(Pdu(NODE, 3, address=0x0030, count=1)) == [
        Pdu(NODE, 3, True, code=codes.EX_ILLEGAL_ADDRESS)
    ]
    assert ask(Pdu(NODE, 8, sub=0, value=0x1234)) == [Pdu(NODE, 8, True, sub=0, value=0x1234)]
    assert ask(Pdu(0, 6, address=registers.HEARTBEAT, value=60)) == []  # broadcast: no reply
    assert node.regs[registers.HEARTBEAT] == 60


# Hypothesis: any valid message survives the wire, behind any garbage once the line goes quiet.
units = st.integers(1, 247)
words = st.integers(0, 0xFFFF)


@st.composite
def requests(draw: st.DrawFn) -> Pdu:
    fc = draw(st.sampled_from([3, 4, 6, 8, 16]))
    unit = draw(units)
    if fc in (3, 4):
        count = draw(st.integers(1, 125))
        return Pdu(unit, fc, address=draw(st.integers(0, 0x10000 - count)), count=count)
    if fc == 16:
        values = draw(st.lists(words, min_size=1, max_size=123))
        address = draw(st.integers(0, 0x10000 - len(values)))
        return Pdu(unit, fc, address=address, count=len(values), values=values)
    if fc == 6:
        return Pdu(unit, fc, address=draw(words), value=draw(words))
    return Pdu(unit, fc, sub=0, value=draw(words))


@st.composite
def responses(draw: st.DrawFn) -> Pdu:
    fc = draw(st.sampled_from([3, 4, 6, 8, 16, 0x80]))
    unit = draw(units)
    if fc == 0x80:
        return Pdu(
            unit, draw(st.sampled_from([3, 4, 6, 8, 16])), True, code=draw(st.integers(1, 4))
        )
    if fc in (3, 4):
        return Pdu(unit, fc, True, values=draw(st.lists(words, min_size=1, max_size=125)))
    if fc == 16:
        count = draw(st.integers(1, 123))
        return Pdu(unit, fc, True, address=draw(st.integers(0, 0x10000 - count)), count=count)
    if fc == 6:
        return Pdu(unit, fc, True, address=draw(words), value=draw(words))
    return Pdu(unit, fc, True, sub=0, value=draw(words))


@settings(max_examples=300, deadline=None)
@given(requests())
def test_property_request_round_trip(pdu: Pdu) -> None:
    assert feed_all(rtu.RtuDecoder(rtu.SERVER, None), rtu.encode(pdu)) == [pdu]


@settings(max_examples=300, deadline=None)
@given(responses())
def test_property_response_round_trip(pdu: Pdu) -> None:
    assert feed_all(master.MasterDecoder(), rtu.encode(pdu)) == [pdu]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), responses())
def test_property_resynchronises_after_garbage(garbage: bytes, pdu: Pdu) -> None:
    dec = master.MasterDecoder()
    events = feed_all(dec, garbage)
    dec.gap()  # the line went quiet after the noise burst
    events += drain(dec)
    events += feed_all(dec, rtu.encode(pdu))
    assert events[-1] == pdu


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_property_random_bytes_never_crash_or_stall(data: bytes) -> None:
    dec = rtu.RtuDecoder(rtu.SERVER, NODE)
    feed_all(dec, data)  # raises nothing but FrameError, which feed_all absorbs
    dec.gap()
    drain(dec)
    assert dec.feed(bytes(rtu.MAX_FRAME)) == rtu.MAX_FRAME  # everything was consumed


# Frames valid in two shapes at once, found by the pymodbus differential tests: the CRC of
# the first bytes of one frame happens to match, so bytes alone cannot tell the shapes apart.
AMBIGUOUS_REQUEST = Pdu(4, 3, address=0x02B5, count=2)  # its first 7 bytes pass as a response
AMBIGUOUS_RESPONSE = Pdu(1, 3, True, values=(1, 0x45))  # its first 8 bytes pass as a request


def test_ambiguous_vectors_really_are_ambiguous() -> None:
    from protocol.crc import check_crc

    assert check_crc(rtu.encode(AMBIGUOUS_REQUEST), 0, 7)
    assert check_crc(rtu.encode(AMBIGUOUS_RESPONSE), 0, 8)


def test_node_fed_byte_by_byte_keeps_the_request_whose_prefix_passes_as_a_response() -> None:
    dec = rtu.RtuDecoder(rtu.SERVER, 4)
    events: list[Any] = []
    for byte in rtu.encode(AMBIGUOUS_REQUEST):
        events += feed_all(dec, bytes([byte]))
    assert events == [AMBIGUOUS_REQUEST]


def test_gateway_that_expects_its_response_skips_its_echoed_request() -> None:
    dec = master.MasterDecoder()
    response = Pdu(4, 3, True, values=(0xBEEF, 1))
    dec.expect(AMBIGUOUS_REQUEST)
    wire = rtu.encode(AMBIGUOUS_REQUEST) + rtu.encode(response)
    assert feed_all(dec, wire) == [response]
    assert dec.skipped == 1


def test_expectation_refuses_a_response_of_the_wrong_length_or_unit() -> None:
    dec = master.MasterDecoder()
    dec.expect(Pdu(4, 3, address=0, count=2))
    stray = [Pdu(4, 3, True, values=(1,)), Pdu(5, 3, True, values=(1, 2))]
    refusal = Pdu(4, 3, True, code=codes.EX_ILLEGAL_ADDRESS)
    events = feed_all(dec, b"".join(rtu.encode(p) for p in [*stray, refusal]))
    assert events[-1] == refusal and stray[0] not in events and stray[1] not in events
    dec.expect(None)
    assert feed_all(dec, rtu.encode(stray[0])) == [stray[0]]


def test_silence_after_each_frame_settles_a_response_that_passes_as_a_request() -> None:
    dec = rtu.RtuDecoder(rtu.SERVER, None)
    request = Pdu(1, 3, address=3, count=2)
    events = []
    for pdu in (request, AMBIGUOUS_RESPONSE):
        events += feed_all(dec, rtu.encode(pdu))
        dec.gap()
        events += drain(dec)
    assert events == [request]
