"""The durable outbox: every message for the centre is on disk before it counts as handled.

QoS 1 resends only on reconnect, and brokers drop messages when their queues fill
(../shared/DOMAIN.md, MQTT upstream), so the gateway keeps its own copy of everything it owes
upstream and deletes an entry only after the broker's PUBACK (`ack`).

- **Durable.** SQLite in WAL mode with `synchronous=FULL`: when `put` returns, the entry is
  committed and the WAL fsynced; a SIGKILL, or a power cut on storage that honours fsync, cannot
  lose it after that.
- **Stable ids.** Every entry carries an `event_id` that goes upstream with it; a resend after a
  crash carries the same id, so the centre can deduplicate. Putting an id that is still queued
  returns the queued entry instead of adding a second one.
- **Send order** (`pending`): alarms, then faults, then telemetry; within a priority, live entries
  (put since the uplink last connected, see `mark_backlog`) before the backlog, so replaying an
  outage's backlog never delays a new alarm; then put order (`seq`).
- **Bounded** (../shared/STYLE.md lesson 7): at most `max_telemetry` telemetry entries, the oldest
  evicted first and counted (`stats()["evicted"]`). Alarms and faults are never evicted, however
  many there are: the disk is their only bound, and a full disk is an error (`OutboxError`), not a
  silent drop.

Files: the database at `path` and SQLite's `<path>-wal` and `<path>-shm` beside it, nothing else.
The parent directory is the configured storage path and must exist; it is not created here. One
gateway owns an outbox file (the depth counters are kept in memory); calls are serialised by a
lock, so they may come from worker threads (`asyncio.to_thread(outbox.put, ...)` keeps the fsync
off the event loop).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from gateway.model import Priority

__all__ = ["SCHEMA_VERSION", "STATS", "Entry", "Item", "Outbox", "OutboxError"]

# PRAGMA user_version of the database this code writes. Bump it with a migration in _open_schema.
SCHEMA_VERSION = 1

# Keys of Outbox.stats(), counted since the outbox was opened.
STATS = ("put", "acked", "duplicates", "superseded", "evicted")

# One put_many item: (priority, topic, payload, event_id, retain, coalesce), as put's arguments.
Item = tuple[Priority, str, bytes, str | None, bool, bool]

_SCHEMA = (
    # AUTOINCREMENT: a seq is never reused, not even the highest one after it was acked.
    """CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        priority INTEGER NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        retain INTEGER NOT NULL,
        coalesced INTEGER NOT NULL,
        created REAL NOT NULL
    )""",
    # pending() reads each (priority, live/backlog) bucket as a range of this index.
    "CREATE INDEX outbox_order ON outbox (priority, seq)",
    "CREATE INDEX outbox_coalesce ON outbox (topic) WHERE coalesced = 1",
    "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)
_COLUMNS = "seq, event_id, priority, topic, payload, retain, created"
_INSERT = (
    "INSERT INTO outbox (event_id, priority, topic, payload, retain, coalesced, created)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_EVICT = (
    "DELETE FROM outbox WHERE seq IN"
    " (SELECT seq FROM outbox WHERE priority = ? ORDER BY seq LIMIT ?)"
)
_BUSY_TIMEOUT_S = 5.0  # a reader (a status tool) holding the database briefly; not a second writer
_MAX_TOPIC_BYTES = 65535  # MQTT 3.1.1 section 1.5.3: a UTF-8 string has a 16-bit length


class OutboxError(Exception):
    """The outbox cannot do what was asked; the message names the file and what to do."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One message owed upstream."""

    seq: int  # monotonic, assigned on put, never reused, survives restarts
    event_id: str  # stable id carried upstream so the centre can deduplicate
    priority: Priority
    topic: str
    payload: bytes
    retain: bool
    created: float  # wall-clock UTC seconds when put (the injected clock)


class Outbox:
    """The durable, prioritised, bounded queue between the rule core and the MQTT uplink.

    Opening checks the file: a file that is not SQLite, an SQLite database that is not an outbox,
    and an outbox written by a newer gateway (schema version) all raise OutboxError naming the
    path; nothing is ever deleted or overwritten to get going.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_telemetry: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_telemetry < 1:
            raise ValueError(f"max_telemetry must be at least 1, got {max_telemetry}")
        self.path = Path(path)
        self.max_telemetry = max_telemetry
        self._clock = clock
        self._lock = threading.Lock()
        self._mark = 0  # entries with seq <= _mark are backlog (see mark_backlog)
        self._stats = dict.fromkeys(STATS, 0)
        self._depth = dict.fromkeys(Priority, 0)
        self._conn: sqlite3.Connection | None = self._open()

    # -- opening ------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if str(self.path) in ("", ":memory:") or self.path.is_dir():
            raise OutboxError(
                f"outbox {self.path}: not a file path: set the storage path to a file"
            )
        if not self.path.parent.is_dir():
            raise OutboxError(
                f"outbox {self.path}: directory {self.path.parent} does not exist: "
                "create it, or fix the storage path in the config"
            )
        try:
            # isolation_level=None: transactions are begun and committed explicitly below.
            conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _translate(self.path, exc) from exc
        try:
            self._open_schema(conn)
            rows = conn.execute("SELECT priority, count(*) FROM outbox GROUP BY priority")
            for priority, count in rows:
                self._depth[Priority(priority)] = count
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise _translate(self.path, exc) from exc
            raise
        return conn

    def _open_schema(self, conn: sqlite3.Connection) -> None:
        # Check the file before anything writes to it (journal_mode = WAL does).
        version = self._version(conn)
        if version == 0:
            self._refuse_foreign(conn)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise OutboxError(
                f"outbox {self.path}: SQLite cannot use WAL mode there (journal mode {mode!r}): "
                "put the storage path on a local filesystem"
            )
        conn.execute("PRAGMA synchronous = FULL")  # fsync the WAL on every commit
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Checked again inside the write lock, in case another process created it meanwhile.
            if self._version(conn) == 0:
                self._refuse_foreign(conn)
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise

    def _version(self, conn: sqlite3.Connection) -> int:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"outbox {self.path} has schema version {version}, newer than this gateway's "
                f"{SCHEMA_VERSION}: run the newer gateway version, or move the file aside "
                "(its entries are kept there) to start a new outbox"
            )
        return version

    def _refuse_foreign(self, conn: sqlite3.Connection) -> None:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise OutboxError(
                f"outbox {self.path} is an SQLite database but not an outbox: "
                "point the storage path at another file, or move this one aside"
            )

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._conn

    # -- putting ------------------------------------------------------------------------------

    def put(
        self,
        priority: Priority,
        topic: str,
        payload: bytes,
        *,
        event_id: str | None = None,
        retain: bool = False,
        coalesce: bool = False,
    ) -> Entry:
        """Queue one message; it is committed and fsynced when this returns.

        event_id: None gives a new uuid4 hex. An id that is still queued returns the queued entry
        unchanged (counted as a duplicate): the first put wins. An id acked already is queued
        again (the centre deduplicates by id).
        coalesce: queued coalescing entries with the same topic are deleted first (counted as
        superseded, not evicted): the latest retained node state wins. Entries put without
        coalesce, such as alarm events, are never superseded.

        Raises OutboxError when the entry could not be stored (disk full, read-only, corrupt);
        nothing of it is stored then. The caller must not treat the message as handled: in
        particular it must not acknowledge the event to the node, which then sends it again, and
        should retry the put later.
        """
        return self.put_many([(priority, topic, payload, event_id, retain, coalesce)])[0]

    def put_many(self, items: Sequence[Item]) -> list[Entry]:
        """Queue a burst in one transaction (one fsync): all of it is stored, or none of it.

        Items are put's arguments, (priority, topic, payload, event_id, retain, coalesce), applied
        in order; returns one Entry per item. Errors as put.
        """
        checked = [_check(item) for item in items]
        if not checked:
            return []
        with self._lock:
            conn = self._live()
            now = self._clock()
            stats: Counter[str] = Counter()
            depth: Counter[Priority] = Counter()
            try:
                conn.execute("BEGIN IMMEDIATE")
                entries = [self._put_one(conn, now, item, stats, depth) for item in checked]
                telemetry = Priority.TELEMETRY
                excess = self._depth[telemetry] + depth[telemetry] - self.max_telemetry
                if excess > 0:
                    conn.execute(_EVICT, (telemetry, excess))
                    stats["evicted"] += excess
                    depth[telemetry] -= excess
                conn.execute("COMMIT")
            except BaseException as exc:
                _rollback(conn)
                if isinstance(exc, sqlite3.Error):
                    raise _translate(self.path, exc) from exc
                raise
            # Counters move only once the transaction is on disk.
            for key, n in stats.items():
                self._stats[key] += n
            for priority, n in depth.items():
                self._depth[priority] += n
            return entries

    def _put_one(
        self,
        conn: sqlite3.Connection,
        now: float,
        item: Item,
        stats: Counter[str],
        depth: Counter[Priority],
    ) -> Entry:
        priority, topic, payload, event_id, retain, coalesce = item
        if event_id is None:
            event_id = uuid.uuid4().hex
        else:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE event_id = ?", (event_id,)
            ).fetchone()
            if row is not None:
                stats["duplicates"] += 1
                return _entry(row)
        if coalesce:
            old = conn.execute(
                "SELECT priority, count(*) FROM outbox WHERE topic = ? AND coalesced = 1"
                " GROUP BY priority",
                (topic,),
            ).fetchall()
            if old:
                conn.execute("DELETE FROM outbox WHERE topic = ? AND coalesced = 1", (topic,))
                for old_priority, n in old:
                    depth[Priority(old_priority)] -= n
                    stats["superseded"] += n
        cursor = conn.execute(_INSERT, (event_id, priority, topic, payload, retain, coalesce, now))
        seq = cursor.lastrowid
        if seq is None:  # cannot happen after an INSERT into a rowid table; typed Optional
            raise OutboxError(f"outbox {self.path}: SQLite assigned no seq")
        depth[priority] += 1
        stats["put"] += 1
        return Entry(seq, event_id, priority, topic, payload, retain, now)

    # -- sending ------------------------------------------------------------------------------

    def mark_backlog(self) -> None:
        """Everything queued now becomes backlog: pending() sends entries put after this call
        first, within each priority. The uplink calls it on each (re)connect. Kept in memory: after
        a restart nothing is backlog until the uplink connects and calls it."""
        with self._lock:
            rows = self._read(self._live(), "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
            self._mark = rows[0][0] if rows else 0

    def pending(self, limit: int = 100) -> list[Entry]:
        """Up to `limit` queued entries in send order: priority (alarms, faults, telemetry);
        within a priority live entries (put after the last mark_backlog) before the backlog;
        then seq ascending. Entries stay queued until acked."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        with self._lock:
            conn = self._live()
            out: list[Entry] = []
            for priority in Priority:
                if not self._depth[priority]:
                    continue
                for newer in (True, False):
                    if len(out) >= limit:
                        return out
                    rows = self._read(
                        conn,
                        f"SELECT {_COLUMNS} FROM outbox WHERE priority = ?"
                        f" AND seq {'>' if newer else '<='} ? ORDER BY seq LIMIT ?",
                        (priority, self._mark, limit - len(out)),
                    )
                    out += map(_entry, rows)
            return out

    def ack(self, seq: int) -> None:
        """Delete an entry after the broker's PUBACK. An unknown seq (acked already, superseded,
        evicted) is a no-op. Not fsynced by itself: after a power cut an acked entry may be sent
        once more, with its event_id."""
        self.ack_many((seq,))

    def ack_many(self, seqs: Iterable[int]) -> None:
        """ack() for several entries in one transaction."""
        seqs = list(seqs)
        if not seqs:
            return
        with self._lock:
            conn = self._live()
            depth: Counter[Priority] = Counter()
            # An ack is not fsynced: losing one to a power cut only means the entry is sent again,
            # with its id, which QoS 1 allows anyway. The next put's fsync covers it. This keeps a
            # backlog drain from costing one fsync per message.
            try:
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("BEGIN IMMEDIATE")
                for seq in seqs:
                    row = conn.execute(
                        "SELECT priority FROM outbox WHERE seq = ?", (seq,)
                    ).fetchone()
                    if row is not None:
                        conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                        depth[Priority(row[0])] += 1
                conn.execute("COMMIT")
            except BaseException as exc:
                _rollback(conn)
                if isinstance(exc, sqlite3.Error):
                    raise _translate(self.path, exc) from exc
                raise
            finally:
                with suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous = FULL")
            for priority, n in depth.items():
                self._depth[priority] -= n
                self._stats["acked"] += n

    # -- figures and state --------------------------------------------------------------------

    def depth(self) -> dict[Priority, int]:
        """Queued entries per priority (every priority present)."""
        with self._lock:
            return dict(self._depth)

    def stats(self) -> dict[str, int]:
        """Counters since the outbox was opened: put (new entries stored), acked, duplicates
        (puts of a queued event_id), superseded (by coalescing), evicted (telemetry over the
        bound)."""
        with self._lock:
            return dict(self._stats)

    def get_state(self, key: str) -> str | None:
        """A value set_state stored, or None."""
        with self._lock:
            rows = self._read(self._live(), "SELECT value FROM state WHERE key = ?", (key,))
            return str(rows[0][0]) if rows else None

    def set_state(self, key: str, value: str) -> None:
        """Store a small value durably (committed and fsynced on return), in the outbox's
        database: replay counters, last sequence numbers."""
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("state keys and values are str")
        with self._lock:
            conn = self._live()
            try:
                conn.execute(
                    "INSERT INTO state (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            except sqlite3.Error as exc:
                raise _translate(self.path, exc) from exc

    def _read(self, conn: sqlite3.Connection, sql: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _translate(self.path, exc) from exc

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (idempotent). SQLite checkpoints the WAL into the file."""
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check(item: Item) -> Item:
    """Refuse what the broker would refuse for ever, before it can block the head of the queue."""
    priority, topic, payload, event_id, retain, coalesce = item
    priority = Priority(priority)
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"topic must be a non-empty str, got {topic!r}")
    if "+" in topic or "#" in topic or "\0" in topic:
        raise ValueError(f"topic {topic!r}: no wildcards (+ #) or NUL in a topic to publish to")
    if len(topic.encode()) > _MAX_TOPIC_BYTES:
        raise ValueError(f"topic longer than {_MAX_TOPIC_BYTES} bytes")
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
    if event_id is not None and (not isinstance(event_id, str) or not event_id):
        raise ValueError(f"event_id must be a non-empty str or None, got {event_id!r}")
    return (priority, topic, bytes(payload), event_id, bool(retain), bool(coalesce))


def _entry(row: tuple[int, str, int, str, bytes, int, float]) -> Entry:
    seq, event_id, priority, topic, payload, retain, created = row
    return Entry(seq, event_id, Priority(priority), topic, payload, bool(retain), created)


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may have rolled back already (SQLITE_FULL can); a failed rollback leaves nothing
    # committed either.
    with suppress(sqlite3.Error):
        conn.rollback()


def _translate(path: Path, exc: sqlite3.Error) -> OutboxError:
    """An sqlite3 error as an OutboxError that names the file and what to do."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name == "SQLITE_FULL" or "is full" in text:
        what = "disk full, nothing was stored: free space on that filesystem"
    elif name.startswith("SQLITE_READONLY") or "readonly" in text:
        what = "read-only, nothing was stored: make the file and its directory writable"
    elif name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text:
        what = (
            "not a readable outbox database (corrupt, or another kind of file): stop the "
            "gateway, move the file aside (with any -wal and -shm beside it) and start again; "
            "a new outbox is created and the old file is kept for inspection"
        )
    elif name.startswith("SQLITE_CANTOPEN"):
        what = "cannot be opened: check that the path and its directory are readable and writable"
    elif name.startswith("SQLITE_BUSY") or "locked" in text:
        what = "locked by another process: is a second gateway using the same storage path?"
    elif name.startswith("SQLITE_IOERR"):
        what = "I/O error: check the storage device (a failing SD card?) and the kernel log"
    else:
        what = "SQLite error"
    return OutboxError(f"outbox {path}: {what} ({text})")
