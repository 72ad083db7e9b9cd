"""Coincidence: two different nodes of one group (a house, or a zone) alarming within window_s
confirm each other, so a held (verifying) alarm goes out at once when a neighbour alarms too.

Nodes and groups are small integers fixed when the rules are compiled. A node with no group
(an empty house or zone name) never coincides: "no house" is not a place.
"""

from __future__ import annotations

from collections.abc import Sequence


class Coincidence:
    """note() every alarm (held or forwarded); it says whether another member of the node's
    group alarmed within the window."""

    __slots__ = ("_last", "_members", "_of", "window_s")

    def __init__(self, window_s: float, groups: Sequence[int]) -> None:
        """groups[i]: the group of node i, or -1 for none."""
        if not window_s > 0:
            raise ValueError(f"need window_s > 0, got {window_s}")
        self.window_s = window_s
        self._of = tuple(groups)
        members: dict[int, list[int]] = {}
        for node, group in enumerate(groups):
            if group >= 0:
                members.setdefault(group, []).append(node)
        self._members = {g: tuple(m) for g, m in members.items()}
        self._last: list[float | None] = [None] * len(groups)  # each node's latest alarm

    def members(self, node: int) -> tuple[int, ...]:
        """The nodes of node's group, itself included, in compile order."""
        group = self._of[node]
        return self._members[group] if group >= 0 else ()

    def note(self, node: int, at: float) -> bool:
        """Node alarmed at `at`. True when another node of its group alarmed within window_s."""
        last = self._last
        last[node] = at
        since = at - self.window_s
        for other in self.members(node):
            t = last[other]
            if other != node and t is not None and t >= since:
                return True
        return False
