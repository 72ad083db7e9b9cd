"""`firelane registers` and `firelane decode`: the register map and captured frames, readable."""

from __future__ import annotations

from typing import Any

from protocol import auth, cobs, master, names, push, registers, rtu
from protocol.errors import NEED_DATA, FrameError
from protocol.modbus import Pdu


def register_table() -> str:
    """The register map as aligned text, one register a line."""
    lines = [
        f"{'addr':<7}{'name':<23}{'acc':<4}{'type':<6}{'unit':<10}{'scale':<7}{'range':<14}default"
    ]
    for row in names.rows():
        d = names.describe(row[0])
        rng = f"{d['min']}..{d['max']}" if d["min"] is not None else ""
        if row[0] == registers.BAUD:
            rng = "/".join(str(b) for b in registers.BAUD_CHOICES)
        scale = "1" if d["scale"] == 1 else f"1/{d['scale']}"
        default = "" if d["default"] is None else str(d["default"])
        lines.append(
            f"0x{d['address']:04X} {d['name']:<23}{d['access']:<4}{d['type']:<6}"
            f"{d['unit']:<10}{scale:<7}{rng:<14}{default}"
        )
    return "\n".join(lines)


def describe_pdu(pdu: Pdu) -> str:
    kind = "response" if pdu.response else "request"
    if pdu.code:
        what = names.EXCEPTIONS.get(pdu.code, f"code {pdu.code}")
        return f"unit {pdu.unit} {kind}: exception {pdu.code} ({what}) to function {pdu.function}"
    skip = ("unit", "response")
    fields = {k: v for k, v in vars(pdu).items() if v not in (0, (), False) and k not in skip}
    return f"unit {pdu.unit} {kind}: " + ", ".join(f"{k}={v}" for k, v in fields.items())


class _Unchecked:
    """Stands in for a node's Signer when `decode` has no key: shows the frame, says so."""

    def verify(self, data: bytes, tag: bytes) -> bool:
        return True


class _EveryNode(dict):  # type: ignore[type-arg]
    """A signer table that hands the one signer `decode` has to whichever node a frame names."""

    def __init__(self, signer: Any) -> None:
        super().__init__()
        self._signer = signer

    def get(self, node: Any, default: Any = None) -> Any:
        return self._signer


def describe_frame(frame: push.Frame, checked: bool = True) -> str:
    what = names.PUSH_TYPES.get(frame.type, f"type {frame.type}")
    values: Any = names.fields(frame)
    if frame.type == push.MT_EVENT:
        code, source, detail, status, value, uptime = values
        values = (
            f"{names.EVENTS.get(code, code)} from {names.SOURCES.get(source, source)}, "
            f"detail {detail}, status {names.bits(names.STATUS_BITS, status)}, "
            f"value {value}, uptime {uptime} s"
        )
    signed = "unsigned" if frame.counter is None else f"signed, counter {frame.counter}"
    if frame.counter is not None and not checked:
        signed += ", tag NOT checked: no --key"
    return f"node {frame.node_id} {what} seq {frame.seq} ({signed}): {values}"


def decode_hex(text: str, key: bytes | None = None) -> list[str]:
    """Every frame in a hex dump (spaces allowed): Modbus RTU, or push frames if it holds 0x00
    delimiters that COBS-decode. Signed push frames are verified with key when given. Errors
    are reported in line, not raised."""
    data = bytes.fromhex("".join(text.split()))
    if b"\x00" in data and _looks_like_push(data):
        dec = push.PushDecoder(_EveryNode(auth.Signer(key) if key else _Unchecked()))
        return _drain_all(dec, data, lambda f: describe_frame(f, checked=key is not None))
    rdec = master.MasterDecoder(rtu.MONITOR)
    out = _drain_all(rdec, data, describe_pdu)
    rdec.gap()
    out += _drain_all(rdec, b"", describe_pdu)
    return out or ["no complete frame in the input"]


def _looks_like_push(data: bytes) -> bool:
    first = data.split(b"\x00", 1)[0]
    try:
        body = cobs.decode(first)
    except FrameError:
        return False
    return len(body) > 0 and body[0] == push.VERSION


def read_all(dec: Any, data: bytes = b"") -> list[Any]:
    """The read loop every user of a protocol/ decoder runs: feed what fits, take events until
    NEED_DATA, repeat until data is used up. Returns the messages and the FrameErrors raised,
    in order. An empty data just drains what the decoder holds (after gap(), say)."""
    out: list[Any] = []
    while True:
        data = data[dec.feed(data) :]
        while True:
            try:
                ev = dec.next_event()
            except FrameError as exc:
                out.append(exc)
                continue
            if ev is NEED_DATA:
                break
            out.append(ev)
        if not data:
            return out


def _drain_all(dec: Any, data: bytes, describe: Any) -> list[str]:
    return [
        f"error: {ev}" if isinstance(ev, FrameError) else describe(ev) for ev in read_all(dec, data)
    ]
