"""Commands from the centre, as the uplink executes them: validated, run at most once per id,
bounded in time, always answered (docs/mqtt.md, Commands). No MQTT here: `answer` takes what
arrived on the command topic and returns the result message for `command/result`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Set

from gateway.messages import (
    Command,
    CommandError,
    CommandResult,
    Direct,
    command_result,
    parse_command,
)

__all__ = ["CommandDesk"]

log = logging.getLogger("firelane.uplink")

RESULTS_KEPT = 64  # results remembered by command id, so a resent command is not run twice


class CommandDesk:
    """Turns command messages into results.

    - Rejected before any node is involved: what parse_command refuses (bad JSON, unknown
      command or node, missing id...) and retained commands (they would run again on every
      reconnect).
    - Each id runs once: a QoS 1 duplicate or the centre's retry gets the first result again
      (the last RESULTS_KEPT ids), or waits for the run still in progress.
    - A run is bounded by timeout_s and its exceptions become a "failed" result. It runs in a
      task of its own: an uplink session that ends meanwhile (the link dropped) does not cut a
      node write in half, and the result waits for the retry. aclose() cancels what still runs.
    """

    def __init__(
        self,
        nodes: Set[str],
        on_command: Callable[[Command], Awaitable[CommandResult]],
        *,
        timeout_s: float,
        gateway_id: str,
        prefix: str,
        wall: Callable[[], float],
    ) -> None:
        self._nodes = nodes
        self._on_command = on_command
        self._timeout_s = timeout_s
        self._gateway_id = gateway_id
        self._prefix = prefix
        self._wall = wall
        self._results: OrderedDict[str, Direct] = OrderedDict()
        self._running: dict[str, asyncio.Task[Direct]] = {}
        self.executed = 0  # ran to a result, ok or failed
        self.rejected = 0

    async def answer(self, payload: bytes | object, retain: bool) -> Direct:
        """The result message for one message received on the command topic."""
        try:
            if not isinstance(payload, bytes):  # paho hands bytes; aiomqtt types it wider
                raise CommandError("payload is not bytes")
            command = parse_command(payload, self._nodes)
            if retain:
                raise CommandError("retained: commands must not be retained", command.id)
        except CommandError as exc:
            self.rejected += 1
            log.warning("uplink: command rejected: %s", exc.reason)
            return self._result(exc.command_id, "rejected", exc.reason, None)
        if command.id in self._results:
            self._results.move_to_end(command.id)
            return self._results[command.id]
        task = self._running.get(command.id)
        if task is None:
            task = asyncio.create_task(self._run(command), name=f"uplink.command[{command.id}]")
            self._running[command.id] = task
        return await asyncio.shield(task)

    async def aclose(self) -> None:
        """Cancel the commands still running (the uplink is closing)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, command: Command) -> Direct:
        try:
            try:
                async with asyncio.timeout(self._timeout_s):
                    result = await self._on_command(command)
            except TimeoutError:
                result = CommandResult(False, f"no answer within {self._timeout_s} s")
            except Exception as exc:
                log.exception("uplink: command %s failed", command.id)
                result = CommandResult(False, f"{type(exc).__name__}: {exc}")
            self.executed += 1
            status = "ok" if result.ok else "failed"
            direct = self._result(command.id, status, result.detail, command)
            self._results[command.id] = direct
            while len(self._results) > RESULTS_KEPT:
                self._results.popitem(last=False)
            return direct
        finally:
            del self._running[command.id]

    def _result(
        self, command_id: str | None, status: str, detail: str, command: Command | None
    ) -> Direct:
        return command_result(
            command_id,
            status=status,
            detail=detail,
            command=command.command if command else None,
            node=command.node if command else None,
            gateway_id=self._gateway_id,
            prefix=self._prefix,
            utc=self._wall(),
        )
