"""What can go wrong on the virtual bus: the Faults settings, all seeded from VirtualBus(seed=)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Faults:
    """Faults applied to every byte on the line (the same for all receivers, as on a wire).

    ber: probability that each of a byte's 8 data bits is flipped.
    drop_rate: probability that a byte is lost altogether (a framing error at the receivers).
    noise_every_s / noise_bytes: every noise_every_s seconds, noise_bytes random bytes are driven
        onto the line at the baud rate; they garble whatever is on the line at the time.
    latency_ms: every device's receive latency, like a USB adapter's latency timer (FTDI: 16 ms):
        bytes are held from the first one into an empty buffer and delivered together latency_ms
        later. attach(name, latency_ms=...) overrides it per device.
    """

    ber: float = 0.0
    drop_rate: float = 0.0
    noise_every_s: float | None = None
    noise_bytes: int = 8
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("ber", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {value}")
        if self.noise_every_s is not None and self.noise_every_s <= 0:
            raise ValueError("noise_every_s must be positive")
        if self.noise_bytes < 0 or self.latency_ms < 0:
            raise ValueError("noise_bytes and latency_ms must not be negative")
