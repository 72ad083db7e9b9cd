"""A virtual RS-485 bus made of pseudo-terminals, with seeded fault injection."""

from hil_tests.bus.faults import Faults
from hil_tests.bus.virtual_bus import VirtualBus

__all__ = ["Faults", "VirtualBus"]
