"""The emulated board's control socket: drive its inputs and power, read its outputs.

A Unix-domain socket speaking JSON lines: one request object per line in, one reply object per
line out, in order, as many as the client likes on one connection.

    {"set": {"smoke_pct": 3.0, "leakage_ma": 350, "button": true}}   inputs (inputs.py)
    {"power": "off"} / {"power": "on"}     cut power (RTC memory lost) / restore it
    {"brownout": true}                     reset reported as PWRON_RESET, RTC memory kept
    {"reset": "hard"} / {"reset": "soft"}  HARD_RESET / SOFT_RESET
    {"get": "state"}                       outputs, inputs, boots, reset cause, mode, UART

Replies are {"ok": true, ...} or {"ok": false, "error": "..."} naming what was wrong; a bad
request never closes the connection. Control is the client for tests and scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hil_tests.emulator import inputs as inp
from hil_tests.emulator import sim

MAX_LINE = 65536  # bytes in one request line
_REQUESTS = ("set", "power", "brownout", "reset", "get")

Reply = dict[str, Any]


class ControlError(Exception):
    """The emulator refused a control request; the message is its error."""


def handle(board: sim.SimBoard, request: object, state: Callable[[], dict[str, Any]]) -> Reply:
    """One reply for one parsed request. state() gives the board's state for {"get": "state"}."""
    if not isinstance(request, dict) or len(request) != 1:
        return _error(
            f"a request is an object with exactly one of {', '.join(_REQUESTS)}, "
            f'e.g. {{"get": "state"}}; got {_show(request)}'
        )
    ((verb, arg),) = request.items()
    if verb == "set":
        try:
            changes = inp.validate(arg)
        except inp.InputError as exc:
            return _error(str(exc))
        with board.lock:
            board.inputs = {**board.inputs, **changes}
            return {"ok": True, "inputs": dict(board.inputs)}
    if verb == "power":
        if arg not in ("on", "off"):
            return _error(f'\'power\' takes "on" or "off", not {_show(arg)}')
        board.power(arg == "on")
        return {"ok": True, "powered": board.powered}
    if verb == "brownout":
        if arg is not True:
            return _error(f"'brownout' takes true, not {_show(arg)}")
        if not board.brownout():
            return _error("the board is powered off; a brownout needs power")
        return {"ok": True, "boots": board.boots}
    if verb == "reset":
        causes = {"hard": sim.HARD_RESET, "soft": sim.SOFT_RESET}
        if arg not in causes:
            return _error(f'\'reset\' takes "hard" or "soft", not {_show(arg)}')
        if not board.request_reset(causes[arg], f"control: {arg} reset"):
            return _error('the board is powered off; use {"power": "on"}')
        return {"ok": True, "boots": board.boots}
    if verb == "get":
        if arg != "state":
            return _error(f"'get' takes \"state\", not {_show(arg)}")
        return {"ok": True, "state": state()}
    return _error(f"unknown request {verb!r}; known requests: {', '.join(_REQUESTS)}")


def _error(message: str) -> Reply:
    return {"ok": False, "error": message}


def _show(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ControlServer:
    """The listening socket and its connections."""

    def __init__(self, board: sim.SimBoard, state: Callable[[], dict[str, Any]]) -> None:
        self._board = board
        self._state = state
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, path: Path) -> None:
        """Listen on path (a stale socket file there is replaced)."""
        with contextlib.suppress(FileNotFoundError):
            if path.is_socket():
                path.unlink()
        self._server = await asyncio.start_unix_server(
            self._client, path=_short(path), limit=MAX_LINE
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    line = exc.partial  # the last request may lack its newline
                    if not line.strip():
                        break
                except asyncio.LimitOverrunError:
                    writer.write(b'{"ok": false, "error": "request line too long"}\n')
                    break
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                except ValueError as exc:
                    reply = _error(f"bad JSON: {exc}")
                else:
                    reply = handle(self._board, request, self._state)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def _short(path: Path) -> str:
    """path, relative when that is shorter: a socket address holds only 107 bytes."""
    rel = os.path.relpath(path)
    return rel if len(rel) < len(str(path)) else str(path)


class Control:
    """Client of one emulated board's control socket (blocking, one connection).

    >>> with Control(flash / "control.sock") as board:
    ...     board.set(leakage_ma=500)
    ...     board.state()["outputs"]["buzzer"]["level"]
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = 5.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def request(self, request: dict[str, Any]) -> Reply:
        """Send one request; its reply, or ControlError with the emulator's message."""
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                self.close()
                raise ControlError("the emulator closed the control connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        reply: Reply = json.loads(line)
        if not reply.get("ok"):
            raise ControlError(str(reply.get("error")))
        return reply

    def set(self, **inputs: object) -> dict[str, Any]:
        """Drive inputs (see inputs.py for names and ranges); returns all inputs."""
        inputs_now: dict[str, Any] = self.request({"set": inputs})["inputs"]
        return inputs_now

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.request({"get": "state"})["state"]
        return state

    def power(self, on: bool) -> None:
        self.request({"power": "on" if on else "off"})

    def brownout(self) -> None:
        self.request({"brownout": True})

    def reset(self, kind: str = "hard") -> None:
        self.request({"reset": kind})

    def wait_state(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, poll_s: float = 0.02
    ) -> dict[str, Any]:
        """Poll state() until predicate holds; TimeoutError with the last state after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"board state did not get there in {timeout} s: {state}")
            time.sleep(poll_s)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf = b""

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
