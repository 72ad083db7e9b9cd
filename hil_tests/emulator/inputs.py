"""What drives the emulated board's inputs, and the analog front end that turns it into volts.

The analog model is the inverse of the firmware's calibration (firmware/config.py, CALIBRATION;
overridable by `calibration` in the node's config.json), so a test says "3 %/m of smoke" or
"350 mA of leakage" and the firmware should read back what the test set.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import cast

RAIL_MV = 3300  # the ADC input cannot leave 0..3.3 V
MV_OPEN = 0  # an open input is pulled to ground
MV_SHORT = RAIL_MV  # a shorted input sits at the rail

SENSOR_STATES = ("ok", "open", "short")

# name: (default, minimum, maximum) for numbers; (default, None, None) for booleans;
# (default, choices, None) for enumerations.
_SPEC: dict[str, tuple[object, object, object]] = {
    "smoke_pct": (0.0, 0.0, 100.0),  # obscuration, %/m
    "smoke_drift_mv": (0.0, -3300.0, 3300.0),  # chamber baseline drift (dust, ageing)
    "smoke_input": ("ok", SENSOR_STATES, None),
    "leakage_ma": (0.0, 0.0, 10000.0),  # residual current, mA RMS
    "ct_open": (False, None, None),  # current transformer disconnected
    "mains_hz": (50.0, 40.0, 70.0),
    "temperature_c": (21.0, -60.0, 400.0),
    "temperature_input": ("ok", SENSOR_STATES, None),
    "supply_v": (12.0, 0.0, 60.0),
    "button": (False, None, None),  # manual call point pressed
    "hush": (False, None, None),  # hush button pressed
    "noise_mv": (0.0, 0.0, 200.0),  # Gaussian noise (standard deviation) on every analog input
}

DEFAULTS: dict[str, object] = {name: spec[0] for name, spec in _SPEC.items()}
NAMES = tuple(_SPEC)


class InputError(ValueError):
    """A control request named an unknown input or gave it a value it cannot take."""


def validate(changes: object) -> dict[str, object]:
    """The changes as a dict of checked values, or InputError naming the key and what it takes."""
    if not isinstance(changes, dict):
        raise InputError("'set' takes an object of inputs, e.g. {\"smoke_pct\": 3.0}")
    out: dict[str, object] = {}
    for key, value in changes.items():
        if key not in _SPEC:
            raise InputError(f"unknown input {key!r}; known inputs: {', '.join(NAMES)}")
        default, lo, hi = _SPEC[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise InputError(f"input {key!r}: {value!r} is not true or false")
            out[key] = value
        elif isinstance(default, str):
            choices = cast(tuple[str, ...], lo)
            if value not in choices:
                raise InputError(f"input {key!r}: {value!r} is not one of {', '.join(choices)}")
            out[key] = value
        else:
            low, high = cast(float, lo), cast(float, hi)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"input {key!r}: {value!r} is not a number")
            if not (math.isfinite(value) and low <= value <= high):
                raise InputError(f"input {key!r}: {value!r} is outside {low:g}..{high:g}")
            out[key] = float(value)
    return out


class Analog:
    """Millivolts at each analog input, from the inputs and the node's calibration."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def mv(
        self, role: str, inputs: Mapping[str, object], cal: Mapping[str, float], t_s: float
    ) -> float:
        """The voltage at the input called role (smoke, ct, temperature, supply) at time t_s."""
        if role == "smoke":
            mv = _sensor(
                inputs["smoke_input"],
                cal["smoke_clean_mv"]
                + _f(inputs["smoke_drift_mv"])
                + _f(inputs["smoke_pct"]) * cal["smoke_mv_per_pct"],
            )
        elif role == "ct":
            if inputs["ct_open"]:
                mv = float(MV_SHORT)  # the burden resistor is gone: the input floats to the rail
            else:
                peak = math.sqrt(2) * _f(inputs["leakage_ma"]) * cal["ct_uv_per_ma"] / 1000
                phase = 2 * math.pi * _f(inputs["mains_hz"]) * t_s
                mv = cal["ct_bias_mv"] + peak * math.sin(phase)
        elif role == "temperature":
            mv = _sensor(
                inputs["temperature_input"],
                cal["temp_offset_mv"] + _f(inputs["temperature_c"]) * cal["temp_mv_per_c"],
            )
        elif role == "supply":
            mv = _f(inputs["supply_v"]) * 1000 / cal["supply_divider"]
        else:
            return 0.0  # an ADC on a pin nothing is wired to
        noise = _f(inputs["noise_mv"])
        if noise:
            mv += self._rng.gauss(0.0, noise)
        return min(max(mv, 0.0), float(RAIL_MV))


def _f(value: object) -> float:
    return cast(float, value)  # validate() stored every number as a float


def _sensor(state: object, mv: float) -> float:
    if state == "open":
        return float(MV_OPEN)
    if state == "short":
        return float(MV_SHORT)
    return mv
