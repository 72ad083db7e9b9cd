"""`firelane node flash`: a bundle and a config.json onto a node, verified, restarted, confirmed.

The order is what keeps an interrupted flash harmless:

1. The flag file `maintenance` goes on first (firmware/startup.py): until the very end, any
   reset brings the node up in maintenance mode (no app, no watchdog, REPL free), so a
   half-flashed node still boots and the next flash can finish the job. Its text says a flash
   is in progress, so the next flash reports that it is recovering one.
2. Every file is written under a temporary name (NAME.new), its sha256 computed on the node
   (hashlib there) and compared with the manifest, then renamed over NAME (littlefs renames
   atomically). A file already on the node with the right hash is not copied again, which is
   also how a flash after an interrupted one resumes. boot.py and main.py come last.
3. config.json is made from the options, validated by the firmware's own schema
   (firmware/config.py, run here under CPython), written the same way.
4. Firmware files the bundle does not have are removed: MicroPython prefers X.py to X.mpy,
   so a stale source would shadow the new bytecode.
5. The install record firelane.json (bundle, version, the set installed, every hash) is
   written. On a board, a soft reset then runs the new boot.py and startup.py (the flag still
   set: into maintenance mode) and the REPL reports the version, the address read from the
   new config.json, any config error, and whether the app's modules import: firmware that
   would not start is caught while the node is still safe in maintenance mode.
6. The flag is removed, the boot record in RTC memory cleared (a reflash leaves safe mode and
   restarts the failed-boot count, docs/firmware.md) and the node reset; cli_node.py then asks
   it over RS-485 (Modbus: FW_VERSION, FW_PATCH, MAP_VERSION, ADDRESS) whether it runs what
   was flashed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer import bundle as bundles
from installer import micropython
from installer.errors import InstallError
from installer.progress import Progress
from installer.target import FLAG, Target

ROOT = Path(__file__).resolve().parents[1]
RECORD = "firelane.json"
CONFIG = "config.json"
TMP_SUFFIX = ".new"
FLASHING = "firelane flash in progress"  # first words of the flag's text during a flash


@dataclass
class Report:
    """What a flash did, for the summary."""

    file_set: str = ""
    board: str = ""
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    recovered: bool = False
    maintenance: str = ""
    boot_check: str = ""
    restart: str = ""


def make_config(
    address: int, house: str, zone: str, settings: list[str], root: Path = ROOT
) -> dict[str, Any]:
    """config.json from the options, checked by the firmware's own validation (schema.py):
    InstallError with the firmware's message (it names the key and what is allowed)."""
    data: dict[str, Any] = {"address": address, "house": house, "zone": zone}
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise InstallError(
                f"--set {item!r}: give key=value", "for example --set leakage_alarm_ma=350"
            )
        data[key.strip()] = _value(text.strip())
    validate(data, root)
    return data


def _value(text: str) -> Any:
    """A --set value: JSON when it parses (350, 2.5, "push", {"led": 2}), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def validate(data: dict[str, Any], root: Path = ROOT) -> None:
    firmware = str(root / "firmware")
    added = firmware not in sys.path
    loaded = "config" in sys.modules
    if added:
        sys.path.insert(0, firmware)
    try:
        import config as node_config

        node_config.validate(data)
    except ValueError as exc:
        raise InstallError(
            f"the node would refuse this config: {exc}",
            "fix the option (--address, --house, --zone or --set key=value) and run again",
        ) from None
    finally:
        sys.modules.pop("schema", None)  # the firmware's modules, by their bare names
        if not loaded:
            sys.modules.pop("config", None)
        if added:
            sys.path.remove(firmware)


def flash(
    target: Target,
    bundle: bundles.Bundle,
    config: dict[str, Any],
    progress: Progress | None = None,
    out: Callable[[str], None] = print,
    hook: Callable[[str], None] | None = None,
) -> Report:
    """Steps 1-6 of the module docstring but the Modbus confirmation; hook(path) is called
    before each file is copied (tests interrupt a flash there)."""
    report = Report()
    info = target.identify()
    kind = info.file_set()
    if kind is None:
        port = getattr(target, "port", "PORT")
        raise InstallError(
            f"{target.description} runs {info.describe()}, which cannot run this bundle "
            f"(it needs MicroPython {'.'.join(map(str, bundles.MICROPYTHON_MIN))} or newer "
            f"loading .mpy v{'.'.join(map(str, bundles.MPY_VERSION))})",
            micropython.install_hint(port),
        )
    report.file_set, report.board = kind, info.describe()
    files = bundle.files(kind)
    before = target.listing()
    previous = _flag_text(target, before)
    report.recovered = previous.startswith(FLASHING)
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    flag_text = f"{FLASHING}: {bundle.name} ({kind}) since {when}\n"
    report.maintenance = target.enter_maintenance(flag_text)
    out(f"{target.description}: {report.board}; {report.maintenance}")
    if report.recovered:
        out("a previous flash was interrupted; completing it")
    present = target.listing()
    for stale in [p for p in present if p.endswith(TMP_SUFFIX)]:
        target.remove(stale)  # the remains of an interrupted copy
    if any(f.path.startswith("protocol/") for f in files):
        target.mkdir("protocol")
    config_bytes = (json.dumps(config, indent=1) + "\n").encode()
    todo: list[tuple[str, bytes, str]] = []
    for f in files:
        if present.get(f.path) == f.size and target.sha256(f.path) == f.sha256:
            report.unchanged.append(f.path)
        else:
            todo.append((f.path, bundle.data(kind, f.path), f.sha256))
    # config.json before boot.py and main.py: the scripts go last.
    cut = len([t for t in todo if t[0] not in bundles.SCRIPTS])
    todo.insert(cut, (CONFIG, config_bytes, bundles.sha256(config_bytes)))
    bar = progress or Progress(sum(len(d) for _, d, _ in todo))
    for path, data, digest in todo:
        if hook is not None:
            hook(path)
        bar.file(path)
        _put(target, path, data, digest, bar.advance)
        bar.done(path, len(data))
        report.copied.append(path)
    bar.finish()
    wanted = {f.path for f in files}
    for path in sorted(target.listing()):
        if path.endswith((".py", ".mpy")) and path not in wanted:
            target.remove(path)
            report.removed.append(path)
    record = {
        "bundle": bundle.name,
        "firmware_version": bundle.version,
        "map_version": bundle.manifest["map_version"],
        "set": kind,
        "flashed": when,
        "files": {f.path: f.sha256 for f in files},
    }
    record_bytes = (json.dumps(record, indent=1) + "\n").encode()
    _put(target, RECORD, record_bytes, bundles.sha256(record_bytes), lambda n: None)
    report.boot_check = _check_boot(target, bundle.version, int(config["address"]))
    target.remove(FLAG)
    report.restart = target.restart()
    return report


def _check_boot(target: Target, version: str, address: int) -> str:
    """With the flag still on flash (so a failure leaves the node in maintenance mode): the
    new boot.py and startup.py read the new config.json, and the app's modules import."""
    found = target.check_boot()
    if found is None:
        return ""
    problem = ""
    if not found.get("startup"):
        problem = "boot.py failed: " + _last_lines(str(found.get("printed", "")))
    elif found.get("config_error"):
        problem = f"the node refused its config.json: {found['config_error']}"
    elif found.get("app") != "ok":
        problem = f"the app does not import: {found.get('app')}"
    elif found.get("version") != version or found.get("address") != address:
        problem = (
            f"the node reads firmware {found.get('version')} at address "
            f"{found.get('address')}, not {version} at {address}"
        )
    if problem:
        raise InstallError(
            f"the new firmware does not start on {target.description}: {problem}",
            "the node stays in maintenance mode (LED steady); run the same flash command "
            "again, and if this repeats rebuild the bundle (firelane node build)",
        )
    return f"firmware {version} boots, reads address {address}, the app imports"


def _last_lines(text: str, n: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-n:]) or "no output"


def _flag_text(target: Target, listing: dict[str, int]) -> str:
    """FLASHING when the flag left by an interrupted flash is on the node (an installer's own
    flag, made with `mpremote touch :maintenance`, is empty)."""
    return FLASHING if listing.get(FLAG, 0) > 0 else ""


def _put(
    target: Target, path: str, data: bytes, digest: str, advance: Callable[[int], None]
) -> None:
    """Write to PATH.new, check its hash on the node, rename over PATH."""
    tmp = path + TMP_SUFFIX
    target.write(tmp, data, advance)
    got = target.sha256(tmp)
    if got != digest:
        target.remove(tmp)
        raise InstallError(
            f"{path} arrived damaged on {target.description} (sha256 {got} != {digest})",
            "run the same flash command again; if it repeats, try another USB cable or port",
        )
    target.rename(tmp, path)
