"""The register map: docs/registers.md and the code agree; the read/write checks behave."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protocol import codes, names, registers

DOC = Path(__file__).resolve().parents[2] / "docs" / "registers.md"


def doc_table(heading: str) -> list[list[str]]:
    """The rows of the first Markdown table under a heading, as lists of cell strings."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_register_table_matches_code() -> None:
    documented = doc_table("Registers")
    expected = []
    for row in names.rows():
        d = names.describe(row[0])
        if d["name"] == "BAUD":
            rng = ", ".join(str(b) for b in registers.BAUD_CHOICES)
        elif d["min"] is not None:
            rng = f"{d['min']}..{d['max']}"
        else:
            rng = "-"
        expected.append(
            [
                f"0x{d['address']:04X}",
                d["name"],
                d["access"],
                d["type"],
                d["unit"] or "-",
                "1" if d["scale"] == 1 else f"1/{d['scale']}",
                rng,
                "-" if d["default"] is None else str(d["default"]),
            ]
        )
    assert [cells[:8] for cells in documented] == expected
    assert all(cells[8] for cells in documented), "every register has a meaning"


@pytest.mark.parametrize(
    ("heading", "mapping", "key_column"),
    [
        ("STATUS bits", names.STATUS_BITS, 1),
        ("Sources (ALARM_SOURCES bits, event source byte)", names.SOURCES, 0),
        ("Faults (FAULTS bits, fault event detail byte)", names.FAULTS, 0),
        ("RESET_CAUSE", names.RESET_CAUSES, 0),
        ("COMMAND", names.COMMANDS, 0),
    ],
)
def test_code_tables_match(heading: str, mapping: dict[int, str], key_column: int) -> None:
    documented = {int(cells[key_column], 0): cells[key_column + 1] for cells in doc_table(heading)}
    if heading == "STATUS bits":
        documented = {int(c[1], 16): c[2] for c in doc_table(heading)}
        assert all(int(c[1], 16) == 1 << int(c[0]) for c in doc_table(heading))
    assert documented == mapping


def test_every_row_is_named_after_its_constant() -> None:
    rows = names.rows()
    assert [row[0] for row in rows] == sorted(names.REGISTERS)
    for address, name in names.REGISTERS.items():
        constant = "MAP_VERSION_REG" if name == "MAP_VERSION" else name
        assert getattr(registers, constant) == address


def test_rows_do_not_overlap_and_defaults_are_valid() -> None:
    taken: set[int] = set()
    for row in names.rows():
        address, access, kind, _, _, minimum, maximum, default = row
        span = {address, address + 1} if kind == registers.U32 else {address}
        assert not span & taken
        taken |= span
        if access & registers.W:
            assert minimum <= default <= maximum
            assert registers.valid(address, default & 0xFFFF)


def test_status_block_is_one_read() -> None:
    assert registers.check_read(registers.STATUS, registers.STATUS_BLOCK_LEN) == 0
    assert registers.SUPPLY == registers.STATUS + registers.STATUS_BLOCK_LEN - 1


@pytest.mark.parametrize(
    ("address", "count", "expected"),
    [
        (registers.DEVICE_TYPE, 6, 0),
        (registers.DEVICE_TYPE, 7, codes.EX_ILLEGAL_ADDRESS),  # 0x0006 is unassigned
        (registers.UPTIME + 1, 1, 0),  # the low word of a u32 alone
        (registers.COMMAND, 1, 0),
        (0x0061, 1, codes.EX_ILLEGAL_ADDRESS),
        (registers.ADDRESS, 13, 0),
    ],
)
def test_check_read(address: int, count: int, expected: int) -> None:
    assert registers.check_read(address, count) == expected


@pytest.mark.parametrize(
    ("address", "values", "expected"),
    [
        (registers.LEAKAGE_ALARM, [500], 0),
        (registers.LEAKAGE_ALARM, [1001], codes.EX_ILLEGAL_VALUE),
        (registers.ADDRESS, [0], codes.EX_ILLEGAL_VALUE),
        (registers.ADDRESS, [248], codes.EX_ILLEGAL_VALUE),
        (registers.BAUD, [1152], 0),
        (registers.BAUD, [1000], codes.EX_ILLEGAL_VALUE),
        (registers.TEMP_FIXED, [0xFFFF], codes.EX_ILLEGAL_VALUE),  # -1 as i16
        (registers.STATUS, [0], codes.EX_ILLEGAL_ADDRESS),
        (registers.SMOKE_ALARM, [300, 200, 400], 0),
        (registers.SMOKE_ALARM, [300, 200, 9999], codes.EX_ILLEGAL_VALUE),
        (registers.LINK_MODE, [0, 0], codes.EX_ILLEGAL_ADDRESS),  # runs past the config block
        (registers.COMMAND, [codes.CMD_IDENTIFY], 0),
        (registers.COMMAND, [codes.CMD_IDENTIFY + 1], codes.EX_ILLEGAL_VALUE),
    ],
)
def test_check_write(address: int, values: list[int], expected: int) -> None:
    assert registers.check_write(address, values) == expected


def test_value_decoding() -> None:
    assert names.physical(registers.TEMPERATURE, [0xFFC9]) == -5.5
    assert names.physical(registers.SMOKE, [240]) == 2.4
    assert names.physical(registers.UPTIME, [1, 2]) == 65538
    assert names.to_words(registers.U32, 65538) == (1, 2)
    assert names.bits(names.STATUS_BITS, registers.ST_ALARM | registers.ST_SOUNDING) == [
        "alarm",
        "sounding",
    ]


def test_names_cover_every_code() -> None:
    for prefix, mapping in [
        ("EV_", names.EVENTS),
        ("SRC_", names.SOURCES),
        ("FAULT_", names.FAULTS),
        ("CMD_", names.COMMANDS),
        ("RESET_", names.RESET_CAUSES),
        ("EX_", names.EXCEPTIONS),
    ]:
        values = {v for k, v in vars(codes).items() if k.startswith(prefix)}
        assert set(mapping) == values, prefix
    assert re.fullmatch(r"[a-z_]+", "".join(names.FAULTS.values()))
