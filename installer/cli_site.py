"""`firelane bus scan`, `firelane node set-address` and `firelane walktest` on the command line."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def register(sub: Sub, node_sub: Sub, bus_sub: Sub) -> None:
    """Add the scan, set-address and walktest commands; each sets `func` to its handler."""
