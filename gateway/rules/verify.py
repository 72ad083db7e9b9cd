"""Alarm verification (retard, then confirm; UL 864 style, as vendor manuals describe it).

An alarm from a source configured for verification is held, not forwarded:

- retard: for retard_s after it appeared (UL 864: at most 60 s, ../shared/DOMAIN.md). An
  alarm still present when the retard ends is confirmed then.
- confirm: otherwise a window of confirm_s (UL 864: at least 60 s) opens; the alarm present
  again at any moment in it is confirmed at once. A window that closes unseen drops the alarm
  (the caller counts it).
- coincidence (coincidence.py) may confirm a held alarm at any moment: confirm().

Verification adds up to retard_s of latency to a real fire, on top of the node's own
confirmation delays (docs/firmware.md), and so is off unless configured; the 10 s fire-alarm
budget (EN 54-2) holds only without it. Manual call points are never verified (spec.py
refuses them): a person pressed the button.
"""

from __future__ import annotations

# Phases.
IDLE = 0
RETARD = 1
CONFIRM = 2

# Outcomes of observe() and poll().
NOTHING = 0
CONFIRMED = 1
DROPPED = 2


class Verifier:
    """The verification of one source of one node."""

    __slots__ = ("confirm_s", "deadline", "phase", "present", "retard_s", "started", "value")

    def __init__(self, retard_s: float, confirm_s: float) -> None:
        if not (retard_s > 0 and confirm_s > 0):
            raise ValueError(f"need retard_s > 0 and confirm_s > 0, got {retard_s}, {confirm_s}")
        self.retard_s = retard_s
        self.confirm_s = confirm_s
        self.phase = IDLE
        self.present = False
        self.started = 0.0  # when the held alarm appeared
        self.deadline = 0.0  # end of the retard, then of the confirm window
        self.value: float | None = None  # the reading when it appeared, for the alert

    def start(self, at: float, value: float | None) -> None:
        """An alarm appeared (the caller checked phase == IDLE): hold it."""
        self.phase = RETARD
        self.present = True
        self.started = at
        self.deadline = at + self.retard_s
        self.value = value

    def observe(self, present: bool) -> int:
        """Whether the alarm is there now. CONFIRMED when it came back in the confirm window."""
        self.present = present
        if present and self.phase == CONFIRM:
            self.phase = IDLE
            return CONFIRMED
        return NOTHING

    def poll(self, at: float) -> int:
        """Let time pass to `at`, with the last observation held."""
        if self.phase == RETARD and at >= self.deadline:
            if self.present:
                self.phase = IDLE
                return CONFIRMED
            self.phase = CONFIRM
            self.deadline += self.confirm_s
        if self.phase == CONFIRM and at >= self.deadline:
            self.phase = IDLE
            return DROPPED
        return NOTHING

    def confirm(self) -> bool:
        """Confirm a held alarm from outside (coincidence). False when none is held."""
        if self.phase == IDLE:
            return False
        self.phase = IDLE
        return True
