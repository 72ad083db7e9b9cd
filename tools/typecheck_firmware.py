"""Type-check firmware/ against the ESP32 port's API, so no CPython-only call slips in.

mypy runs with micropython-stdlib-stubs as its typeshed (MicroPython's time, os, asyncio,
struct...) and micropython-esp32-stubs for machine, esp32 and micropython. The stub packages
install their .pyi files at the top of site-packages, next to everything else, so this script
links just their files into a temporary directory and points mypy there. Run from the
repository root; exits with mypy's status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib.metadata import distribution
from pathlib import Path

STUB_DISTS = ("micropython-esp32-stubs", "micropython-stdlib-stubs")


def stub_roots() -> tuple[Path, set[str]]:
    """site-packages and the top-level names the stub distributions install there."""
    names: set[str] = set()
    site: Path | None = None
    for dist_name in STUB_DISTS:
        dist = distribution(dist_name)
        for file in dist.files or ():
            top = file.parts[0]
            if top.endswith(".dist-info") or top == "stdlib":
                continue
            names.add(top)
            site = Path(str(dist.locate_file(top))).parent
    if site is None:
        raise SystemExit("the MicroPython stub packages are not installed: pip install -e .[dev]")
    return site, names


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    site, names = stub_roots()
    with tempfile.TemporaryDirectory(prefix="firelane-stubs-") as tmp:
        for name in sorted(names):
            os.symlink(site / name, Path(tmp) / name)
        config = Path(tmp) / "mypy.ini"
        config.write_text(
            "[mypy]\n"
            "python_version = 3.11\n"
            f"custom_typeshed_dir = {site}\n"
            f"mypy_path = {tmp}:{root / 'firmware'}:{root}\n"
            "strict = True\n"
            "explicit_package_bases = True\n"
            # The CPython fallbacks (const, ticks) redefine what the stubs declare, and an
            # ignore needed under CPython's typeshed may be unneeded here.
            "disable_error_code = misc, no-redef\n"
            "warn_unused_ignores = False\n"
            "cache_dir = /dev/null\n"
            # The stubs are not written for --strict; only our code is under test.
            + "".join(f"[mypy-{Path(n).stem}.*]\nignore_errors = True\n" for n in names)
            + "".join(f"[mypy-{Path(n).stem}]\nignore_errors = True\n" for n in names)
        )
        files = sorted(str(p.relative_to(root)) for p in (root / "firmware").glob("*.py"))
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), *files]
        result = subprocess.run(cmd, cwd=root, check=False)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
