"""`firelane node set-address`: move a node to another Modbus address over the bus.

How the node takes it (firmware/regmap.py, firmware/slave.py): a write of ADDRESS (0x0040,
FC06) is range-checked (1..247, exception 03 otherwise; a broadcast may never change it), saved
to config.json *before* the reply, and applied *after* the reply has gone out, so the reply
still comes from the old address and the node keeps the new one across restarts. A flash that
cannot be written is exception 04 and the address stays as it was.

So: read the node at the old address (its node id, and that only one node answers there),
make sure nothing answers at the new one, write, then read the identity back at the new address
and compare the node id. Every refusal says what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.points import IDENTITY_READ, Identity
from installer.rtu_line import Exchange, Master, read_request, write_request
from installer.scan import VERIFY_TIMEOUT_S, Address
from protocol import codes as c
from protocol import names
from protocol import registers as r
from protocol.codes import ADDRESS_MAX

PROBE_READS = 3
CONFIRM_READS = 5  # the node switches right after its reply; give it a few tries


class AddressError(Exception):
    """The move was refused or failed; the message says why and what to do. `code` is the
    command's exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Moved:
    node_id: int
    old: int
    new: int
    identity: Identity


def check_addresses(old: int, new: int) -> None:
    """AddressError (status 2) for addresses no node can have."""
    for flag, value in (("--from", old), ("--to", new)):
        if not 1 <= value <= ADDRESS_MAX:
            raise AddressError(
                f"{flag} {value}: a node address is 1..{ADDRESS_MAX} (0 is broadcast)", 2
            )
    if old == new:
        raise AddressError(f"--from and --to are both {old}: nothing to change", 2)


def probe(master: Master, address: int, reads: int = PROBE_READS) -> Address:
    """Read the identity at address a few times, listening for a second reply."""
    entry = Address(address)
    addr, count = IDENTITY_READ
    for _ in range(reads):
        entry.add(
            master.transact(read_request(address, addr, count), VERIFY_TIMEOUT_S, listen_s=0.05)
        )
        if entry.answered and entry.conflict() is None and entry.reads >= 2:
            break
        if not entry.present and entry.reads >= 2:
            break
    return entry


def set_address(master: Master, old: int, new: int, *, scan_hint: str) -> Moved:
    """Move the node at `old` to `new`; Moved once it answers there with the same node id.
    AddressError otherwise. scan_hint is the scan command line to suggest."""
    check_addresses(old, new)
    here = probe(master, old)
    conflict = here.conflict()
    if conflict:
        raise AddressError(
            f"{conflict}: a write would move all of them; power down or disconnect all but "
            "one, then try again"
        )
    if not here.identities:
        why = (
            f"it refuses to read its identity (exception {here.exceptions[0]})"
            if here.exceptions
            else "nothing answers there"
        )
        raise AddressError(
            f"no Firelane node at address {old}: {why}. Check the node's power and the A/B "
            f"wiring, and find its address with `{scan_hint}` (a new node answers at "
            f"{r.default(r.ADDRESS)})"
        )
    identity = here.identities[0]
    taken = probe(master, new, reads=2)
    if taken.present:
        who = (
            f"node id 0x{taken.identities[0].node_id:08X}"
            if taken.identities
            else "a device (its reply was garbled)"
        )
        raise AddressError(
            f"address {new} is already taken by {who}: choose a free address (see "
            f"`{scan_hint}`), or move that node first"
        )
    ex = master.transact(write_request(old, r.ADDRESS, new), VERIFY_TIMEOUT_S)
    answered = _check_write(ex, old, new)
    there = probe(master, new, reads=CONFIRM_READS)
    if identity.node_id in {i.node_id for i in there.identities}:
        return Moved(identity.node_id, old, new, there.identities[-1])
    still = probe(master, old, reads=2)
    nid = f"0x{identity.node_id:08X}"
    if identity.node_id in {i.node_id for i in still.identities}:
        raise AddressError(
            f"node {nid} still answers at address {old}: it did not take address {new}. "
            "Check that it runs Firelane firmware that allows address changes, then try again"
        )
    lost = "" if answered else " (its reply to the write was lost)"
    raise AddressError(
        f"node {nid} no longer answers at {old} and does not answer at {new}{lost}. It may "
        f"still be restarting, or answer at another speed: wait a few seconds and run "
        f"`{scan_hint}`; if it is not found, power-cycle it and scan again"
    )


def _check_write(ex: Exchange, old: int, new: int) -> bool:
    """Whether the node acknowledged the write; AddressError when it refused it."""
    for pdu in ex.replies:
        if pdu.code:
            reason = names.EXCEPTIONS.get(pdu.code, str(pdu.code))
            if pdu.code == c.EX_DEVICE_FAILURE:
                raise AddressError(
                    f"the node at {old} could not save the new address (exception 4, "
                    f"{reason}: its flash is full or failing): the address is unchanged; "
                    "reflash the node with `firelane node flash`"
                )
            raise AddressError(
                f"the node at {old} refused address {new} (exception {pdu.code}, {reason}): "
                "the address is unchanged"
            )
        if pdu.address == r.ADDRESS and pdu.value == new:
            return True
    return False
