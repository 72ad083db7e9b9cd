"""`firelane node build` and `firelane node flash` on the command line."""

from __future__ import annotations

import argparse


def register(node_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the build and flash commands; each sets `func` to its handler."""
