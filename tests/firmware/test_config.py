"""config.json: validation that names the key, load() that never raises, atomic save()."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

import config
from config import Config, load, save, to_dict, validate
from protocol import registers as r


def snapshot(cfg: Config) -> dict[str, Any]:
    """Everything a Config holds, comparable with ==."""
    return {
        "raw": dict(cfg.raw),
        "pins": dict(cfg.pins),
        "cal": dict(cfg.cal),
        "node_id": cfg.node_id,
        "key": cfg.key,
        "house": cfg.house,
        "zone": cfg.zone,
        "error": cfg.error,
    }


DEFAULTS = snapshot(Config())

# Every key set, none to its default.
FULL: dict[str, Any] = {
    "address": 17,
    "baud": 9600,
    "link_mode": "push",
    "smoke_alarm_pct_m": 3.1,
    "smoke_pre_alarm_pct_m": 1.75,
    "leakage_alarm_ma": 500,
    "leakage_pre_alarm_ma": 350,
    "leakage_alarm_delay_s": 4.5,
    "leakage_release_delay_s": 120,
    "temp_fixed_c": 62.5,
    "temp_rate_c_min": 8.3,
    "supply_low_v": 11.5,
    "heartbeat_s": 60,
    "node_id": 0xC0FFEE,
    "key": "00112233445566778899aabbccddeeff",
    "house": "No. 12 Old Timber Lane",
    "zone": "district 3",
    "pins": {"led": 13, "buzzer": 14, "hush": -1, "temperature": 36},
    "calibration": {"smoke_clean_mv": 512, "ct_uv_per_ma": 1234.5, "supply_divider": 10},
}


def test_defaults() -> None:
    cfg = Config()
    assert cfg.raw[r.ADDRESS] == 247
    assert cfg.baud() == 19200
    assert cfg.raw[r.LINK_MODE] == r.LINK_POLLED
    assert cfg.error is None
    assert snapshot(validate({})) == DEFAULTS


def test_every_key_is_read_in_its_unit() -> None:
    cfg = validate(FULL)
    raw = cfg.raw
    assert raw[r.ADDRESS] == 17
    assert raw[r.BAUD] == 96
    assert raw[r.LINK_MODE] == r.LINK_PUSH
    assert (raw[r.SMOKE_ALARM], raw[r.SMOKE_PRE_ALARM]) == (310, 175)
    assert (raw[r.LEAKAGE_ALARM], raw[r.LEAKAGE_PRE_ALARM]) == (500, 350)
    assert (raw[r.LEAKAGE_ALARM_DELAY], raw[r.LEAKAGE_RELEASE_DELAY]) == (45, 1200)
    assert (raw[r.TEMP_FIXED], raw[r.TEMP_RATE]) == (625, 83)
    assert (raw[r.SUPPLY_LOW], raw[r.HEARTBEAT]) == (11500, 60)
    assert cfg.node_id == 0xC0FFEE
    assert cfg.key == bytes.fromhex(FULL["key"])
    assert (cfg.house, cfg.zone) == (FULL["house"], FULL["zone"])
    assert cfg.pins == dict(config.PINS, led=13, buzzer=14, hush=-1, temperature=36)
    assert cfg.cal["ct_uv_per_ma"] == 1234.5
    assert cfg.cal["temp_mv_per_c"] == 10  # not given: the default


@pytest.mark.parametrize("data", [{}, FULL], ids=["defaults", "full"])
def test_round_trip_through_to_dict_and_json(data: dict[str, Any]) -> None:
    cfg = validate(data)
    again = validate(json.loads(json.dumps(to_dict(cfg))))
    assert snapshot(again) == snapshot(cfg)
    assert to_dict(again) == to_dict(cfg)


# (id, data, what the message must name)
BAD: list[tuple[str, Any, str]] = [
    ("unknown-key", {"adress": 17}, "'adress'"),
    ("address-0", {"address": 0}, "'address'"),
    ("address-248", {"address": 248}, "'address'"),
    ("address-text", {"address": "17"}, "'address'"),
    ("address-bool", {"address": True}, "'address'"),
    ("address-fraction", {"address": 17.5}, "'address'"),
    ("address-null", {"address": None}, "'address'"),
    ("address-list", {"address": [17]}, "'address'"),
    ("address-inf", {"address": math.inf}, "'address'"),
    ("address-nan", {"address": math.nan}, "'address'"),
    ("baud-not-in-list", {"baud": 14400}, "'baud'"),
    ("baud-odd", {"baud": 9601}, "'baud'"),
    ("baud-text", {"baud": "19200"}, "'baud'"),
    ("baud-bool", {"baud": False}, "'baud'"),
    ("baud-inf", {"baud": math.inf}, "'baud'"),
    ("link-mode", {"link_mode": "modbus"}, "'link_mode'"),
    ("link-mode-number", {"link_mode": 1}, "'link_mode'"),
    ("smoke-alarm-low", {"smoke_alarm_pct_m": 0.4}, "'smoke_alarm_pct_m'"),
    ("smoke-alarm-high", {"smoke_alarm_pct_m": 20.5}, "'smoke_alarm_pct_m'"),
    ("smoke-alarm-bool", {"smoke_alarm_pct_m": True}, "'smoke_alarm_pct_m'"),
    ("smoke-pre-equal", {"smoke_pre_alarm_pct_m": 2.4}, "'smoke_pre_alarm_pct_m'"),
    ("smoke-pre-above", {"smoke_alarm_pct_m": 1.0, "smoke_pre_alarm_pct_m": 1.5}, "pre_alarm"),
    ("leak-pre-equal", {"leakage_pre_alarm_ma": 300}, "'leakage_pre_alarm_ma'"),
    ("leak-alarm-low", {"leakage_alarm_ma": 19}, "'leakage_alarm_ma'"),
    ("leak-delay", {"leakage_alarm_delay_s": 30.1}, "'leakage_alarm_delay_s'"),
    ("leak-delay-negative", {"leakage_alarm_delay_s": -1}, "'leakage_alarm_delay_s'"),
    ("release-delay", {"leakage_release_delay_s": 601}, "'leakage_release_delay_s'"),
    ("temp-fixed", {"temp_fixed_c": 39.9}, "'temp_fixed_c'"),
    ("temp-fixed-negative", {"temp_fixed_c": -10}, "'temp_fixed_c'"),
    ("temp-rate", {"temp_rate_c_min": 31}, "'temp_rate_c_min'"),
    ("supply-low", {"supply_low_v": 2.9}, "'supply_low_v'"),
    ("heartbeat", {"heartbeat_s": 4}, "'heartbeat_s'"),
    ("heartbeat-fraction", {"heartbeat_s": 30.5}, "'heartbeat_s'"),
    # Values whose register word is past 16 bits must not wrap into a valid word:
    # 6560 s is not 6.4 s, 655.9 %/m is not 0.54 %/m, 69.536 V is not 4 V.
    ("release-delay-wraps", {"leakage_release_delay_s": 6560}, "'leakage_release_delay_s'"),
    ("alarm-delay-wraps", {"leakage_alarm_delay_s": 6553.7}, "'leakage_alarm_delay_s'"),
    ("smoke-alarm-wraps", {"smoke_alarm_pct_m": 655.9}, "'smoke_alarm_pct_m'"),
    ("smoke-alarm-wraps-down", {"smoke_alarm_pct_m": -653.36}, "'smoke_alarm_pct_m'"),
    ("supply-wraps", {"supply_low_v": 69.536}, "'supply_low_v'"),
    ("temp-fixed-wraps", {"temp_fixed_c": 6610.6}, "'temp_fixed_c'"),
    ("node-id-0", {"node_id": 0}, "'node_id'"),
    ("node-id-33-bits", {"node_id": 1 << 32}, "'node_id'"),
    ("node-id-fraction", {"node_id": 1.5}, "'node_id'"),
    ("node-id-inf", {"node_id": math.inf}, "'node_id'"),
    ("key-not-hex", {"key": "zz"}, "'key'"),
    ("key-odd-length", {"key": "abc"}, "'key'"),
    ("key-too-long", {"key": "00" * 65}, "'key'"),
    ("key-number", {"key": 1234}, "'key'"),
    ("key-sign", {"key": "+f00"}, "'key'"),
    ("key-space", {"key": " f00"}, "'key'"),
    ("key-negative", {"key": "-1"}, "'key'"),
    ("house-too-long", {"house": "x" * 65}, "'house'"),
    ("zone-not-text", {"zone": 3}, "'zone'"),
    ("pins-not-object", {"pins": [17, 16]}, "'pins'"),
    ("pin-unknown", {"pins": {"siren": 5}}, "'pins.siren'"),
    ("pin-out-of-range", {"pins": {"led": 40}}, "'pins.led'"),
    ("pin-negative", {"pins": {"led": -1}}, "'pins.led'"),
    ("pin-text", {"pins": {"led": "2"}}, "'pins.led'"),
    ("pin-duplicate", {"pins": {"led": 27}}, "'pins.buzzer': GPIO 27 is already led"),
    ("pin-analog-not-adc1", {"pins": {"smoke": 13}}, "'pins.smoke'"),
    ("pin-analog-adc2", {"pins": {"ct": 4, "de": 5}}, "'pins.ct'"),
    ("pin-output-input-only", {"pins": {"led": 36}}, "'pins.led'"),
    ("pin-tx-input-only", {"pins": {"uart_tx": 39}}, "'pins.uart_tx'"),
    ("calibration-not-object", {"calibration": 5}, "'calibration'"),
    ("calibration-unknown", {"calibration": {"gain": 2}}, "'calibration.gain'"),
    ("calibration-range", {"calibration": {"ct_bias_mv": 100}}, "'calibration.ct_bias_mv'"),
    ("calibration-bool", {"calibration": {"smoke_mv_per_pct": True}}, "'calibration."),
    ("calibration-nan", {"calibration": {"temp_offset_mv": math.nan}}, "'calibration."),
]


@pytest.mark.parametrize(("data", "named"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_value_is_refused_with_the_key_named(data: Any, named: str) -> None:
    with pytest.raises(ValueError) as info:
        validate(data)
    assert named in str(info.value)
    assert str(info.value).startswith("config key")


@pytest.mark.parametrize("data", [[], "text", 5, None])
def test_a_config_must_be_an_object(data: Any) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        validate(data)


def test_the_edges_of_every_range_are_accepted() -> None:
    edges = {
        "address": 1,
        "baud": 115200,
        "smoke_alarm_pct_m": 20,
        "smoke_pre_alarm_pct_m": 0.3,
        "leakage_alarm_ma": 1000,
        "leakage_pre_alarm_ma": 10,
        "leakage_alarm_delay_s": 30,
        "leakage_release_delay_s": 600,
        "temp_fixed_c": 90,
        "temp_rate_c_min": 3,
        "supply_low_v": 30,
        "heartbeat_s": 3600,
        "node_id": 0xFFFFFFFF,
        "key": "",
        "house": "x" * 64,
        "pins": {"hush": -1, "led": 0},
    }
    cfg = validate(edges)
    assert cfg.raw[r.LEAKAGE_RELEASE_DELAY] == 6000
    assert cfg.key == b""


def test_pin_numbers_are_kept_as_ints() -> None:
    # machine.Pin takes an int; a pin written as 13.0 is GPIO 13, not a float.
    cfg = validate({"pins": {"led": 13.0}})
    assert cfg.pins["led"] == 13
    assert type(cfg.pins["led"]) is int


def test_only_reads_just_the_named_keys() -> None:
    cfg = validate({"address": 17, "baud": 14400}, ("address",))
    assert cfg.raw[r.ADDRESS] == 17
    assert cfg.raw[r.BAUD] == 192


# load(), save(), factory_reset(), on a temporary flash.


@pytest.fixture
def flash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, as the node's flash root."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_load_without_a_file_gives_the_defaults(flash: Path) -> None:
    assert snapshot(load()) == DEFAULTS


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b'{"address": 17,}', b"\x00\x00\x00", b'{"address": 17', b"null x"],
    ids=["empty", "open-brace", "trailing-comma", "zeros", "truncated", "junk"],
)
def test_load_of_invalid_json_gives_defaults_and_an_error(flash: Path, content: bytes) -> None:
    (flash / "config.json").write_bytes(content)
    cfg = load()
    assert cfg.error == "config.json is not valid JSON"
    assert snapshot(cfg) == dict(DEFAULTS, error=cfg.error)


def test_load_of_a_corrupted_file_never_raises(flash: Path) -> None:
    # Flash wear or a torn write: bytes that are not even UTF-8 text.
    (flash / "config.json").write_bytes(b'\xff\xfe{"address": 17}')
    cfg = load()
    assert cfg.error is not None
    assert cfg.raw[r.ADDRESS] == 247


@pytest.mark.parametrize("text", ['{"address": 1e999}', '{"calibration": {"ct_bias_mv": -1e999}}'])
def test_load_of_an_infinite_number_never_raises(flash: Path, text: str) -> None:
    (flash / "config.json").write_text(text)
    cfg = load()
    assert cfg.error is not None and "config key" in cfg.error


def test_load_of_invalid_values_keeps_the_valid_link_settings(flash: Path) -> None:
    data = {
        "address": 17,
        "baud": 9600,
        "link_mode": "push",
        "node_id": 4242,
        "key": "a1b2",
        "smoke_alarm_pct_m": 99,  # out of range: the file is refused
        "leakage_alarm_ma": 400,
    }
    (flash / "config.json").write_text(json.dumps(data))
    cfg = load()
    assert cfg.error is not None and "'smoke_alarm_pct_m'" in cfg.error
    assert cfg.raw[r.ADDRESS] == 17
    assert cfg.raw[r.BAUD] == 96
    assert cfg.raw[r.LINK_MODE] == r.LINK_PUSH
    assert (cfg.node_id, cfg.key) == (4242, b"\xa1\xb2")
    # Everything else is the defaults, valid or not in the file.
    assert cfg.raw[r.LEAKAGE_ALARM] == 300
    assert cfg.raw[r.SMOKE_ALARM] == 240


def test_load_keeps_each_link_setting_that_is_valid_on_its_own(flash: Path) -> None:
    data = {"address": 300, "baud": 9600, "link_mode": "carrier-pigeon", "key": "xyz1"}
    (flash / "config.json").write_text(json.dumps(data))
    cfg = load()
    assert cfg.error is not None and "'address'" in cfg.error
    assert cfg.raw[r.ADDRESS] == 247  # invalid: the default
    assert cfg.raw[r.BAUD] == 96  # valid on its own: kept
    assert cfg.raw[r.LINK_MODE] == r.LINK_POLLED
    assert cfg.key == b""


def test_load_of_a_json_value_that_is_not_an_object(flash: Path) -> None:
    (flash / "config.json").write_text("[17, 9600]")
    cfg = load()
    assert cfg.error is not None and "JSON object" in cfg.error
    assert snapshot(cfg) == dict(DEFAULTS, error=cfg.error)


def test_save_then_load_round_trips(flash: Path) -> None:
    cfg = validate(FULL)
    save(cfg)
    assert sorted(p.name for p in flash.iterdir()) == ["config.json"]  # no temp file left
    assert snapshot(load()) == snapshot(cfg)


def test_save_replaces_an_existing_file(flash: Path) -> None:
    save(validate({"address": 5}))
    save(validate({"address": 6}))
    assert load().raw[r.ADDRESS] == 6
    assert sorted(p.name for p in flash.iterdir()) == ["config.json"]


def test_save_writes_a_temporary_file_and_renames_it(
    flash: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(validate({"address": 5}))
    renames: list[tuple[str, str]] = []
    real_rename = os.rename

    def rename(src: str, dst: str) -> None:
        renames.append((src, dst))
        assert json.loads(Path(src).read_text())["address"] == 6  # complete before the rename
        assert json.loads(Path(dst).read_text())["address"] == 5  # the old one still whole
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    save(validate({"address": 6}))
    assert renames == [("config.tmp", "config.json")]


def test_a_save_cut_short_leaves_the_old_file(flash: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save(validate({"address": 5}))

    def power_cut(obj: object, f: Any) -> None:
        f.write('{"address": 6, "ba')
        raise OSError("power cut")

    monkeypatch.setattr(json, "dump", power_cut)
    with pytest.raises(OSError):
        save(validate({"address": 6}))
    monkeypatch.undo()
    monkeypatch.chdir(flash)
    assert load().raw[r.ADDRESS] == 5


@pytest.mark.parametrize(
    ("path", "tmp"), [("sub/config.json", "sub/config.tmp"), ("node.json", "node.json.tmp")]
)
def test_save_to_another_path(flash: Path, path: str, tmp: str) -> None:
    (flash / "sub").mkdir()
    save(validate({"address": 9}), path)
    assert load(path).raw[r.ADDRESS] == 9
    assert not (flash / tmp).exists()


def test_factory_reset(flash: Path) -> None:
    save(validate(FULL))
    cfg = config.factory_reset()
    assert snapshot(cfg) == DEFAULTS
    assert not (flash / "config.json").exists()
    assert snapshot(load()) == DEFAULTS
    assert snapshot(config.factory_reset()) == DEFAULTS  # nothing to remove: still fine
