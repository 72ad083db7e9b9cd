"""Push framing battery: COBS, frames with and without authentication, replay, resync."""

from __future__ import annotations

import hashlib
import hmac
from struct import pack
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.inspect import read_all
from protocol import auth, cobs, codes, names, push, registers
from protocol.auth import AuthError, ReplayError
from protocol.errors import NEED_DATA, CRCError, FrameError

KEY = b"node-7-secret-key"
NODE = 7
SIGNER = auth.Signer(KEY)

EVENT = pack(push.EVENT_FORMAT, codes.EV_ALARM, codes.SRC_SMOKE, 0, registers.ST_ALARM, 312, 86400)
HEARTBEAT = pack(push.HEARTBEAT_FORMAT, registers.ST_PRE_ALARM, 2, 0, 41, 180, 250, 215, 12000, 99)
MESSAGES = {
    "event": (push.MT_EVENT, EVENT),
    "heartbeat": (push.MT_HEARTBEAT, HEARTBEAT),
    "ack": (push.MT_ACK, b"\x00\x05"),
    "nak": (push.MT_NAK, b"\x00\x05" + bytes([push.NAK_BUSY])),
}


def frame_key(f: push.Frame) -> tuple[Any, ...]:
    return (f.type, f.node_id, f.seq, f.payload, f.counter)


def feed_all(dec: push.PushDecoder, data: bytes) -> list[Any]:
    """Frames as key tuples and errors as their classes, through the standard read loop."""
    return [type(e) if isinstance(e, FrameError) else frame_key(e) for e in read_all(dec, data)]


def signed_decoder(last: dict[int, int] | None = None) -> push.PushDecoder:
    return push.PushDecoder({NODE: SIGNER}, last)


CASES = [
    (f"{name}-{'signed' if signed else 'plain'}", mtype, payload, signed)
    for name, (mtype, payload) in MESSAGES.items()
    for signed in (False, True)
]


def encode_case(
    mtype: int, payload: bytes, signed: bool, seq: int = 5, counter: int = 100
) -> bytes:
    return push.encode(mtype, NODE, seq, payload, SIGNER if signed else None, counter)


def decoder_for(signed: bool) -> push.PushDecoder:
    return signed_decoder() if signed else push.PushDecoder()


@pytest.mark.parametrize(("name", "mtype", "payload", "signed"), CASES, ids=[c[0] for c in CASES])
def test_round_trip(name: str, mtype: int, payload: bytes, signed: bool) -> None:
    wire = encode_case(mtype, payload, signed)
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    expected = (mtype, NODE, 5, payload, 100 if signed else None)
    assert feed_all(decoder_for(signed), wire) == [expected]


@pytest.mark.parametrize(("name", "mtype", "payload", "signed"), CASES, ids=[c[0] for c in CASES])
def test_every_strict_prefix_is_need_data(
    name: str, mtype: int, payload: bytes, signed: bool
) -> None:
    wire = encode_case(mtype, payload, signed)
    for cut in range(len(wire)):
        dec = decoder_for(signed)
        dec.feed(wire[:cut])
        assert dec.next_event() is NEED_DATA


@pytest.mark.parametrize(("name", "mtype", "payload", "signed"), CASES, ids=[c[0] for c in CASES])
def test_byte_at_a_time_equals_one_feed(
    name: str, mtype: int, payload: bytes, signed: bool
) -> None:
    wire = encode_case(mtype, payload, signed, counter=1) + encode_case(
        mtype, payload, signed, counter=2
    )
    dec = decoder_for(signed)
    events: list[Any] = []
    for i in range(len(wire)):
        events += feed_all(dec, wire[i : i + 1])
    assert events == feed_all(decoder_for(signed), wire)
    assert len(events) == 2


def corrupt(wire: bytes, index: int) -> bytes:
    """Flip a bit inside the COBS-decoded body and re-encode, so only the named check fails."""
    body = bytearray(cobs.decode(wire[:-1]))
    body[index] ^= 0x01
    return cobs.encode(bytes(body)) + b"\x00"


def reframe(body: bytes) -> bytes:
    from protocol.crc import append_crc

    return cobs.encode(append_crc(body)) + b"\x00"


SIGNED_EVENT = encode_case(push.MT_EVENT, EVENT, True)
BODY = cobs.decode(SIGNED_EVENT[:-1])[:-2]  # without its CRC
MALFORMED: list[tuple[str, bytes, Any]] = [
    ("noise-bit-flip", corrupt(SIGNED_EVENT, 12), CRCError),
    ("forged-payload", reframe(BODY[:12] + bytes([BODY[12] ^ 1]) + BODY[13:]), AuthError),
    ("forged-tag", reframe(BODY[:-1] + bytes([BODY[-1] ^ 1])), AuthError),
    ("unsigned-from-keyed-node", encode_case(push.MT_EVENT, EVENT, False), AuthError),
    (
        "signed-by-unknown-node",
        push.encode(push.MT_EVENT, 99, 1, EVENT, SIGNER, 1),
        AuthError,
    ),
    ("wrong-version", reframe(bytes([2]) + BODY[1:]), FrameError),
    ("short-body", reframe(b"\x01\x01\x00"), FrameError),
    ("bad-cobs", b"\x05\x01\x02\x00", FrameError),
    ("payload-length-wrong", reframe(BODY[:9] + b"\x01" + BODY[9 + 11 :]), AuthError),
    ("too-long", b"\x01" * 200 + b"\x00", FrameError),
]


@pytest.mark.parametrize(("name", "wire", "error"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed(name: str, wire: bytes, error: type[Exception]) -> None:
    dec = signed_decoder()
    assert feed_all(dec, wire) == [error]
    # Back in step at the next delimiter.
    good = encode_case(push.MT_ACK, b"\x00\x01", True, counter=500)
    assert feed_all(dec, good) == [(push.MT_ACK, NODE, 5, b"\x00\x01", 500)]


def test_unsigned_payload_length_is_checked() -> None:
    wire = reframe(bytes([1, push.MT_EVENT, 0, 0, 0, 0, 1, 0, 1]) + EVENT[:-1])
    assert feed_all(push.PushDecoder(), wire) == [FrameError]


def test_replay_rejected_and_retransmission_with_new_counter_accepted() -> None:
    dec = signed_decoder()
    first = encode_case(push.MT_EVENT, EVENT, True, seq=9, counter=41)
    retry = encode_case(push.MT_EVENT, EVENT, True, seq=9, counter=42)
    events = feed_all(dec, first + first + retry)
    assert events == [
        (push.MT_EVENT, NODE, 9, EVENT, 41),
        ReplayError,
        (push.MT_EVENT, NODE, 9, EVENT, 42),
    ]
    assert dec.last == {NODE: 42}
    # A gateway that restarts with the persisted counters still refuses the old frame.
    assert feed_all(signed_decoder(dict(dec.last)), retry) == [ReplayError]


def test_two_endpoints_back_to_back() -> None:
    """Node pushes an alarm, gateway ACKs it signed; a forged ACK does not fool the node."""
    gateway = signed_decoder()
    node = signed_decoder()  # the node checks the gateway's frames with its own key
    uplink = push.encode(push.MT_EVENT, NODE, 1, EVENT, SIGNER, 1)
    (got,) = feed_all(gateway, uplink)
    assert names.fields(push.Frame(*got)) == (
        codes.EV_ALARM,
        codes.SRC_SMOKE,
        0,
        registers.ST_ALARM,
        312,
        86400,
    )
    ack = push.encode(push.MT_ACK, NODE, 1, b"\x00\x01", SIGNER, 1)
    assert feed_all(node, ack) == [(push.MT_ACK, NODE, 1, b"\x00\x01", 1)]
    forged = push.encode(push.MT_ACK, NODE, 2, b"\x00\x02", auth.Signer(b"guess"), 2)
    assert feed_all(node, forged) == [AuthError]


def test_fields_by_type() -> None:
    frames = {
        name: push.Frame(mtype, NODE, 1, payload) for name, (mtype, payload) in MESSAGES.items()
    }
    assert names.fields(frames["heartbeat"]) == (
        registers.ST_PRE_ALARM,
        2,
        0,
        41,
        180,
        250,
        215,
        12000,
        99,
    )
    assert names.fields(frames["ack"]) == (5,)
    assert names.fields(frames["nak"]) == (5, push.NAK_BUSY)


def test_encode_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        push.encode(push.MT_EVENT, NODE, 1, EVENT[:-1])
    with pytest.raises(ValueError):
        push.encode(99, NODE, 1, EVENT)
    with pytest.raises(ValueError):
        push.encode(push.MT_ACK, NODE, 0x10000, b"\x00\x01")
    with pytest.raises(ValueError):
        push.encode(push.MT_ACK, NODE, 1, b"\x00\x01", SIGNER, -1)
    with pytest.raises(ValueError):
        auth.Signer(b"")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_property_cobs_round_trip(data: bytes) -> None:
    encoded = cobs.encode(data)
    assert b"\x00" not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs.decode(encoded) == data


def test_cobs_known_vectors() -> None:
    # From the COBS paper's examples (Cheshire & Baker 1999) and the 254-byte block boundary.
    assert cobs.encode(b"") == b"\x01"
    assert cobs.encode(b"\x00") == b"\x01\x01"
    assert cobs.encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs.encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"
    block = bytes(range(1, 255))
    assert cobs.encode(block) == b"\xff" + block + b"\x01"


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=100), st.binary(max_size=300))
def test_property_hmac_matches_python(key: bytes, data: bytes) -> None:
    assert auth.Signer(key).mac(data) == hmac.new(key, data, hashlib.sha256).digest()


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=80).filter(lambda b: b"\x00" not in b),
    st.sampled_from(sorted(MESSAGES)),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
)
def test_property_resync_after_garbage(garbage: bytes, name: str, seq: int, counter: int) -> None:
    mtype, payload = MESSAGES[name]
    wire = push.encode(mtype, NODE, seq, payload, SIGNER, counter)
    events = feed_all(signed_decoder(), garbage + b"\x00" + wire)
    assert events[-1] == (mtype, NODE, seq, payload, counter)
    assert all(isinstance(e, type) for e in events[:-1])  # garbage gives errors, not frames
