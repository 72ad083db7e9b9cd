"""The running gateway's state on disk, for `firelane status`.

The gateway writes a small JSON snapshot next to its database every few seconds (atomically:
a temporary file, then a rename), so `firelane status` needs no socket into the service and
works even when the service is wedged: an old `written` time is itself the answer.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STALE_S = 30.0  # a snapshot older than this means the gateway is not running (or is stuck)


def status_path(database: Path) -> Path:
    """Where the gateway whose outbox is `database` writes its status."""
    return database.with_name(database.stem + ".status.json")


def write_status(path: Path, snapshot: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(snapshot, sort_keys=True, indent=1))
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any]:
    """The snapshot, or ValueError saying why there is none and what to do."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"{path}: no status: the gateway has not run with this config yet "
            "(start it: systemctl start firelane-gateway)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{path}: unreadable status ({exc}); it is rewritten every few s"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: unreadable status (not a JSON object)")
    return data


def render(snapshot: dict[str, Any], now: float | None = None) -> str:
    """A short report for people: uplink, outbox, buses, nodes."""
    now = time.time() if now is None else now
    age = now - float(snapshot.get("written", 0.0))
    lines = [
        f"gateway {snapshot.get('gateway_id', '?')} ({snapshot.get('site', '?')}), "
        f"version {snapshot.get('version', '?')}, up {int(snapshot.get('uptime_s', 0))} s",
    ]
    if age > STALE_S:
        lines.append(
            f"WARNING: this status is {int(age)} s old: the gateway is not running or stuck"
        )
    up = snapshot.get("uplink", {})
    lines.append(
        f"uplink: {'connected' if up.get('connected') else 'DISCONNECTED'}"
        f", published {up.get('published', 0)}, reconnects {up.get('reconnects', 0)}"
        + (f", last error: {up['last_error']}" if up.get("last_error") else "")
    )
    depth = snapshot.get("outbox", {})
    lines.append(
        "outbox: "
        + ", ".join(f"{k} {v}" for k, v in sorted(depth.items()))
        + (
            f" (health: {', '.join(snapshot['stalled'])} stalled)"
            if snapshot.get("stalled")
            else ""
        )
    )
    for bus in snapshot.get("buses", []):
        lines.append(
            f"bus {bus.get('name')}: {bus.get('endpoint')}, {bus.get('state', '?')}"
            + (f", utilisation {bus['utilisation']:.0%}" if "utilisation" in bus else "")
            + (f", cycle {bus['cycle_s'] * 1000:.0f} ms" if bus.get("cycle_s") else "")
        )
    nodes = snapshot.get("nodes", [])
    if nodes:
        lines.append(f"{'node':<16} {'house':<24} {'zone':<8} {'state':<10} last seen")
        for n in nodes:
            seen = n.get("last_seen_s")
            ago = "never" if seen is None else f"{int(now - float(seen))} s ago"
            lines.append(
                f"{n.get('name', '?'):<16} {n.get('house', ''):<24.24} {n.get('zone', ''):<8.8} "
                f"{n.get('state', '?'):<10} {ago}"
            )
    return "\n".join(lines)
