"""`firelane bus scan`: find the nodes on a bus quickly, and what is wrong with how they are set.

Two passes over a Master (installer/rtu_line.py):

1. Quick pass: one read of the identity block (0x0000, 6 registers: device type, firmware,
   node id, map version) per address, with a window derived from the baud rate (request and
   reply on the wire, t3.5 after each, the node's turnaround, the adapter's latency): about
   16 ms at 115200 baud, so 247 addresses take about 4 s. An address that answers is a
   candidate. One whose window heard anything else (garbage, or a reply from another unit
   that came late) makes itself and the address before it suspects, and a late reply names
   its own unit, so a node slower than the window is still found (after the last address the
   line is listened to for one more check window, for the last node's late reply).
2. Check pass: each candidate and suspect is read again (VERIFY_READS times, more when one
   read looks wrong) with a generous timeout, listening on after the first reply for a second
   one. Two nodes on one address answer the same request at about the same time: their
   replies collide (CRC errors, garbage) or, when one is slower, arrive one after the other,
   and which one wins varies. So an address is a conflict when it gave two different node
   ids, two replies to one request, or garbled replies in at least two reads; one garbled
   read among clean ones is noise, and is read again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.config import BusConfig, GatewayConfig, NodeConfig
from gateway.points import IDENTITY_READ, Identity, decode_identity
from installer.rtu_line import Exchange, Master, read_request, window_s
from protocol import names
from protocol import registers as r
from protocol.codes import ADDRESS_MAX

VERIFY_READS = 2  # reads per candidate in the check pass
MORE_READS = 3  # more reads when one of them looked wrong
VERIFY_TIMEOUT_S = 0.25  # a generous window for a slow node in the check pass
LISTEN_MIN_S = 0.05  # after a first reply, listen this long for a second one at least
UNCOMMISSIONED = r.default(r.ADDRESS)  # 247: a node with no config answers here
_IDENTITY_REPLY_BYTES = 5 + 2 * IDENTITY_READ[1]
_REQUEST_BYTES = 8


def quick_timeout_s(baud: int, latency_s: float) -> float:
    """The quick pass's window per address (see the module docstring)."""
    return window_s(baud, _REQUEST_BYTES, _IDENTITY_REPLY_BYTES, latency_s)


@dataclass
class Address:
    """What one address did across all reads."""

    address: int
    reads: int = 0
    answered: int = 0  # reads with a valid identity reply
    garbled: int = 0  # reads whose window had CRC errors or garbage
    doubles: int = 0  # reads with two or more replies
    exceptions: list[int] = field(default_factory=list)  # Modbus exception codes
    identities: list[Identity] = field(default_factory=list)
    late: int = 0  # replies that came after their window (a slow node)

    def add(self, ex: Exchange) -> None:
        self.reads += 1
        ok = False
        for pdu in ex.replies:
            if pdu.code:
                self.exceptions.append(pdu.code)
            elif len(pdu.values) == IDENTITY_READ[1]:
                self.identities.append(decode_identity(pdu.values))
                ok = True
        self.answered += ok
        self.garbled += ex.garbled > 0
        self.doubles += len(ex.replies) > 1

    @property
    def node_ids(self) -> list[int]:
        return sorted({i.node_id for i in self.identities})

    @property
    def present(self) -> bool:
        return bool(self.answered or self.exceptions or self.garbled or self.late)

    def conflict(self) -> str | None:
        """Why two nodes seem to answer at this address; None when nothing says so."""
        ids = self.node_ids
        if len(ids) > 1:
            shown = " and ".join(f"0x{i:08X}" for i in ids)
            return f"two nodes answer at address {self.address} (node ids {shown})"
        if self.doubles:
            return (
                f"two replies to one request at address {self.address} "
                f"({self.doubles} of {self.reads} reads): two nodes share it"
            )
        if self.garbled >= 2:
            if not self.answered:
                return (
                    f"something answers at address {self.address} but every reply is "
                    f"garbled ({self.garbled} of {self.reads} reads): probably two nodes "
                    "whose answers collide"
                )
            return (
                f"replies garbled in {self.garbled} of {self.reads} reads at address "
                f"{self.address}: probably two nodes on it (or a noisy line)"
            )
        return None

    def doubtful(self) -> bool:
        """One read looked wrong: read it some more before deciding."""
        return self.garbled == 1 or (self.answered == 0 and self.present)


@dataclass
class Found:
    """One address where something answers, for the table."""

    address: int
    identity: Identity | None
    node_ids: list[int]  # every node id that answered (two or more: a conflict)
    conflict: str | None
    problems: list[str]
    notes: list[str]


@dataclass
class ScanResult:
    first: int
    last: int
    baud: int
    timeout_s: float
    elapsed_s: float
    found: list[Found]
    problems: list[str]
    notes: list[str]
    transactions: int


def scan(
    master: Master,
    first: int = 1,
    last: int = ADDRESS_MAX,
    *,
    timeout_s: float | None = None,
    verify_timeout_s: float = VERIFY_TIMEOUT_S,
    progress: Callable[[int], None] | None = None,
) -> ScanResult:
    """Scan addresses first..last on master's line; see the module docstring."""
    if not 1 <= first <= last <= ADDRESS_MAX:
        raise ValueError(f"addresses {first}..{last}: need 1 <= from <= to <= {ADDRESS_MAX}")
    started = time.monotonic()
    quick = timeout_s or quick_timeout_s(master.baud, master.line.latency_s)
    seen: dict[int, Address] = {}
    suspects: set[int] = set()

    def note_late(units: Iterable[int]) -> None:
        for unit in units:
            if first <= unit <= last:
                seen.setdefault(unit, Address(unit)).late += 1
                suspects.add(unit)

    addr, count = IDENTITY_READ
    for a in range(first, last + 1):
        ex = master.transact(read_request(a, addr, count), quick)
        note_late(p.unit for p in master.stray + ex.late)
        if master.stray_garbled and a > first:  # garbage after the last window: from a - 1
            suspects.add(a - 1)
        master.stray.clear()
        master.stray_garbled = 0
        if ex.replies:
            seen.setdefault(a, Address(a)).add(ex)
        elif ex.garbled:  # collided replies here, or a late one from a - 1 cut short
            suspects.update(x for x in (a, a - 1) if first <= x)
        if progress is not None:
            progress(a)
    # A node slower than the window answers after it: while the next address is asked (its
    # reply names it), or after the last one, so listen for that before checking.
    tail = master.drain(verify_timeout_s)
    note_late(p.unit for p in master.stray + tail.late)
    if tail.garbled or master.stray_garbled:
        suspects.add(last)
    master.stray.clear()
    listen = max(LISTEN_MIN_S, 3 * quick)
    for a in sorted(set(seen) | suspects):
        entry = seen.setdefault(a, Address(a))
        for i in range(VERIFY_READS + MORE_READS):
            if i >= VERIFY_READS and not entry.doubtful():
                break
            ex = master.transact(read_request(a, addr, count), verify_timeout_s, listen_s=listen)
            entry.add(ex)
            note_late(p.unit for p in master.stray + ex.late if p.unit != a)
            master.stray.clear()
    found = [_found(e) for a, e in sorted(seen.items()) if e.present]
    problems = [p for f in found for p in ([f.conflict] if f.conflict else []) + f.problems]
    notes: list[str] = []
    noisy = sum(1 for e in seen.values() if e.garbled)
    if noisy > 2:
        notes.append(
            f"garbled replies at {noisy} addresses: the line may be noisy: check the A/B "
            "wiring, the 120 ohm terminations at both ends, and the baud rate and parity"
        )
    return ScanResult(
        first,
        last,
        master.baud,
        quick,
        time.monotonic() - started,
        found,
        problems,
        notes,
        master.transactions,
    )


def _found(e: Address) -> Found:
    conflict = e.conflict()
    problems: list[str] = []
    notes: list[str] = []
    identity = e.identities[0] if e.identities else None
    if identity is not None and not conflict:
        problem = identity.problem()
        if problem:
            problems.append(f"address {e.address}: {problem}")
    elif identity is None and not conflict:
        if e.exceptions:
            reason = names.EXCEPTIONS.get(e.exceptions[0], str(e.exceptions[0]))
            problems.append(
                f"address {e.address}: refuses to read the identity registers (exception "
                f"{e.exceptions[0]}, {reason}): not a Firelane node, or a very old firmware"
            )
        else:
            problems.append(
                f"address {e.address}: answered once, then no more: a loose connection, or a "
                "node restarting; check its wiring and scan again"
            )
    if e.address == UNCOMMISSIONED and identity is not None and not conflict:
        notes.append(
            f"address {UNCOMMISSIONED} is where a new, uncommissioned node answers: give it its "
            f"address with `firelane node set-address --from {UNCOMMISSIONED} --to N`"
        )
    if e.late and identity is not None:
        notes.append(f"address {e.address}: answers slowly (after the quick window)")
    return Found(e.address, identity, e.node_ids, conflict, problems, notes)


# Comparing with the gateway config.
class BusChoiceError(ValueError):
    """Which bus of the config the scan is for cannot be told."""


def pick_bus(cfg: GatewayConfig, port: str, name: str | None) -> tuple[BusConfig, str | None]:
    """The polled serial bus of cfg the scanned port belongs to, and a note when the choice is
    a guess. BusChoiceError when it cannot be told."""
    import os

    rtu = [b for b in cfg.buses if b.kind == "rtu"]
    if name is not None:
        for b in rtu:
            if b.name == name:
                return b, None
        known = ", ".join(b.name for b in rtu) or "none"
        raise BusChoiceError(f"--bus {name}: the config has no rtu bus of that name ({known})")
    real = os.path.realpath(port)
    same = [b for b in rtu if os.path.realpath(b.port) == real]
    if len(same) == 1:
        return same[0], None
    if len(rtu) == 1:
        b = rtu[0]
        return b, f"the config's bus {b.name!r} is on {b.port}, not {port}: compared with it"
    if not rtu:
        raise BusChoiceError("the config has no rtu (polled serial) bus to compare with")
    known = ", ".join(f"{b.name} ({b.port})" for b in rtu)
    raise BusChoiceError(f"which bus of the config is on {port}? give --bus NAME: {known}")


def compare(result: ScanResult, bus: BusConfig, nodes: Iterable[NodeConfig]) -> list[str]:
    """Problems between what answered and what the config expects on that bus."""
    answered = {f.address: f for f in result.found}
    problems: list[str] = []
    configured: dict[int, NodeConfig] = {}
    for n in nodes:
        if n.bus != bus.name or not result.first <= n.address <= result.last:
            continue
        configured[n.address] = n
        if n.address not in answered:
            problems.append(
                f"configured node {n.name} (house {n.house}, zone {n.zone}) at address "
                f"{n.address}: not found: check its power and wiring, and its address (a new "
                f"node answers at {UNCOMMISSIONED})"
            )
    for a, f in sorted(answered.items()):
        if a not in configured:
            ids = " and ".join(f"0x{n:08X}" for n in f.node_ids)
            who = f"node id{'s' * (len(f.node_ids) > 1)} {ids}" if ids else "a device"
            problems.append(
                f"address {a} ({who}) answers but is not in the gateway config (bus "
                f"{bus.name}): add a [[nodes]] entry for it, or give it a configured address"
            )
    return problems


def config_name(nodes: Iterable[NodeConfig], bus: BusConfig, address: int) -> str:
    for n in nodes:
        if n.bus == bus.name and n.address == address:
            return n.name
    return ""


def render(result: ScanResult, names_by_address: dict[int, str] | None = None) -> str:
    """The table and the problems, for the terminal."""
    rows = [("address", "node id", "firmware", "map", "type", "config", "status")]
    for f in result.found:
        i = f.identity
        status = "CONFLICT" if f.conflict else "problem" if f.problems else "ok"
        rows.append(
            (
                str(f.address),
                "/".join(f"0x{n:08X}" for n in f.node_ids) or "?",
                "?" if i is None else i.firmware,
                "?" if i is None else str(i.map_version),
                "?" if i is None else _device_type(i.device_type),
                (names_by_address or {}).get(f.address, "-" if names_by_address else ""),
                status,
            )
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    keep = [k for k in range(len(widths)) if k != 5 or names_by_address is not None]
    lines = ["  ".join(row[k].ljust(widths[k]) for k in keep).rstrip() for row in rows]
    if not result.found:
        lines = ["no node answered"]
    return "\n".join(lines)


def _device_type(code: int) -> str:
    return "node" if code == r.DEVICE_TYPE_NODE else f"type {code}"
