"""Run the node firmware, unchanged, on an emulated board: `python -m hil_tests.emulator` and
`firelane node emulate`.

The process is one node. Its flash is a directory (--fs, the working directory of the firmware,
where config.json lives); its RS-485 port is a pseudo-terminal (--serial); a control socket
(--control, control.py) drives its sensors and power. On stdout it prints only JSON lines,
events for the test or script that started it:

    {"event": "ready", "serial": PATH, "device": "/dev/pts/N", "control": SOCK, "pid": N, ...}
    {"event": "boot", "cause": "PWRON_RESET", "why": "power on", "boots": 1}
    {"event": "uart", "baud": 19200, "bits": 8, "parity": 0, "stop": 1}
                                         the firmware (re)configured its UART: it listens now
    {"event": "reset", "cause": "WDT_RESET", "why": "watchdog"}
    {"event": "power", "on": false}
    {"event": "crash", "error": "..."}   the firmware raised; the traceback went to stderr
    {"event": "halt"}                    main.py returned (maintenance mode): the REPL runs
    {"event": "halt", "interrupted": true}   Ctrl-C on the console stopped the firmware
    {"event": "exit"}

The firmware's own print() goes to stderr, as a real node's goes to its USB console; with
--console PATH the board also has that USB console: a second pseudo-terminal that speaks
MicroPython's REPL protocol (console.py), so mpremote can interrupt the firmware, run code in
the flash directory, copy files and reset the board.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import contextlib
import ctypes
import importlib.util
import io
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hil_tests.emulator import machine, repl, timecompat
from hil_tests.emulator.console import Console, ConsolePort
from hil_tests.emulator.control import ControlServer
from hil_tests.emulator.serialport import SerialLine
from hil_tests.emulator.sim import CAUSE_NAMES, SOFT_RESET, ResetSignal, SimBoard

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
PROTOCOL = ROOT / "protocol"
BAUDS = (9600, 19200, 38400, 57600, 115200)
DEFAULT_ADDRESS = 247  # an uncommissioned node (firmware/config.py)
UID_PREFIX = bytes([0x02, 0xF1, 0x1A])  # a locally administered MAC: 02:F1:1A:xx:xx:xx
STUCK_S = 0.5  # firmware still running this long after a reset is interrupted by force


@dataclass(frozen=True)
class Options:
    """The command line, checked."""

    serial: Path
    fs: Path
    address: int | None = None
    baud: int | None = None
    control: Path | None = None
    uid: bytes | None = None
    console: Path | None = None


DESCRIPTION = (
    "Run the node firmware, unchanged, on an emulated ESP32 board. Prints JSON event lines on "
    "stdout; a control socket drives its sensors and power."
)
SERIAL_HELP = (
    "the node's RS-485 port: a character device to open (e.g. a virtual bus's pty end), or a "
    "path where a symlink to a new pseudo-terminal is made for a Modbus master to open"
)
FS_HELP = "the node's flash: a directory, the firmware's working directory (created if missing)"
ADDRESS_HELP = "Modbus address 1-247, written to a new config.json (commissioning)"
BAUD_HELP = "baud rate, written to a new config.json: " + ", ".join(map(str, BAUDS))
CONTROL_HELP = "the control socket (JSON lines; default FS/control.sock)"
UID_HELP = "machine.unique_id() as 12 hex digits (default: 02f11a0000 + the address)"
CONSOLE_HELP = (
    "the board's USB console: a symlink to a new pseudo-terminal speaking MicroPython's REPL "
    "protocol (for mpremote and `firelane node flash`)"
)


def build_parser(prog: str = "python -m hil_tests.emulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options, shared with `firelane node emulate` (gateway/cli.py spells them out too;
    hil_tests/test_emulator_runner.py checks that the two agree)."""
    parser.add_argument("--serial", required=True, type=Path, help=SERIAL_HELP)
    parser.add_argument("--fs", required=True, type=Path, help=FS_HELP)
    parser.add_argument("--address", type=int, help=ADDRESS_HELP)
    parser.add_argument("--baud", type=int, help=BAUD_HELP)
    parser.add_argument("--control", type=Path, help=CONTROL_HELP)
    parser.add_argument("--uid", help=UID_HELP)
    parser.add_argument("--console", type=Path, help=CONSOLE_HELP)


def main(argv: list[str] | None = None, prog: str = "python -m hil_tests.emulator") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        options = check(
            args.serial, args.fs, args.address, args.baud, args.control, args.uid, args.console
        )
    except ValueError as exc:
        parser.error(str(exc))
    return run(options)


def check(
    serial: Path,
    fs: Path,
    address: int | None,
    baud: int | None,
    control: Path | None,
    uid: str | None,
    console: Path | None = None,
) -> Options:
    """Options from command-line values, or ValueError naming the option and what it takes."""
    if address is not None and not 1 <= address <= 247:
        raise ValueError(f"--address {address}: a node address is 1-247")
    if baud is not None and baud not in BAUDS:
        raise ValueError(f"--baud {baud}: one of {', '.join(map(str, BAUDS))}")
    raw = None
    if uid is not None:
        try:
            raw = bytes.fromhex(uid.replace(":", ""))
        except ValueError:
            raw = b""
        if len(raw) != 6:
            raise ValueError(f"--uid {uid}: six bytes as 12 hex digits, e.g. 02f11a000011")
    return Options(serial, fs, address, baud, control, raw, console)


class Events:
    """JSON lines on the process's real stdout, from any thread."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields})
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._stream.close()


def run(options: Options) -> int:
    """Run one emulated node until SIGTERM or SIGINT; 0 on a clean stop."""
    fs = options.fs.resolve()
    fs.mkdir(parents=True, exist_ok=True)
    commission(fs, options.address, options.baud)
    uid = options.uid or derive_uid(options.address or _configured_address(fs))
    serial = options.serial.absolute()
    control = (options.control or fs / "control.sock").absolute()
    try:
        line = SerialLine(serial)
    except OSError as exc:
        print(f"emulator: cannot use --serial {serial}: {exc}", file=sys.stderr)
        return 2
    events = Events(os.fdopen(os.dup(sys.stdout.fileno()), "w"))
    saved_stdout, saved_cwd, saved_path = sys.stdout, os.getcwd(), list(sys.path)
    undo: list[Callable[[], None]] = []
    board = SimBoard(uid, line)
    router = repl.StdoutRouter(sys.stderr)
    port: ConsolePort | None = None
    try:
        undo += [machine.install(board), timecompat.install(board), board.capture_loops()]
        os.chdir(fs)
        sys.path[:] = [str(fs), str(FIRMWARE), str(ROOT)] + [
            p for p in sys.path if p not in ("", str(fs), str(FIRMWARE), str(ROOT))
        ]
        sys.stdout = router  # the firmware's print() is console output, not an event
        node = Node(board, fs, events, serial, line.device)
        node.router = router
        if options.console is not None:
            try:
                port = ConsolePort(options.console.absolute(), node)
            except OSError as exc:
                print(f"emulator: cannot use --console {options.console}: {exc}", file=sys.stderr)
                return 2
            node.console, node.console_path = port.console, port.path
            router.console = port.console.write
            port.start()
        return asyncio.run(_serve(node, control, events))
    finally:
        board.close()
        line.close()
        if port is not None:
            port.close()
        with contextlib.suppress(FileNotFoundError):
            if control.is_socket():
                control.unlink()
        sys.stdout = saved_stdout
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for fn in reversed(undo):
            fn()
        events.emit("exit")
        events.close()


async def _serve(node: Node, control: Path, events: Events) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = ControlServer(node.board, node.state)
    await server.start(control)
    try:

        def firmware_thread_ended() -> None:
            loop.call_soon_threadsafe(stop.set)

        node.on_exit = firmware_thread_ended
        events.emit(
            "ready",
            serial=str(node.serial),
            device=node.device,
            control=str(control),
            pid=os.getpid(),
            uid=node.board.uid.hex(),
            **({"console": str(node.console_path)} if node.console_path else {}),
        )
        node.start()
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.close()
        node.board.stop()
        await asyncio.to_thread(node.join, 3.0)
    return 1 if node.failed else 0


def commission(fs: Path, address: int | None, baud: int | None) -> None:
    """Stand in for commissioning: a new flash gets the given address and baud rate."""
    path = fs / "config.json"
    if (address is None and baud is None) or path.exists():
        return
    cfg: dict[str, int] = {}
    if address is not None:
        cfg["address"] = address
    if baud is not None:
        cfg["baud"] = baud
    path.write_text(json.dumps(cfg) + "\n")


def _configured_address(fs: Path) -> int:
    try:
        address = json.loads((fs / "config.json").read_text()).get("address")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_ADDRESS
    return address if isinstance(address, int) and 1 <= address <= 247 else DEFAULT_ADDRESS


def derive_uid(address: int) -> bytes:
    """A stable unique_id() for a node, so its node id is the same on every run."""
    return UID_PREFIX + bytes([0, 0, address & 0xFF])


class Node:
    """The CPU: runs boot.py and main.py in a thread, again after every reset."""

    def __init__(
        self, board: SimBoard, fs: Path, events: Events, serial: Path, device: str
    ) -> None:
        self.board = board
        self.fs = fs
        self.events = events
        self.serial = serial
        self.device = device
        self.status = "off"  # booting, running, halted (main.py returned), crashed, resetting, off
        self.mode: str | None = None  # startup.mode by name, once boot.py has run
        self.failed = False
        self.on_exit: Callable[[], None] | None = None
        self.console: Console | None = None  # the USB console (--console), if any
        self.console_path: Path | None = None
        self.router: repl.StdoutRouter | None = None
        self._ns: dict[str, Any] = {}  # __main__ of the last boot: the REPL's globals
        self._thread = threading.Thread(target=self._main, name="node.firmware", daemon=True)
        self._inject = threading.Lock()
        self._in_firmware = False
        self._interrupted_at = 0.0
        board.on_reset = self._on_reset
        board.on_pending = self._on_pending
        board.on_uart = lambda cfg: events.emit("uart", **cfg)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _main(self) -> None:
        self.board.firmware_thread = threading.get_ident()
        try:
            while True:
                try:
                    self._leave()
                    if self.board.wait_boot() is None:
                        return
                    self._boot()
                except ResetSignal:
                    continue  # a reset that arrived on the way out of the firmware
        except BaseException:
            self.failed = True
            print("emulator: the emulated CPU failed:", file=sys.stderr)
            traceback.print_exc()
        finally:
            self.status = "off"
            if self.on_exit is not None:
                with contextlib.suppress(RuntimeError):  # the emulator's loop already ended
                    self.on_exit()

    def _boot(self) -> None:
        board = self.board
        board.begin_boot()
        self.status, self.mode = "booting", None
        self.events.emit(
            "boot", cause=CAUSE_NAMES[board.cause], why=board.boot_why, boots=board.boots
        )
        self._purge()
        self._load_pin_map()
        self._purge()
        ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self._ns = ns
        console = self.console
        if console is not None:
            console.booting(soft=board.cause == SOFT_RESET)
        # MicroPython runs boot.py, then main.py even when boot.py raised, in one namespace;
        # main.py only when the REPL is the friendly one (not after a raw-REPL soft reset).
        if self._exec("boot.py", ns) == "reset":
            return
        self._read_startup()
        self.status = "running"
        if console is not None and not console.run_main():
            outcome = "ok"
        else:
            outcome = self._exec("main.py", ns)
        if outcome in ("ok", "interrupted"):
            self.status = "halted"
            self.events.emit("halt", **({"interrupted": True} if outcome != "ok" else {}))
        if outcome != "reset" and console is not None:
            console.repl()

    def _exec(self, name: str, ns: dict[str, Any]) -> str:
        """Run one of the firmware's top-level files: "ok", "reset" or "error"."""
        path = self.fs / name if (self.fs / name).exists() else FIRMWARE / name
        if not path.exists():
            return "ok"
        code = compile(path.read_text(), str(path), "exec")
        gen = self.board.gen
        with self._inject:
            self._in_firmware = True
        try:
            exec(code, ns)
            return "ok"
        except ResetSignal:
            return "reset"
        except SystemExit:  # sys.exit() on MicroPython ends in a soft reset
            self.board.request_reset(SOFT_RESET, f"SystemExit in {name}")
            return "reset"
        except KeyboardInterrupt as exc:  # Ctrl-C on the console
            if self.board.gen != gen or self.board.pending is not None:
                return "reset"
            self._console_write(repl.traceback_text(exc))
            return "interrupted"
        except BaseException as exc:
            if self.board.gen != gen or self.board.pending is not None:
                return "reset"  # an error while the firmware was being torn down
            print(f"emulator: uncaught exception in {name}:", file=sys.stderr)
            traceback.print_exc()
            self._console_write(repl.traceback_text(exc))
            self.status = "crashed"  # before the event: whoever reacts to it sees this state
            self.events.emit("crash", error=f"{type(exc).__name__}: {exc}")
            return "error"
        finally:
            self._leave()

    def _console_write(self, text: str) -> None:
        if self.console is not None:
            self.console.write(text)

    # The console's side of the CPU (console.Cpu).
    def interrupt(self) -> None:
        """Ctrl-C: KeyboardInterrupt in the firmware, wherever it is."""
        with self._inject:
            if self._in_firmware and self._thread.ident is not None:
                _async_raise(self._thread.ident, KeyboardInterrupt)

    def soft_reset(self) -> None:
        self.board.request_reset(SOFT_RESET, "soft reset (Ctrl-D)")

    def execute(self, code: str, single: bool) -> tuple[str, str] | None:
        """REPL code, run in the flash directory with the last boot's globals: (stdout,
        traceback), or None when it reset the board (machine.reset(), sys.exit())."""
        router = self.router
        buf = router.capture() if router is not None else io.StringIO()
        ns = self._ns
        ns["__builtins__"] = repl.BUILTINS
        error = ""
        try:
            exec(compile(code, "<stdin>", "single" if single else "exec"), ns)
        except ResetSignal:
            return None
        except SystemExit:
            self.board.request_reset(SOFT_RESET, "sys.exit() at the REPL")
            return None
        except BaseException as exc:
            error = repl.traceback_text(exc)
        finally:
            if router is not None:
                router.release()
        return buf.getvalue(), error

    def _leave(self) -> None:
        with self._inject:
            self._in_firmware = False
            _async_raise(threading.get_ident(), None)  # drop an interruption not yet delivered

    def _on_pending(self, overdue_s: float) -> None:
        """From the board's ticker while a reset waits: interrupt firmware that ignores it
        (a busy loop that neither yields to asyncio nor touches the hardware)."""
        now = time.monotonic()
        if overdue_s < STUCK_S or now - self._interrupted_at < STUCK_S:
            return
        with self._inject:
            if self._in_firmware and self._thread.ident is not None:
                self._interrupted_at = now
                print("emulator: firmware ignored a reset; interrupting it", file=sys.stderr)
                _async_raise(self._thread.ident, ResetSignal)

    def _on_reset(self, cause: int, why: str) -> None:
        self.status = "resetting"
        if self.console is not None:
            self.console.at_repl = False  # no lock: this may run under the board's lock
        if why == "power off":
            self.events.emit("power", on=False)
        elif why != "shutdown":
            self.events.emit("reset", cause=CAUSE_NAMES[cause], why=why)

    def _purge(self) -> None:
        """Forget every module loaded from the flash, firmware/ or protocol/: a reset starts
        the interpreter from nothing."""
        roots = tuple(str(p) + os.sep for p in (self.fs, FIRMWARE, PROTOCOL))
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and os.path.abspath(file).startswith(roots):
                del sys.modules[name]

    def _load_pin_map(self) -> None:
        """The pin map and calibration the firmware will use, from its own config module."""
        path = self.fs / "config.py" if (self.fs / "config.py").exists() else FIRMWARE / "config.py"
        try:
            spec = importlib.util.spec_from_file_location("_emulated_node_config", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            cfg = module.load()
            self.board.set_pin_map(cfg.pins, cfg.cal)
        except Exception:
            print(f"emulator: no pin map from {path}; analog inputs read 0 V:", file=sys.stderr)
            traceback.print_exc()
            self.board.set_pin_map({}, {})

    def _read_startup(self) -> None:
        """After boot.py: the mode it chose and the config it settled on (safe mode drops a
        custom pin map), when the firmware's startup module says so."""
        startup = sys.modules.get("startup")
        mode = getattr(startup, "mode", None)
        for name in ("NORMAL", "MAINTENANCE", "SAFE"):
            if mode is not None and getattr(startup, name, None) == mode:
                self.mode = name.lower()
        cfg = getattr(startup, "cfg", None)
        pins, cal = getattr(cfg, "pins", None), getattr(cfg, "cal", None)
        if isinstance(pins, dict) and isinstance(cal, dict):
            self.board.set_pin_map(pins, cal)

    def state(self) -> dict[str, Any]:
        """The board as the control socket reports it ({"get": "state"})."""
        board = self.board
        now = time.monotonic()
        with board.lock:
            outputs: dict[str, Any] = {
                role: {"gpio": board.pins[role], "level": 0, "transitions": 0, "high_ms": 0}
                for role in ("led", "buzzer", "de")
                if board.pins.get(role, -1) >= 0
            }
            for gpio, out in sorted(board.outputs.items()):
                high = out.high_s + (now - out.high_since if out.level else 0.0)
                outputs[board.role(gpio) or f"gpio{gpio}"] = {
                    "gpio": gpio,
                    "level": out.level,
                    "transitions": out.transitions,
                    "high_ms": round(high * 1000),
                }
            return {
                "powered": board.powered,
                "firmware": self.status if board.powered else "off",
                "mode": self.mode,
                "boots": board.boots,
                "reset_cause": CAUSE_NAMES[board.cause],
                "boot_why": board.boot_why,
                "uptime_ms": board.now_us() // 1000 if board.powered else 0,
                "inputs": dict(board.inputs),
                "outputs": outputs,
                "uart": {**board.uart_config, **board.uart_stats},
                "watchdog_ms": board.wdt_timeout_ms(),
                "rtc_memory": board.rtc_memory.hex(),
                "uid": board.uid.hex(),
                "pins": dict(board.pins),
                "serial": str(self.serial),
                "device": self.device,
            }


def _async_raise(ident: int, exc: type[BaseException] | None) -> None:
    """Raise exc in thread ident at its next bytecode (None: cancel a pending one)."""
    arg = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), arg)
