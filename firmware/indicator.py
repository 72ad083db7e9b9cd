"""What the LED and buzzer do in each node state: 16 slots of 250 ms, a 4 s frame.

The alarm sound is the temporal-three evacuation signal of ISO 8201 (three 0.5 s tones with
0.5 s gaps, then 1.5 s of silence). Each pattern is (led, buzzer, every): slot masks, most
significant bit first, played in one frame out of `every`, the other frames dark and quiet.
docs/firmware.md has the same table for installers.
"""

from node import ALARM, FAULT, NORMAL, PRE_ALARM, SILENCED, TEST

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


SLOT_MS = const(250)
_SLOTS = const(16)
_TEMPORAL_3 = const(0b1100110011000000)

# state -> (led mask, buzzer mask, every n frames)
PATTERNS = {
    NORMAL: (0b1000000000000000, 0, 8),  # one blink every 32 s: alive
    FAULT: (0b1010000000000000, 0b1000000000000000, 1),  # double blink; chirp, see FAULT_EVERY
    PRE_ALARM: (0b1100110011001100, 0b1000000000000000, 1),  # 1 Hz blink, chirp, see PRE_EVERY
    SILENCED: (0b1010101010101010, 0, 1),  # 2 Hz blink, quiet
    ALARM: (0xFFFF, _TEMPORAL_3, 1),  # steady, temporal-three
    TEST: (0xFFFF, 0b1000100010001000, 1),  # steady, one beep a second
}
IDENTIFY = (0b1010100000000000, 0)  # three quick flashes every 4 s
FAULT_EVERY = const(12)  # the fault chirp sounds once in 12 frames: every 48 s
PRE_EVERY = const(8)  # the pre-alarm chirp: every 32 s


def outputs(state: int, slot: int, quiet: bool, identify: bool) -> "tuple[int, int]":
    """(led, buzzer) for a slot counter (ticks // SLOT_MS). quiet: hushed (no buzzer)."""
    frame, i = divmod(slot, _SLOTS)
    bit = 1 << (_SLOTS - 1 - i)
    led_mask, buzz_mask, every = PATTERNS[state]
    if identify and state < PRE_ALARM:
        led_mask, every = IDENTIFY[0], 1
    led = 1 if led_mask & bit and frame % every == 0 else 0
    chirp_every = FAULT_EVERY if state == FAULT else PRE_EVERY if state == PRE_ALARM else 1
    buzz = 1 if buzz_mask & bit and frame % chirp_every == 0 and not quiet else 0
    return led, buzz
