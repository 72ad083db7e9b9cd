"""`firelane demo --tour`: a tour of the shared wire protocol, with no process, port or broker.

A poll of a node's status block over a bus carrying other traffic and noise, a signed alarm
pushed by a node and acknowledged, and the forged and replayed frames that must be refused. It
checks every outcome and exits 1 if any is wrong. (The live demo is demo/live.py.)
"""

from __future__ import annotations

import random
from struct import pack

from gateway.inspect import describe_frame, describe_pdu, read_all
from protocol import auth, codes, master, names, push, registers, rtu
from protocol.errors import FrameError
from protocol.modbus import Pdu

NODE = 12
KEY = b"demo-key-node-12"


def _show(label: str, data: bytes) -> None:
    print(f"  {label:<28}{data.hex(' ')}")


def poll_over_a_noisy_bus(rng: random.Random) -> bool:
    print("1. The gateway polls node 12's status block over a bus shared with node 5 and noise")
    request = Pdu(NODE, codes.FC_READ_HOLDING, address=registers.STATUS, count=8)
    status = (
        registers.ST_ALARM | registers.ST_SOUNDING,
        1 << codes.SRC_SMOKE,
        0,
        7,
        312,
        40,
        231,
        12050,
    )
    response = Pdu(NODE, codes.FC_READ_HOLDING, True, values=status)
    noise = bytes(rng.randrange(248, 256) for _ in range(9))
    line = b"".join(
        [
            rtu.encode(Pdu(5, codes.FC_READ_HOLDING, address=registers.STATUS, count=8)),
            rtu.encode(Pdu(5, codes.FC_READ_HOLDING, True, values=(0,) * 8)),
            noise,
            rtu.encode(request),
            rtu.encode(response),
        ]
    )
    _show("bytes on the line:", line[:24])
    _show("  ...", line[24:])
    node = rtu.RtuDecoder(rtu.SERVER, NODE)
    gateway = master.MasterDecoder()
    heard = [e for e in read_all(node, line) if isinstance(e, Pdu)]
    got = [e for e in read_all(gateway, line) if isinstance(e, Pdu)]
    print(f"  node 12 hears:  {'; '.join(describe_pdu(p) for p in heard)}")
    print(f"  gateway hears:  {'; '.join(describe_pdu(p) for p in got)}")
    print(f"  node 12 skipped {node.skipped} frames for others and {node.discarded} noise bytes")
    values = got[-1].values if got else ()
    shown = {
        "status": names.bits(names.STATUS_BITS, values[0]),
        "smoke %/m": names.physical(registers.SMOKE, values, 4),
        "temperature degC": names.physical(registers.TEMPERATURE, values, 6),
        "supply V": names.physical(registers.SUPPLY, values, 7),
    } if values else {}  # fmt: skip
    print(f"  decoded:        {shown}")
    return heard == [request] and got[-1:] == [response] and node.discarded == len(noise)


def push_an_alarm() -> bool:
    print("2. Push mode: node 12 sends a signed smoke alarm; the gateway checks and ACKs it")
    signer = auth.Signer(KEY)
    keys = {NODE: signer}
    payload = pack(
        push.EVENT_FORMAT, codes.EV_ALARM, codes.SRC_SMOKE, 0, registers.ST_ALARM, 312, 86400
    )
    alarm = push.encode(push.MT_EVENT, NODE, 41, payload, signer, 1001)
    _show("alarm frame:", alarm)
    gateway = push.PushDecoder(keys)
    received = [f for f in read_all(gateway, alarm) if isinstance(f, push.Frame)]
    for frame in received:
        print(f"  gateway got:    {describe_frame(frame)}")
    ack = push.encode(push.MT_ACK, NODE, 41, b"\x00\x29", signer, 77)
    _show("ACK frame:", ack)
    node = push.PushDecoder(keys)
    acked = [f for f in read_all(node, ack) if isinstance(f, push.Frame)]
    print(f"  node got:       {describe_frame(acked[0]) if acked else 'nothing'}")

    print("3. What must be refused")
    forged_body = bytearray(alarm)
    forged_body[12] ^= 0x04  # flip a bit of the payload, keep a valid-looking frame
    attempts = {
        "replay of the same frame": alarm,
        "frame signed with a guessed key": push.encode(
            push.MT_EVENT, NODE, 42, payload, auth.Signer(b"guess"), 1002
        ),
        "unsigned frame from a keyed node": push.encode(push.MT_EVENT, NODE, 43, payload),
        "bit flipped on the line": bytes(forged_body),
    }
    refused = 0
    for label, data in attempts.items():
        events = read_all(gateway, data)
        verdict = ", ".join(type(e).__name__ + f": {e}" for e in events) or "accepted!"
        refused += all(isinstance(e, FrameError) for e in events) and bool(events)
        print(f"  {label:<34}{verdict}")
    return len(received) == 1 and len(acked) == 1 and refused == len(attempts)


def run_demo(seed: int = 2026) -> int:
    rng = random.Random(seed)
    print("Firelane demo --tour: the shared wire protocol\n")
    results = [poll_over_a_noisy_bus(rng)]
    print()
    results.append(push_an_alarm())
    print()
    if all(results):
        print("demo: every check passed")
        return 0
    print("demo: a check FAILED (see above)")
    return 1
