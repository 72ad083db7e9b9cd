"""The node's configuration: JSON on flash, validated by one function, written atomically.

config.json holds settings in their units ("leakage_alarm_ma": 300), a pin map and the analog
calibration. Every setting that is also a Modbus register (0x0040..0x004C) is checked against
that register's limits in protocol/registers.py, so the map and the file cannot disagree; in
memory those settings are kept as raw register words, which is what the Modbus link serves.

Safe defaults: a node with no config.json answers at address 247, 19200 baud, polled, with the
standard thresholds. A config.json that fails validation is not used; the node keeps only the
link settings that are valid on their own (so the gateway can still reach it), uses defaults for
the rest, and reports FAULT_CONFIG with the error message kept in Config.error.
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
_LINK_MODES = ("poll", "push")  # index = registers.LINK_POLLED / LINK_PUSH

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
_ANALOG = ("smoke", "ct", "temperature", "supply")
_OUTPUTS = ("uart_tx", "de", "led", "buzzer")

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
_TEXT = ("house", "zone")
_TEXT_MAX = const(64)


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

    def set_raw(self, reg: int, word: int) -> bool:
        """Apply one register write if the register map and the cross-checks allow it."""
        if not r.valid(reg, word):
            return False
        old = self.raw[reg]
        self.raw[reg] = word
        if cross_check(self.raw):
            self.raw[reg] = old
            return False
        return True


def _scale(reg: int) -> int:
    t = r.TABLE
    for i in range(0, len(t), 8):
        if t[i] == reg:
            return t[i + 3]
    return 1


def _number(
    key: str, value: object, lo: "int | float", hi: "int | float", whole: bool
) -> "int | float":
    """value, once it is a number in lo..hi (a whole one if whole); else ValueError naming
    the key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("config key %r: %r is not a number" % (key, value))
    if whole and value != int(value):
        raise ValueError("config key %r: %r must be a whole number" % (key, value))
    if not lo <= value <= hi:
        raise ValueError("config key %r: %r is outside %s..%s" % (key, value, lo, hi))
    return value


def _word(key: str, reg: int, value: object) -> int:
    """The register word for a setting's value, or ValueError naming the key and the range."""
    if reg == r.LINK_MODE:
        if value not in _LINK_MODES:
            raise ValueError("config key %r: %r is not one of %s" % (key, value, _LINK_MODES))
        return _LINK_MODES.index(value)
    if reg == r.BAUD:
        baud = int(_number(key, value, 0, 1 << 20, True))
        word = baud // 100
        if word * 100 != baud or word not in r.BAUD_CHOICES:
            raise ValueError(
                "config key %r: %r baud is not one of %s"
                % (key, value, [b * 100 for b in r.BAUD_CHOICES])
            )
        return word
    scale = _scale(reg)
    word = round(_number(key, value, -(1 << 15), 1 << 16, scale == 1) * scale)
    if not r.valid(reg, word & 0xFFFF):
        t = r.TABLE
        i = 0
        while t[i] != reg:
            i += 8
        lo, hi = t[i + 5], t[i + 6]
        if reg == r.TEMP_FIXED:  # i16 limits are stored as words
            lo, hi = lo - (lo >> 15 << 16), hi - (hi >> 15 << 16)
        if scale > 1:  # in the key's unit, as the file has it
            raise ValueError(
                "config key %r: %r is outside %s..%s" % (key, value, lo / scale, hi / scale)
            )
        raise ValueError("config key %r: %r is outside %s..%s" % (key, value, lo, hi))
    return word & 0xFFFF


def cross_check(raw: "dict[int, int]") -> "str | None":
    """The key of a setting that contradicts another (a pre-alarm threshold not below its
    alarm threshold), or None."""
    if raw[r.SMOKE_PRE_ALARM] >= raw[r.SMOKE_ALARM]:
        return "smoke_pre_alarm_pct_m"
    if raw[r.LEAKAGE_PRE_ALARM] >= raw[r.LEAKAGE_ALARM]:
        return "leakage_pre_alarm_ma"
    return None


def validate(data: object, only: "tuple[str, ...] | None" = None) -> Config:
    """A Config from the parsed JSON, or ValueError whose message names the offending key and
    what is allowed. With only, keys outside it are ignored (used to salvage link settings)."""
    if not isinstance(data, dict):
        raise ValueError("config must be a JSON object, not %s" % type(data).__name__)
    cfg = Config()
    known = [k for k, _ in SETTINGS] + ["pins", "calibration", "node_id", "key"] + list(_TEXT)
    for key in data:
        if key not in known:
            raise ValueError("config key %r is unknown; known keys: %s" % (key, ", ".join(known)))
    for key, reg in SETTINGS:
        if key in data and (only is None or key in only):
            cfg.raw[reg] = _word(key, reg, data[key])
    bad = cross_check(cfg.raw)
    if bad:
        raise ValueError("config key %r must be below the matching alarm threshold" % bad)
    if "node_id" in data and (only is None or "node_id" in only):
        _number("node_id", data["node_id"], 1, 0xFFFFFFFF, True)
        cfg.node_id = int(data["node_id"])
    if "key" in data and (only is None or "key" in only):
        cfg.key = _key(data["key"])
    if only is not None:
        return cfg
    for key in _TEXT:
        if key in data:
            text = data[key]
            if not isinstance(text, str) or len(text) > _TEXT_MAX:
                raise ValueError("config key %r: text of at most %d characters" % (key, _TEXT_MAX))
            setattr(cfg, key, text)
    _pins(cfg.pins, data.get("pins", {}))
    cal = data.get("calibration", {})
    if not isinstance(cal, dict):
        raise ValueError("config key 'calibration' must be an object")
    names = [c[0] for c in CALIBRATION]
    for name in cal:
        if name not in names:
            raise ValueError("config key 'calibration.%s' is unknown; known: %s" % (name, names))
    for name, _, lo, hi in CALIBRATION:
        if name in cal:
            _number("calibration." + name, cal[name], lo, hi, False)
            cfg.cal[name] = cal[name]
    return cfg


def _key(text: object) -> bytes:
    if not isinstance(text, str) or len(text) % 2 or not 0 <= len(text) <= 128:
        raise ValueError("config key 'key': an even number (up to 128) of hex digits")
    try:
        return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))
    except ValueError:
        raise ValueError("config key 'key': %r is not hexadecimal" % text) from None


def _pins(pins: "dict[str, int]", given: object) -> None:
    if not isinstance(given, dict):
        raise ValueError("config key 'pins' must be an object")
    for name in given:
        if name not in pins:
            raise ValueError("config key 'pins.%s' is unknown; known: %s" % (name, list(pins)))
        _number("pins." + name, given[name], -1 if name == "hush" else 0, 39, True)
        pins[name] = given[name]
    seen = {}  # type: dict[int, str]
    for name in pins:
        n = pins[name]
        if n < 0:
            continue
        if n in seen:
            raise ValueError("config key 'pins.%s': GPIO %d is already %s" % (name, n, seen[n]))
        seen[n] = name
        if name in _ANALOG and not 32 <= n <= 39:
            raise ValueError("config key 'pins.%s': analog inputs need ADC1, GPIO 32-39" % name)
        if name in _OUTPUTS and n >= 34:
            raise ValueError("config key 'pins.%s': GPIO %d is input-only" % (name, n))


def to_dict(cfg: Config) -> dict:  # type: ignore[type-arg]
    """The JSON object that validate() turns back into cfg."""
    out = {}  # type: dict[str, object]
    for key, reg in SETTINGS:
        word = cfg.raw[reg]
        if reg == r.BAUD:
            out[key] = word * 100
        elif reg == r.LINK_MODE:
            out[key] = _LINK_MODES[word]
        else:
            if reg == r.TEMP_FIXED and word >= 0x8000:
                word -= 0x10000
            scale = _scale(reg)
            out[key] = word if scale == 1 else word / scale
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
    cfg = Config()
    if isinstance(data, dict):
        for key in _LINK_SETTINGS:  # keep each link setting that is valid on its own
            try:
                one = validate({key: data[key]}, (key,)) if key in data else None
            except ValueError:
                one = None
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
