"""An uplink in a process of its own, for the test that SIGKILLs it (the last will):

python -m tests.gateway.uplink_child PORT OUTBOX_PATH GATEWAY_ID
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.messages import Command, CommandResult
from gateway.outbox import Outbox
from gateway.uplink import Uplink, UplinkSettings


async def _refuse(command: Command) -> CommandResult:
    return CommandResult(False, "no nodes here")


async def main(port: int, path: Path, gateway_id: str) -> None:
    settings = UplinkSettings(
        host="127.0.0.1", port=port, gateway_id=gateway_id, site="test", keepalive_s=5
    )
    with Outbox(path) as outbox:
        async with Uplink(settings, outbox, nodes=frozenset(), on_command=_refuse) as uplink:
            await uplink.run()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
