"""protocol/ throughput on CPython: CRC bytes/s, RTU and push frames decoded and encoded per s.

Each figure is the best of several timed repetitions (the least disturbed by other load), on
fixed inputs so runs compare. Run with `make bench` or `python -m bench.protocol_bench`.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from struct import pack

from gateway.bus_timing import ceiling_per_s
from gateway.inspect import read_all
from protocol import auth, codes, master, push, registers, rtu
from protocol.crc import crc16
from protocol.modbus import Pdu


def best_rate(fn: Callable[[], int], repeat: int = 5, min_time: float = 0.2) -> float:
    """Items per second: fn() does a batch and returns its size; best of `repeat` runs."""
    best = 0.0
    for _ in range(repeat):
        items, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_time:
            items += fn()
        best = max(best, items / elapsed)
    return best


def crc_rate() -> float:
    data = bytes(range(256)) * 16

    def batch() -> int:
        crc16(data)
        return len(data)

    return best_rate(batch)


def rtu_decode_rate(pdu: Pdu, role: int) -> float:
    frame = rtu.encode(pdu)
    stream = frame * 32  # a burst of frames, as a busy bus delivers them

    def batch() -> int:
        dec = rtu.RtuDecoder(role, pdu.unit) if role == rtu.SERVER else master.MasterDecoder(role)
        return len(read_all(dec, stream))

    return best_rate(batch)


def rtu_encode_rate(pdu: Pdu) -> float:
    def batch() -> int:
        for _ in range(100):
            rtu.encode(pdu)
        return 100

    return best_rate(batch)


def push_decode_rate(signed: bool) -> float:
    signer = auth.Signer(b"bench-key-0123456789") if signed else None
    payload = pack(
        push.EVENT_FORMAT, codes.EV_ALARM, codes.SRC_SMOKE, 0, registers.ST_ALARM, 300, 1
    )
    frames = b"".join(push.encode(push.MT_EVENT, 7, i, payload, signer, i) for i in range(32))

    def batch() -> int:
        return len(read_all(push.PushDecoder({7: signer} if signer else None), frames))

    return best_rate(batch)


def main() -> None:
    print(f"protocol/ on {platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}")  # fmt: skip
    print(f"  CRC-16/MODBUS                          {crc_rate() / 1e6:8.2f} MB/s")
    status_read = Pdu(17, codes.FC_READ_HOLDING, address=registers.STATUS, count=8)
    status_resp = Pdu(17, codes.FC_READ_HOLDING, True, values=range(8))
    big_resp = Pdu(17, codes.FC_READ_HOLDING, True, values=range(125))
    rows = [
        ("RTU decode, node: 8-register read request", rtu_decode_rate(status_read, rtu.SERVER)),
        ("RTU decode, gateway: 8-register response", rtu_decode_rate(status_resp, rtu.CLIENT)),
        ("RTU decode, gateway: 125-register response", rtu_decode_rate(big_resp, rtu.CLIENT)),
        ("RTU encode: 8-register response", rtu_encode_rate(status_resp)),
        ("push decode: event, unsigned", push_decode_rate(False)),
        ("push decode: event, HMAC + replay check", push_decode_rate(True)),
    ]
    for label, rate in rows:
        print(f"  {label:<45}{rate:10,.0f} frames/s")
    # The bus ceiling these must beat (DOMAIN.md): 159.5 eight-register reads/s at 115200 baud.
    ceiling = ceiling_per_s(115200, 8)
    print(f"  (wire ceiling at 115200 baud, 8 registers: {ceiling:.1f} transactions/s)")


if __name__ == "__main__":
    main()
