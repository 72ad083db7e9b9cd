"""The durable outbox: send order, acks, restarts, ids, coalescing, bounds, bad files, SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from gateway.model import Priority
from gateway.outbox import SCHEMA_VERSION, Entry, Item, Outbox, OutboxError

ROOT = Path(__file__).resolve().parents[2]
ALARM, FAULT, TELEMETRY = Priority.ALARM, Priority.FAULT, Priority.TELEMETRY


class Clock:
    """Wall-clock seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
def outbox(path: Path) -> Iterator[Outbox]:
    with Outbox(path) as ob:
        yield ob


def ids(entries: list[Entry]) -> list[str]:
    return [e.event_id for e in entries]


def sql(outbox: Outbox, statement: str) -> int:
    """Run a statement on the outbox's own connection (pragmas are per connection)."""
    conn = outbox._conn
    if conn is None:
        raise AssertionError("outbox closed")
    row = conn.execute(statement).fetchone()
    return int(row[0]) if row else 0


# -- order ------------------------------------------------------------------------------------


def test_pending_sends_alarms_then_faults_then_telemetry_each_in_put_order(outbox: Outbox) -> None:
    for event_id, priority in [
        ("t1", TELEMETRY), ("f1", FAULT), ("a1", ALARM), ("t2", TELEMETRY), ("a2", ALARM),
        ("f2", FAULT),
    ]:  # fmt: skip
        outbox.put(priority, "site/gw/x", b"{}", event_id=event_id)
    entries = outbox.pending()
    assert ids(entries) == ["a1", "a2", "f1", "f2", "t1", "t2"]
    assert [e.seq for e in entries] == [3, 5, 2, 6, 1, 4]


def test_live_entries_go_before_the_backlog_within_each_priority(outbox: Outbox) -> None:
    for event_id, priority in [("a1", ALARM), ("t1", TELEMETRY), ("f1", FAULT), ("a2", ALARM)]:
        outbox.put(priority, "site/gw/x", b"", event_id=event_id)
    outbox.mark_backlog()  # the uplink reconnected: all of the above is backlog now
    for event_id, priority in [("t2", TELEMETRY), ("a3", ALARM), ("f2", FAULT), ("a4", ALARM)]:
        outbox.put(priority, "site/gw/x", b"", event_id=event_id)
    assert ids(outbox.pending()) == ["a3", "a4", "a1", "a2", "f2", "f1", "t2", "t1"]
    # The next reconnect makes everything backlog again: plain seq order within a priority.
    outbox.mark_backlog()
    outbox.put(FAULT, "site/gw/x", b"", event_id="f3")
    assert ids(outbox.pending()) == ["a1", "a2", "a3", "a4", "f3", "f1", "f2", "t1", "t2"]


def test_limit_cuts_across_priorities_and_the_backlog(outbox: Outbox) -> None:
    for i in range(3):
        outbox.put(ALARM, "a", b"", event_id=f"old{i}")
    outbox.mark_backlog()
    for i in range(3):
        outbox.put(ALARM, "a", b"", event_id=f"new{i}")
        outbox.put(FAULT, "f", b"", event_id=f"fault{i}")
    assert ids(outbox.pending(2)) == ["new0", "new1"]
    assert ids(outbox.pending(5)) == ["new0", "new1", "new2", "old0", "old1"]
    assert ids(outbox.pending(7)) == ["new0", "new1", "new2", "old0", "old1", "old2", "fault0"]
    with pytest.raises(ValueError, match="limit"):
        outbox.pending(0)


def test_ack_deletes_the_entry_and_an_unknown_seq_is_a_noop(outbox: Outbox) -> None:
    a = outbox.put(ALARM, "a", b"1")
    b = outbox.put(ALARM, "a", b"2")
    t = outbox.put(TELEMETRY, "t", b"3")
    outbox.ack(a.seq)
    outbox.ack(a.seq)
    outbox.ack(999)
    assert outbox.pending() == [b, t]
    assert outbox.depth() == {ALARM: 1, FAULT: 0, TELEMETRY: 1}
    outbox.ack_many([b.seq, t.seq, 12345])
    assert outbox.pending() == []
    assert outbox.stats()["acked"] == 3


# -- restart ----------------------------------------------------------------------------------


def test_a_restart_resumes_the_same_pending_list_and_seq_keeps_increasing(path: Path) -> None:
    clock = Clock()
    with Outbox(path, clock=clock) as ob:
        for i in range(10):
            clock.now += 1
            ob.put(Priority(i % 3), f"site/gw/{i}", bytes([i]) * i, retain=i % 2 == 0)
        last = ob.put(ALARM, "site/gw/last", b"last")
        ob.ack(last.seq)  # the highest seq is gone: AUTOINCREMENT must still not reuse it
        before, depth = ob.pending(), ob.depth()
    with Outbox(path, clock=clock) as ob:
        assert ob.pending() == before
        assert ob.depth() == depth
        assert ob.put(TELEMETRY, "site/gw/next", b"").seq == last.seq + 1
    alarms_created = [e.created for e in before if e.priority == ALARM]
    assert alarms_created == [clock.now - 9, clock.now - 6, clock.now - 3, clock.now]


def test_entries_carry_what_was_put_and_a_new_uuid_when_no_id_is_given(outbox: Outbox) -> None:
    clock_value = 1_700_000_123.5
    with Outbox(outbox.path.with_name("clocked.db"), clock=lambda: clock_value) as ob:
        e = ob.put(FAULT, "site/gw/node/3/state", b"\x00\xff", retain=True)
        assert e == Entry(e.seq, e.event_id, FAULT, "site/gw/node/3/state", b"\x00\xff", True,
                          clock_value)  # fmt: skip
        assert ob.pending() == [e]
    generated = {outbox.put(ALARM, "a", b"").event_id for _ in range(50)}
    assert len(generated) == 50
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in generated)


# -- ids, coalescing, bounds ------------------------------------------------------------------


def test_an_event_id_already_queued_returns_the_queued_entry(path: Path) -> None:
    with Outbox(path) as ob:
        first = ob.put(ALARM, "a", b"first", event_id="ev-1")
        assert ob.put(ALARM, "a", b"second", event_id="ev-1") == first
        assert ob.put(TELEMETRY, "t", b"third", event_id="ev-1") == first
    with Outbox(path) as ob:  # also after a restart
        assert ob.put(ALARM, "a", b"again", event_id="ev-1") == first
        assert ob.pending() == [first]
        assert ob.stats() == {"put": 0, "acked": 0, "duplicates": 1, "superseded": 0, "evicted": 0}
        # Once acked, the id is no longer queued: a resend is queued again, with the same id.
        ob.ack(first.seq)
        again = ob.put(ALARM, "a", b"resent", event_id="ev-1")
        assert (again.event_id, again.seq > first.seq) == ("ev-1", True)


def test_a_burst_is_deduplicated_within_itself(outbox: Outbox) -> None:
    items: list[Item] = [
        (ALARM, "a", b"1", "x", False, False),
        (ALARM, "a", b"2", "y", False, False),
        (ALARM, "a", b"3", "x", False, False),
    ]
    x, y, x_again = outbox.put_many(items)
    assert x_again == x
    assert outbox.pending() == [x, y]
    assert outbox.stats()["duplicates"] == 1


def test_coalescing_keeps_only_the_latest_state_of_a_topic(outbox: Outbox) -> None:
    outbox.put(TELEMETRY, "site/gw/node/1/state", b"v1", retain=True, coalesce=True)
    other = outbox.put(TELEMETRY, "site/gw/node/2/state", b"w1", retain=True, coalesce=True)
    # An alarm event put without coalesce is never superseded, even on the same topic.
    event = outbox.put(ALARM, "site/gw/node/1/state", b"alarm")
    outbox.put(TELEMETRY, "site/gw/node/1/state", b"v2", retain=True, coalesce=True)
    [v3, v4] = outbox.put_many(
        [
            (TELEMETRY, "site/gw/node/1/state", b"v3", None, True, True),
            (TELEMETRY, "site/gw/node/1/state", b"v4", None, True, True),
        ]
    )
    assert outbox.pending() == [event, other, v4]
    assert outbox.depth() == {ALARM: 1, FAULT: 0, TELEMETRY: 2}
    stats = outbox.stats()
    assert (stats["superseded"], stats["evicted"], stats["put"]) == (3, 0, 6)
    assert v3.seq < v4.seq


def test_telemetry_is_evicted_oldest_first_and_alarms_and_faults_never(path: Path) -> None:
    with Outbox(path, max_telemetry=5) as ob:
        for i in range(50):
            ob.put(TELEMETRY, "t", b"", event_id=f"t{i}")
            for j in range(10):  # 500 alarms and faults, 100 times the telemetry bound
                ob.put(ALARM if j % 2 else FAULT, "a", b"", event_id=f"a{i}.{j}")
        assert ob.depth() == {ALARM: 250, FAULT: 250, TELEMETRY: 5}
        assert ob.stats()["evicted"] == 45
        queued = ob.pending(1000)
    expected = [f"a{i}.{j}" for j in (1, 3, 5, 7, 9) for i in range(50)]  # alarms first
    expected.sort(key=lambda e: tuple(map(int, e[1:].split("."))))
    assert ids(queued[:250]) == expected
    assert len(queued) == 505
    assert ids(queued[-5:]) == ["t45", "t46", "t47", "t48", "t49"]
    with Outbox(path, max_telemetry=5) as ob:  # what is on disk, not only the counters
        assert ob.depth() == {ALARM: 250, FAULT: 250, TELEMETRY: 5}


def test_a_burst_over_the_bound_is_evicted_down_to_it(path: Path) -> None:
    with Outbox(path, max_telemetry=10) as ob:
        ob.put_many([(TELEMETRY, "t", b"", f"t{i}", False, False) for i in range(25)])
        ob.put(ALARM, "a", b"")
        assert ob.depth() == {ALARM: 1, FAULT: 0, TELEMETRY: 10}
        assert ids(ob.pending()[1:]) == [f"t{i}" for i in range(15, 25)]
        assert ob.stats()["evicted"] == 15
    with Outbox(path, max_telemetry=10) as ob:  # the bound holds across a restart
        ob.put(TELEMETRY, "t", b"", event_id="t25")
        assert ob.depth()[TELEMETRY] == 10
        assert ids(ob.pending())[1] == "t16"
    with pytest.raises(ValueError, match="max_telemetry"):
        Outbox(path, max_telemetry=0)


# -- state ------------------------------------------------------------------------------------


def test_state_is_kept_across_restarts(path: Path) -> None:
    with Outbox(path) as ob:
        assert ob.get_state("push.replay.7") is None
        ob.set_state("push.replay.7", "1200")
        ob.set_state("push.replay.7", "1201")
        ob.set_state("uplink.seq", "")
    with Outbox(path) as ob:
        assert ob.get_state("push.replay.7") == "1201"
        assert ob.get_state("uplink.seq") == ""
        assert ob.pending() == []
        with pytest.raises(TypeError):
            ob.set_state("n", 5)  # type: ignore[arg-type]


# -- input, threads, closing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload", "event_id", "error"),
    [
        ("", b"", None, ValueError),
        ("site/+/alarm", b"", None, ValueError),
        ("site/#", b"", None, ValueError),
        ("a\0b", b"", None, ValueError),
        ("x" * 65536, b"", None, ValueError),
        ("site/a", "text", None, TypeError),
        ("site/a", b"", "", ValueError),
    ],
    ids=["empty-topic", "plus", "hash", "nul", "long-topic", "str-payload", "empty-id"],
)
def test_what_the_broker_would_refuse_is_refused_before_anything_is_stored(
    outbox: Outbox, topic: str, payload: bytes, event_id: str | None, error: type[Exception]
) -> None:
    good: Item = (ALARM, "site/a", b"", "good", False, False)
    with pytest.raises(error):
        outbox.put_many([good, (ALARM, topic, payload, event_id, False, False)])
    with pytest.raises(ValueError):
        outbox.put(Priority(1) + 5, "site/a", b"")  # type: ignore[arg-type]
    assert outbox.pending() == []


def test_puts_from_several_threads_are_serialised(outbox: Outbox) -> None:
    def work(thread: int) -> list[int]:
        return [outbox.put(ALARM, "a", b"", event_id=f"{thread}.{i}").seq for i in range(25)]

    with ThreadPoolExecutor(4) as pool:
        seqs = [seq for batch in pool.map(work, range(4)) for seq in batch]
    assert sorted(seqs) == list(range(1, 101))
    assert outbox.depth()[ALARM] == 100


def test_a_closed_outbox_says_so(path: Path) -> None:
    ob = Outbox(path)
    ob.put(ALARM, "a", b"")
    ob.close()
    ob.close()
    for call in (lambda: ob.put(ALARM, "a", b""), ob.pending, ob.mark_backlog,
                 lambda: ob.ack(1), lambda: ob.get_state("k")):  # fmt: skip
        with pytest.raises(OutboxError, match="closed"):
            call()


# -- bad files and a full disk ----------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_refused_and_kept(path: Path) -> None:
    junk = b"not an outbox, maybe the installer's notes\n" * 200
    path.write_bytes(junk)
    with pytest.raises(OutboxError, match="move the file aside") as info:
        Outbox(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == junk


def test_an_sqlite_database_that_is_not_an_outbox_is_refused_and_kept(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE readings (v)")
        conn.execute("INSERT INTO readings VALUES (1)")
        conn.commit()
    with pytest.raises(OutboxError, match="not an outbox") as info:
        Outbox(path)
    assert str(path) in str(info.value)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT v FROM readings").fetchall() == [(1,)]
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (1,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # not switched to WAL


def test_an_outbox_from_a_newer_gateway_is_refused_untouched(path: Path) -> None:
    with Outbox(path) as ob:
        ob.put(ALARM, "a", b"kept")
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(OutboxError, match="newer than this gateway") as info:
        Outbox(path)
    assert str(path) in str(info.value)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
        assert conn.execute("SELECT payload FROM outbox").fetchall() == [(b"kept",)]


def test_a_missing_directory_or_a_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="does not exist"):
        Outbox(tmp_path / "no" / "outbox.db")
    assert not (tmp_path / "no").exists()
    with pytest.raises(OutboxError, match="not a file"):
        Outbox(tmp_path)


def test_a_full_disk_raises_and_keeps_what_was_committed(path: Path) -> None:
    with Outbox(path) as ob:
        kept = [ob.put(ALARM, "a", b"x" * 100) for _ in range(5)]
        # The database may not grow by another page: the disk is "full".
        sql(ob, f"PRAGMA max_page_count = {sql(ob, 'PRAGMA page_count')}")
        with pytest.raises(OutboxError, match="disk full") as info:
            ob.put(ALARM, "a", b"x" * 20_000)
        assert str(path) in str(info.value)
        # A burst is all or nothing: its small entries would fit, its last one does not.
        with pytest.raises(OutboxError, match="disk full"):
            ob.put_many([(ALARM, "a", b"s", f"s{i}", False, False) for i in range(3)]
                        + [(ALARM, "a", b"x" * 20_000, "big", False, False)])  # fmt: skip
        assert ob.pending() == kept
        assert ob.depth()[ALARM] == 5
        assert ob.stats()["put"] == 5
        sql(ob, "PRAGMA max_page_count = 1000000")  # space freed: it works again
        recovered = ob.put(ALARM, "a", b"x" * 20_000)
    with Outbox(path) as ob:
        assert ob.pending() == [*kept, recovered]


def test_a_read_only_database_raises_and_says_so(outbox: Outbox) -> None:
    kept = outbox.put(ALARM, "a", b"")
    sql(outbox, "PRAGMA query_only = 1")
    with pytest.raises(OutboxError, match="read-only") as info:
        outbox.put(ALARM, "a", b"")
    assert str(outbox.path) in str(info.value)
    with pytest.raises(OutboxError, match="read-only"):
        outbox.set_state("k", "v")
    assert outbox.pending() == [kept]


# -- SIGKILL mid-burst ------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 25], ids=["single-puts", "bursts-of-25"])
def test_sigkill_mid_burst_loses_no_committed_alarm_and_duplicates_keep_their_id(
    path: Path, tmp_path: Path, batch: int
) -> None:
    """The child prints each event id once put returned; it is killed as soon as the 200th id
    is read. Every id it printed must be queued exactly once; of the rest, at most the burst in
    flight, whole or not at all."""
    command = [sys.executable, "-m", "tests.gateway.outbox_child", str(path), str(batch)]
    with (
        open(tmp_path / "child.err", "wb") as err,
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True) as child,
    ):
        guard = threading.Timer(60.0, child.kill)  # a hung child fails the test, not the run
        guard.start()
        try:
            assert child.stdout is not None
            lines: list[str] = []
            while len(lines) < 200 and (line := child.stdout.readline()):
                lines.append(line)
            child.kill()  # SIGKILL
            lines += child.stdout.readlines()  # committed before the kill, still in the pipe
            child.wait()
        finally:
            guard.cancel()
    assert len(lines) >= 200, (tmp_path / "child.err").read_text()
    assert child.returncode == -signal.SIGKILL
    reported = [line[:-1] for line in lines if line.endswith("\n")]  # a cut-off line is not one
    n = len(reported)
    assert reported == [f"burst-{i}" for i in range(n)]

    with Outbox(path) as ob:
        queued = ob.pending(10 * n)
        queued_ids = ids(queued)
        assert len(queued_ids) == len(set(queued_ids))  # exactly once
        assert queued_ids[:n] == reported  # all of them, in put order
        in_flight = {f"burst-{i}" for i in range(n, n + batch)}
        assert set(queued_ids[n:]) in (set(), in_flight)
        assert [e.seq for e in queued] == sorted(e.seq for e in queued)
        # The restarted gateway re-reads its input and puts everything again: no duplicates.
        again = ob.put_many([(ALARM, "x", b"", i, False, False) for i in reported])
        assert again == queued[:n]
        assert ob.depth()[ALARM] == len(queued)
        assert ob.stats()["duplicates"] == n
        assert ob.stats()["put"] == 0
