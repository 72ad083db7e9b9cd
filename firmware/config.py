"""The node's configuration: JSON on flash, validated by one function, written atomically.

config.json holds settings in their units ("leakage_alarm_ma": 300), a pin map and the analog
calibration. Every setting that is also a Modbus register (0x0040..0x004C) is checked against
that register's limits in protocol/registers.py, so the map and the file cannot disagree; in
memory those settings are kept as raw register words, which is what the Modbus link serves.

Safe defaults: a node with no config.json answers at address 247, 19200 baud, polled, with the
standard thresholds. A config.json that fails validation is not used; the node keeps only the
link settings that are valid on their own (so the gateway can still reach it), uses defaults for
the rest, and reports FAULT_CONFIG with the error message kept in Config.error.

The checks themselves are in schema.py, which only load() needs: it is imported for the boot
and dropped from sys.modules afterwards, so its bytecode does not stay on the heap.
"""

import json
import os

from protocol import registers as r

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


PATH = "config.json"
_TMP = "config.tmp"

# Settings that are registers: JSON key, register. The key's unit is the register's unit;
# the raw word is value * scale (registers.TABLE). baud and link_mode are spelled out.
SETTINGS = (
    ("address", r.ADDRESS),
    ("baud", r.BAUD),
    ("link_mode", r.LINK_MODE),
    ("smoke_alarm_pct_m", r.SMOKE_ALARM),
    ("smoke_pre_alarm_pct_m", r.SMOKE_PRE_ALARM),
    ("leakage_alarm_ma", r.LEAKAGE_ALARM),
    ("leakage_pre_alarm_ma", r.LEAKAGE_PRE_ALARM),
    ("leakage_alarm_delay_s", r.LEAKAGE_ALARM_DELAY),
    ("leakage_release_delay_s", r.LEAKAGE_RELEASE_DELAY),
    ("temp_fixed_c", r.TEMP_FIXED),
    ("temp_rate_c_min", r.TEMP_RATE),
    ("supply_low_v", r.SUPPLY_LOW),
    ("heartbeat_s", r.HEARTBEAT),
)
_LINK_SETTINGS = ("address", "baud", "link_mode", "node_id", "key")
LINK_MODES = ("poll", "push")  # index = registers.LINK_POLLED / LINK_PUSH

# ESP32 GPIO numbers. Analog inputs must be on ADC1 (GPIO 32-39), which works alongside the
# radio; GPIO 34-39 are input-only, so nothing that drives a line may sit there.
PINS = {
    "uart_tx": 17,
    "uart_rx": 16,
    "de": 4,  # RS-485 transceiver DE and /RE tied together: high to transmit
    "smoke": 34,
    "ct": 35,
    "temperature": 32,
    "supply": 33,
    "button": 25,  # manual call point, to ground, internal pull-up
    "hush": 26,  # hush (silence) button, to ground; -1 when not fitted
    "led": 2,
    "buzzer": 27,
}
# Analog front end (docs/firmware.md, "Inputs"): name, default, minimum, maximum.
CALIBRATION = (
    ("smoke_clean_mv", 400, 100, 1500),  # chamber output in clean air, factory baseline
    ("smoke_mv_per_pct", 50, 5, 500),  # chamber output per %/m obscuration
    ("ct_bias_mv", 1250, 500, 2000),  # DC bias of the current transformer input
    ("ct_uv_per_ma", 800, 50, 5000),  # CT output, uV RMS per mA residual current
    ("temp_offset_mv", 500, 0, 1000),  # temperature sensor output at 0 degC
    ("temp_mv_per_c", 10, 1, 100),
    ("supply_divider", 11, 2, 50),  # supply = ADC voltage x divider
)


class Config:
    """Validated settings. raw maps register address to its word; error is None or why the
    file on flash was refused (the node then runs on what it could keep)."""

    def __init__(self) -> None:
        self.raw = {}  # type: dict[int, int]
        for _, reg in SETTINGS:
            self.raw[reg] = r.default(reg)
        self.pins = dict(PINS)
        self.cal = {}  # type: dict[str, int | float]
        for name, value, _, _ in CALIBRATION:
            self.cal[name] = value
        self.node_id = -1  # -1: derived from the chip's unique id
        self.key = b""  # push-mode authentication key; empty: frames unsigned
        self.house = ""
        self.zone = ""
        self.error = None  # type: str | None

    def baud(self) -> int:
        return self.raw[r.BAUD] * 100


def scale(reg: int) -> int:
    t = r.TABLE
    for i in range(0, len(t), 8):
        if t[i] == reg:
            return t[i + 3]
    return 1


def cross_check(raw: "dict[int, int]") -> "str | None":
    """The key of a setting that contradicts another (a pre-alarm threshold not below its
    alarm threshold), or None."""
    if raw[r.SMOKE_PRE_ALARM] >= raw[r.SMOKE_ALARM]:
        return "smoke_pre_alarm_pct_m"
    if raw[r.LEAKAGE_PRE_ALARM] >= raw[r.LEAKAGE_ALARM]:
        return "leakage_pre_alarm_ma"
    return None


def validate(data: object, only: "tuple[str, ...] | None" = None) -> Config:
    """A Config from parsed JSON, or ValueError whose message names the offending key and
    what is allowed. With only, keys outside it are ignored (used to salvage link settings).
    The checks live in schema.py, loaded for the call and dropped again by load()."""
    import schema

    return schema.validate(data, only)


def to_dict(cfg: Config) -> dict:  # type: ignore[type-arg]
    """The JSON object that validate() turns back into cfg."""
    out = {}  # type: dict[str, object]
    for key, reg in SETTINGS:
        word = cfg.raw[reg]
        if reg == r.BAUD:
            out[key] = word * 100
        elif reg == r.LINK_MODE:
            out[key] = LINK_MODES[word]
        else:
            if reg == r.TEMP_FIXED and word >= 0x8000:
                word -= 0x10000
            sc = scale(reg)
            out[key] = word if sc == 1 else word / sc
    if cfg.node_id >= 0:
        out["node_id"] = cfg.node_id
    if cfg.key:
        out["key"] = "".join("%02x" % b for b in cfg.key)
    out["house"], out["zone"] = cfg.house, cfg.zone
    out["pins"] = cfg.pins
    out["calibration"] = cfg.cal
    return out


def load(path: str = PATH) -> Config:
    """The config on flash; defaults when there is none; a salvaged one (error set) when it
    is invalid. Never raises: a node must start whatever its flash holds."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return Config()
    except ValueError:  # UnicodeError: bytes that are not even text (a torn or worn flash)
        text = ""
    try:
        data = json.loads(text)
    except ValueError:
        cfg = Config()
        cfg.error = "%s is not valid JSON" % path
        return cfg
    try:
        return validate(data)
    except ValueError as exc:
        error = str(exc)
    finally:
        _drop_schema()
    cfg = Config()
    if isinstance(data, dict):
        for key in _LINK_SETTINGS:  # keep each link setting that is valid on its own
            try:
                one = validate({key: data[key]}, (key,)) if key in data else None
            except ValueError:
                one = None
            finally:
                _drop_schema()
            if one is not None:
                for k, reg in SETTINGS:
                    if k == key:
                        cfg.raw[reg] = one.raw[reg]
                if key == "node_id":
                    cfg.node_id = one.node_id
                if key == "key":
                    cfg.key = one.key
    cfg.error = error
    return cfg


def _drop_schema() -> None:
    """Let the validation code be collected: a running node never needs it again (heap)."""
    import sys

    sys.modules.pop("schema", None)


def save(cfg: Config, path: str = PATH) -> None:
    """Write atomically: a power cut leaves the old file or the new one, never half of one
    (littlefs renames atomically; DOMAIN.md)."""
    tmp = path[: -len(PATH)] + _TMP if path.endswith(PATH) else path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(to_dict(cfg), f)
    os.rename(tmp, path)


def factory_reset(path: str = PATH) -> Config:
    """Forget the config on flash: the node is back on address 247 with the defaults."""
    try:
        os.remove(path)
    except OSError:
        pass
    return Config()
