"""The checks behind config.validate(): every error names the key and what is allowed.

Only config.load() needs this module, at boot; it drops it again afterwards so a running node
does not keep the validation code on its heap.
"""

from config import CALIBRATION, LINK_MODES, SETTINGS, Config, cross_check, scale
from protocol import registers as r

try:
    from micropython import const
except ImportError:

    def const(x: int) -> int:
        return x


_ANALOG = ("smoke", "ct", "temperature", "supply")
_OUTPUTS = ("uart_tx", "de", "led", "buzzer")

_TEXT = ("house", "zone")
_TEXT_MAX = const(64)


def _number(
    key: str, value: object, lo: "int | float", hi: "int | float", whole: bool
) -> "int | float":
    """value, once it is a number in lo..hi (a whole one if whole); else ValueError naming
    the key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("config key %r: %r is not a number" % (key, value))
    # The range first: it refuses inf and nan (JSON's 1e999), which int() cannot take.
    if not lo <= value <= hi:
        raise ValueError("config key %r: %r is outside %s..%s" % (key, value, lo, hi))
    if whole and value != int(value):
        raise ValueError("config key %r: %r must be a whole number" % (key, value))
    return value


def _word(key: str, reg: int, value: object) -> int:
    """The register word for a setting's value, or ValueError naming the key and the range."""
    if reg == r.LINK_MODE:
        if value not in LINK_MODES:
            raise ValueError("config key %r: %r is not one of %s" % (key, value, LINK_MODES))
        mode = LINK_MODES.index(value)  # type: int
        return mode
    if reg == r.BAUD:
        baud = int(_number(key, value, 0, 1 << 20, True))
        word = baud // 100
        if word * 100 != baud or word not in r.BAUD_CHOICES:
            raise ValueError(
                "config key %r: %r baud is not one of %s"
                % (key, value, [b * 100 for b in r.BAUD_CHOICES])
            )
        return word
    sc = scale(reg)
    word = round(_number(key, value, -(1 << 15), 1 << 16, sc == 1) * sc)
    # A word past 16 bits must not wrap into range (6560 s would become 6.4 s).
    if not -0x8000 <= word <= 0xFFFF or not r.valid(reg, word & 0xFFFF):
        t = r.TABLE
        i = 0
        while t[i] != reg:
            i += 8
        lo, hi = t[i + 5], t[i + 6]
        if reg == r.TEMP_FIXED:  # i16 limits are stored as words
            lo, hi = lo - (lo >> 15 << 16), hi - (hi >> 15 << 16)
        if sc > 1:  # in the key's unit, as the file has it
            lo, hi = lo / sc, hi / sc  # type: ignore[assignment]
        raise ValueError("config key %r: %r is outside %s..%s" % (key, value, lo, hi))
    w = word & 0xFFFF  # type: int
    return w


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
    for c in text:  # int(x, 16) alone would take " f" and "+f"
        if c not in "0123456789abcdefABCDEF":
            raise ValueError("config key 'key': %r is not hexadecimal" % text)
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))


def _pins(pins: "dict[str, int]", given: object) -> None:
    if not isinstance(given, dict):
        raise ValueError("config key 'pins' must be an object")
    for name in given:
        if name not in pins:
            raise ValueError("config key 'pins.%s' is unknown; known: %s" % (name, list(pins)))
        lo = -1 if name == "hush" else 0
        pins[name] = int(_number("pins." + name, given[name], lo, 39, True))  # 13.0 is GPIO 13
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
