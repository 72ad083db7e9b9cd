"""Which MicroPython a bundle needs, what a board has, and how to install it with esptool.

esptool is not a Firelane dependency (it is needed once per board, to put MicroPython on a
fresh ESP32); the hint says how to get it, and --install-micropython IMAGE runs it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass

from installer.bundle import MICROPYTHON_MIN, MICROPYTHON_TESTED, MPY_VERSION
from installer.errors import InstallError

DOWNLOAD = "https://micropython.org/download/ESP32_GENERIC/"
IMAGE = f"ESP32_GENERIC-<date>-v{MICROPYTHON_TESTED}.bin"
FLASH_BAUD = 460800
APP_OFFSET = "0x1000"  # where the ESP32 (classic) image starts, per MicroPython's download page
# What a board reports, evaluated over the raw REPL.
PROBE = (
    "import sys, os\n"
    "print(repr((sys.implementation.name, tuple(sys.implementation.version[:3]), "
    "getattr(sys.implementation, '_mpy', None), os.uname().sysname, os.uname().machine)))"
)


@dataclass(frozen=True)
class BoardInfo:
    """What the board said about itself (PROBE)."""

    implementation: str
    version: tuple[int, int, int]
    mpy: int | None  # sys.implementation._mpy: mpy version | sub-version << 8 | arch << 10
    sysname: str
    machine: str

    @property
    def emulated(self) -> bool:
        return "emulated" in self.machine

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def loads_mpy(self) -> bool:
        if self.mpy is None:
            return False
        return (self.mpy & 0xFF, (self.mpy >> 8) & 3) == MPY_VERSION

    def file_set(self) -> str | None:
        """The bundle's set this board runs ("mpy" or "py"), or None when it cannot run the
        firmware (wrong MicroPython)."""
        if self.implementation != "micropython":
            return None
        if self.emulated:
            return "py"  # the emulated board runs the firmware under CPython: sources
        if self.version[:2] < MICROPYTHON_MIN or not self.loads_mpy():
            return None
        return "mpy"

    def describe(self) -> str:
        return f"MicroPython {self.version_text} on {self.machine}"


def parse(text: str) -> BoardInfo:
    import ast

    name, version, mpy, sysname, machine = ast.literal_eval(text.strip())
    major, minor, micro = (*tuple(version), 0, 0, 0)[:3]
    return BoardInfo(str(name), (major, minor, micro), mpy, str(sysname), str(machine))


def esptool_commands(port: str, image: str = IMAGE) -> list[list[str]]:
    base = ["python", "-m", "esptool", "--chip", "esp32", "--port", port]
    return [
        [*base, "erase_flash"],
        [*base, "--baud", str(FLASH_BAUD), "write_flash", "-z", APP_OFFSET, image],
    ]


def install_hint(port: str, image: str | None = None) -> str:
    need = ".".join(map(str, MICROPYTHON_MIN))
    lines = [
        f"Put MicroPython {MICROPYTHON_TESTED} (at least {need}) on the ESP32. Download "
        f"{IMAGE if image is None else image} from {DOWNLOAD}, then:",
    ]
    lines += ["  " + " ".join(cmd) for cmd in esptool_commands(port, image or IMAGE)]
    lines += [
        "(this erases the board). esptool is not installed with Firelane: "
        ".venv/bin/pip install esptool",
        "Or let this command do it: add --install-micropython PATH/TO/IMAGE.bin",
    ]
    return "\n".join(lines)


def install(port: str, image: str) -> None:
    """Erase the board and write the MicroPython image with esptool (InstallError if that
    cannot be done)."""
    if importlib.util.find_spec("esptool") is None:
        raise InstallError(
            "--install-micropython needs esptool, which is not installed",
            "install it into the venv: .venv/bin/pip install esptool",
        )
    for cmd in esptool_commands(port, image):
        cmd = [sys.executable, *cmd[1:]]
        print("running:", " ".join(cmd[1:]))
        if subprocess.run(cmd, check=False).returncode != 0:
            raise InstallError(
                f"esptool failed: {' '.join(cmd[1:])}",
                "hold the board's BOOT button while esptool connects, check the USB cable, "
                "and run the command again",
            )
