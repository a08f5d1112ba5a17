"""The embedded store: one SQLite file in WAL mode, no server.

Durability: `journal_mode=WAL`, `synchronous=FULL` (a COMMIT returns after the WAL is on
disk), one writer thread with group commit (see engine.py). The data directory must be on a
local disk: SQLite's locking is unreliable on network filesystems.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from ...config import Settings
from ...errors import InvalidInput, NotFound
from ...jsonutil import dumps, loads
from ...models import (
    JSON,
    Attempt,
    Candidate,
    Claimed,
    Counts,
    Event,
    EventListener,
    Heartbeat,
    Idem,
    Interrupt,
    KnowledgeEntry,
    Quarantine,
    Reaped,
    Recorded,
    Replay,
    Session,
    Split,
    Task,
    TaskStatus,
)
from ...stats import PairStats
from ..base import EVENT_TYPE_RE, cursor_seq
from ..replay import LostReplies
from . import claims, collab, knowledge, learning, scaling, sessions, tasks
from .engine import Engine, WriteFn
from .keyed import keep, keyed, recall
from .rows import (
    add_note,
    attempt_from_row,
    emit,
    held_ids,
    load_notes,
    load_session,
    load_task,
    session_from_row,
)
from .rows import task_from_row as _task_from_row
from .schema import ADDED_COLUMNS, DDL, HELD_IN, SCHEMA_VERSION, TRIGGERS
from .usage import totals as usage_totals

P = ParamSpec("P")
T = TypeVar("T")
Conn = sqlite3.Connection


class SQLiteStore:
    """Implements `store.base.Store` on one SQLite file."""

    kind = "sqlite"

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path = Path(path)
        self.settings = settings
        self._listeners: list[EventListener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine = Engine(self.path, self._committed)
        #: a test fault: replies lost after their step committed (store/replay.py)
        self.faults = LostReplies()

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._engine.start, _init_schema)

    async def close(self) -> None:
        await asyncio.to_thread(self._engine.stop)

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def _committed(self, events: list[Event]) -> None:
        """Writer thread, after COMMIT: hand the events to the loop, in order."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._dispatch, events)

    def _dispatch(self, events: list[Event]) -> None:
        for listener in self._listeners:
            listener(events)

    async def _write(self, fn: Callable[Concatenate[Conn, list[Event], P], T],
                     *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the step `fn(conn, events, *args)` in the writer's next group commit."""
        return await self._engine.write(lambda conn, ev: fn(conn, ev, *args, **kwargs))

    async def _keyed(self, kind: str, idem: Idem | None, now: float, step: WriteFn[T]) -> T:
        """Run a step that may carry an Idempotency-Key (sqlite/keyed.py): without one it
        is the plain step, with one its answer is kept in the same transaction."""
        if idem is not None:
            step = keyed(kind, idem, now, step)
        result = await self._engine.write(step)
        if self.faults.armed:
            self.faults.after(kind)
        return result

    async def recall(self, idem: Idem, now: float) -> Replay | None:
        return await self._read(recall, idem, now)

    async def keep(self, kind: str, idem: Idem, answer: Replay, now: float) -> Replay:
        kept = await self._write(keep, kind, idem, answer, now)
        if self.faults.armed:
            self.faults.after(kind)
        return kept

    async def _read(self, fn: Callable[Concatenate[Conn, P], T],
                    *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._engine.read(lambda conn: fn(conn, *args, **kwargs))

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    # -- sessions ------------------------------------------------------------------------

    async def register_session(self, session: Session, token_hash: str, now: float,
                               idem: Idem | None = None) -> Session:
        return await self._keyed("register", idem, now, lambda conn, ev: sessions.register(
            conn, ev, session, token_hash, now))

    async def session_by_token(self, token_hash: str) -> Session | None:
        def read(conn: sqlite3.Connection) -> Session | None:
            row = conn.execute("SELECT * FROM sessions WHERE token_hash = ?",
                               (token_hash,)).fetchone()
            return None if row is None else session_from_row(row, held_ids(conn, row["id"]))
        return await self._read(read)

    async def get_session(self, session_id: str) -> Session | None:
        return await self._read(load_session, session_id)

    async def list_sessions(self) -> list[Session]:
        def read(conn: sqlite3.Connection) -> list[Session]:
            held: dict[str, list[str]] = {}
            for r in conn.execute(f"SELECT assigned_to, id FROM tasks WHERE status IN {HELD_IN} "
                                  "ORDER BY seq"):
                held.setdefault(r[0], []).append(r[1])
            rows = conn.execute("SELECT * FROM sessions ORDER BY registered_at, id").fetchall()
            return [session_from_row(r, held.get(r["id"], [])) for r in rows]
        return await self._read(read)

    async def heartbeat(self, session_id: str, now: float, status: str | None) -> Heartbeat:
        return await self._write(sessions.heartbeat, session_id, now, status,
                                 self.settings.lease_factor)

    async def leave_session(self, session_id: str, now: float, reason: str) -> Session:
        return await self._write(sessions.leave, session_id, now, reason)

    async def set_draining(self, session_id: str, now: float) -> Session:
        return await self._write(sessions.set_draining, session_id, now)

    async def idle_sessions(self, now: float, idle_for: float) -> list[Session]:
        def read(conn: sqlite3.Connection) -> list[Session]:
            rows = conn.execute(
                "SELECT * FROM sessions s WHERE status = 'idle' AND idle_since <= ? AND NOT "
                "EXISTS (SELECT 1 FROM tasks t WHERE t.assigned_to = s.id AND t.status IN "
                f"{HELD_IN}) ORDER BY idle_since, id", (now - idle_for,)).fetchall()
            return [session_from_row(r, []) for r in rows]
        return await self._read(read)

    # -- tasks ---------------------------------------------------------------------------

    async def task_statuses(self, task_ids: Sequence[str]) -> dict[str, TaskStatus]:
        return await self._read(tasks.statuses, task_ids)

    async def insert_batch(self, batch: Sequence[Task], assumed: Mapping[str, TaskStatus],
                           now: float, idem: Idem | None = None) -> list[Task] | None:
        return await self._keyed("insert_batch", idem, now, lambda conn, ev: tasks.insert_batch(
            conn, ev, batch, assumed, now))

    async def get_task(self, task_id: str) -> Task | None:
        return await self._read(load_task, task_id)

    async def list_tasks(
        self, *, status: str | None = None, capability: str | None = None,
        session: str | None = None, limit: int = 100, cursor: str | None = None,
    ) -> tuple[list[Task], str | None]:
        after = cursor_seq(cursor)
        clauses: list[str] = ["seq > ?"]
        args: list[object] = [after]
        for column, value in (("status", status), ("required_capability", capability),
                              ("assigned_to", session)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)

        def read(conn: sqlite3.Connection) -> tuple[list[Task], str | None]:
            rows = conn.execute(f"SELECT * FROM tasks WHERE {' AND '.join(clauses)} "
                                f"ORDER BY seq LIMIT ?", (*args, limit + 1)).fetchall()
            found = [_task_from_row(r) for r in rows[:limit]]
            more = len(rows) > limit
            return found, (str(found[-1].seq) if more and found else None)
        return await self._read(read)

    async def history(self, task_id: str) -> list[Attempt]:
        def read(conn: sqlite3.Connection) -> list[Attempt]:
            rows = conn.execute("SELECT * FROM attempts WHERE task_id = ? ORDER BY fencing_token",
                                (task_id,)).fetchall()
            return [attempt_from_row(r) for r in rows]
        return await self._read(read)

    async def notes(self, task_id: str) -> list[JSON]:
        return await self._read(load_notes, task_id)

    async def add_note(self, task_id: str, note: dict[str, JSON], now: float) -> None:
        def step(conn: sqlite3.Connection, ev: list[Event]) -> None:
            if load_task(conn, task_id) is None:
                raise NotFound(f"task {task_id!r} does not exist")
            add_note(conn, task_id, note)
        await self._write(step)

    async def ready_candidates(self, capabilities: Sequence[str],
                               limit: int) -> list[Candidate]:
        return await self._read(claims.ready_candidates, capabilities, limit)

    async def offered_to(self, session_id: str) -> list[Candidate]:
        return await self._read(claims.offered_to, session_id)

    async def check_in(self, session_id: str, now: float) -> Session:
        return await self._write(claims.check_in, session_id, now)

    async def claim(self, session_id: str, task_id: str, now: float,
                    predicted: float | None = None, idem: Idem | None = None) -> Claimed:
        factor = self.settings.lease_factor
        return await self._keyed("claim", idem, now, lambda conn, ev: claims.claim(
            conn, ev, session_id, task_id, now, factor, predicted))

    async def claim_many(self, session_id: str, picks: Sequence[tuple[str, float | None]],
                         now: float, idem: Idem | None = None) -> list[Claimed]:
        factor, chosen = self.settings.lease_factor, list(picks)
        return await self._keyed("claim_many", idem, now, lambda conn, ev: claims.claim_many(
            conn, ev, session_id, chosen, now, factor))

    async def offer(self, session_id: str, task_id: str, now: float,
                    deadline: float) -> Task | None:
        return await self._write(claims.offer, session_id, task_id, now, deadline)

    async def progress(self, session_id: str, task_id: str, token: int, value: float,
                       message: str | None, now: float,
                       usage: Mapping[str, float] | None = None,
                       rate_limit: dict[str, JSON] | None = None) -> Recorded:
        return await self._write(tasks.progress, session_id, task_id, token, value, message,
                                 now, self.settings.lease_factor, usage, rate_limit)

    async def complete(self, session_id: str, task_id: str, token: int, result: JSON,
                       now: float, usage: Mapping[str, float] | None = None) -> Recorded:
        return await self._write(tasks.complete, session_id, task_id, token, result, now,
                                 usage)

    async def fail(self, session_id: str, task_id: str, token: int, error: str, retry: bool,
                   now: float, usage: Mapping[str, float] | None = None) -> Recorded:
        return await self._write(tasks.fail, session_id, task_id, token, error, retry, now,
                                 usage)

    async def release(self, session_id: str, task_id: str, token: int, note: str | None,
                      now: float) -> Recorded:
        return await self._write(tasks.release, session_id, task_id, token, note, now)

    async def preempt(self, task_id: str, token: int, deadline: float,
                      now: float) -> Task | None:
        return await self._write(tasks.preempt, task_id, token, deadline, now)

    async def request_input(self, session_id: str, task_id: str, token: int, question: str,
                            now: float) -> Recorded:
        return await self._write(tasks.request_input, session_id, task_id, token, question,
                                 now)

    async def give_input(self, task_id: str, answer: str, by: str | None, now: float) -> Task:
        return await self._write(tasks.give_input, task_id, answer, by, now,
                                 self.settings.lease_factor)

    async def cancel(self, task_id: str, now: float, reason: str) -> Task:
        return await self._write(tasks.cancel, task_id, now, reason)

    async def split(self, session_id: str, task_id: str, token: int, subtasks: Sequence[Task],
                    order: Sequence[str], merge: str, merge_task: str | None,
                    assumed: Mapping[str, TaskStatus], digest: str, now: float) -> Split | None:
        return await self._write(collab.split, session_id, task_id, token, subtasks, order,
                                 merge, merge_task, assumed, digest, now)

    async def reap(self, now: float, limit: int) -> Reaped:
        factor = self.settings.lease_factor

        def step(conn: sqlite3.Connection, ev: list[Event]) -> Reaped:
            moved: list[Task] = []
            offline, more_s = sessions.reap_silent(conn, ev, now, limit, factor, moved)
            requeued, failed, more_t = tasks.reap_leases(conn, ev, now, limit)
            requeued += [t.id for t in moved if t.status == TaskStatus.READY]
            failed += [t.id for t in moved if t.status == TaskStatus.FAILED]
            return Reaped(requeued, failed, offline, more_s or more_t)
        return await self._engine.write(step)

    async def next_deadline(self) -> float | None:
        factor = self.settings.lease_factor

        def read(conn: sqlite3.Connection) -> float | None:
            lease = conn.execute("SELECT MIN(lease_expires_at) FROM tasks "
                                 f"WHERE status IN {HELD_IN}").fetchone()[0]
            silent = conn.execute("SELECT MIN(last_heartbeat + ? * heartbeat_interval) FROM "
                                  "sessions WHERE status != 'offline'", (factor,)).fetchone()[0]
            found: list[float] = [d for d in (lease, silent) if d is not None]
            return min(found) if found else None
        return await self._read(read)

    # -- knowledge -----------------------------------------------------------------------

    async def put_knowledge(self, topic: str, content: JSON, tags: list[str],
                            expected_version: int | None, updated_by: str | None,
                            now: float, idem: Idem | None = None) -> KnowledgeEntry:
        return await self._keyed("put_knowledge", idem, now, lambda conn, ev: knowledge.put(
            conn, ev, topic, content, tags, expected_version, updated_by, now))

    async def get_knowledge(self, topic: str, version: int | None = None) -> KnowledgeEntry | None:
        return await self._read(knowledge.get, topic, version)

    async def list_knowledge(self, tag: str | None = None) -> list[KnowledgeEntry]:
        return await self._read(knowledge.list_latest, tag)

    async def delete_knowledge(self, topic: str, expected_version: int | None,
                               updated_by: str | None, now: float) -> KnowledgeEntry:
        return await self._write(knowledge.delete, topic, expected_version, updated_by, now)

    # -- autoscaling ---------------------------------------------------------------------

    async def ready_counts(self, capabilities: Sequence[str]) -> dict[str, int]:
        return await self._read(scaling.ready_counts, capabilities)

    async def record_event(self, type_: str, data: dict[str, JSON], now: float) -> Event:
        if not EVENT_TYPE_RE.match(type_):
            raise InvalidInput(f"event type {type_!r} must match {EVENT_TYPE_RE.pattern}")
        return await self._write(scaling.record_event, type_, data, now)

    async def set_pool_pin(self, pool: str, desired: int | None, now: float) -> None:
        await self._write(scaling.set_pin, pool, desired, now)

    async def pool_pins(self) -> dict[str, int]:
        return await self._read(scaling.pins)

    # -- the learned model ---------------------------------------------------------------

    async def all_stats(self) -> list[tuple[str, str, PairStats]]:
        return await self._read(learning.all_stats)

    async def quarantines(self) -> list[Quarantine]:
        return await self._read(learning.quarantines)

    async def set_quarantine(self, session_id: str, capability: str,
                             record: Quarantine | None, expected: int, now: float) -> bool:
        return await self._write(learning.set_quarantine, session_id, capability, record,
                                 expected, now)

    async def set_detected(self, session_id: str, capabilities: list[str],
                           now: float) -> None:
        await self._write(learning.set_detected, session_id, capabilities, now)

    # -- the swarm -----------------------------------------------------------------------

    async def set_interrupt(self, interrupt: Interrupt | None, now: float) -> None:
        def step(conn: sqlite3.Connection, ev: list[Event]) -> None:
            value = None if interrupt is None else dumps(
                {"reason": interrupt.reason, "at": interrupt.at, "by": interrupt.by,
                 "task_id": interrupt.task_id})
            conn.execute("DELETE FROM meta WHERE key = 'interrupt'")
            if value is not None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('interrupt', ?)", (value,))
            emit(conn, ev, "swarm.interrupt", now, {
                "active": interrupt is not None,
                "reason": None if interrupt is None else interrupt.reason,
                "task_id": None if interrupt is None else interrupt.task_id})
        await self._engine.write(step)

    async def get_interrupt(self) -> Interrupt | None:
        def read(conn: sqlite3.Connection) -> Interrupt | None:
            row = conn.execute("SELECT value FROM meta WHERE key = 'interrupt'").fetchone()
            if row is None:
                return None
            d = loads(row[0])
            return Interrupt(d["reason"], d["at"], d.get("by"), d.get("task_id"))
        return await self._read(read)

    async def counts(self) -> Counts:
        def read(conn: sqlite3.Connection) -> Counts:
            sess = dict(conn.execute("SELECT status, COUNT(*) FROM sessions GROUP BY status"))
            tsk = dict(conn.execute("SELECT status, n FROM task_counts WHERE n > 0"))
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            last = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0
            swarm, by_type = usage_totals(conn)
            return Counts(sess, tsk, int(meta.get("completed", 0)),
                          float(meta.get("duration_sum", 0.0)), last, swarm, by_type)
        return await self._read(read)

    async def events_after(self, seq: int, limit: int) -> list[Event]:
        def read(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                (seq, limit)).fetchall()
            return [Event(r["seq"], r["type"], r["at"], loads(r["data"])) for r in rows]
        return await self._read(read)


def from_settings(settings: Settings) -> SQLiteStore:
    """The store `settings.store` names ("sqlite" or "sqlite:///FILE"): config.STORES."""
    return SQLiteStore(settings.sqlite_path, settings)


def _init_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        counted = _has_table(conn, "task_counts")
        for statement in DDL.split(";"):
            if statement.strip():
                _replace_stale_index(conn, statement)
                conn.execute(statement)
        for trigger in TRIGGERS:
            conn.execute(trigger)
        if not counted:  # a file from before task_counts: count once, the triggers go on
            conn.execute("INSERT INTO task_counts (status, n) "
                         "SELECT status, COUNT(*) FROM tasks GROUP BY status")
        for table, column, declaration in ADDED_COLUMNS:
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            for key, value in (("schema_version", str(SCHEMA_VERSION)),
                               ("epoch", uuid.uuid4().hex), ("completed", "0"),
                               ("duration_sum", "0")):
                conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        elif int(row[0]) > SCHEMA_VERSION:
            raise InvalidInput(f"the data file has schema {row[0]}, newer than this "
                               f"version of unified-swarm understands ({SCHEMA_VERSION})")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


__all__ = ["SQLiteStore", "from_settings"]


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def _replace_stale_index(conn: sqlite3.Connection, statement: str) -> None:
    """A partial index over the held statuses is used only by queries repeating its terms:
    when the held set grew (input_required), an index of an older file is dropped here so
    the statement builds it again over the statuses of this version."""
    words = statement.split()
    if words[:5] != ["CREATE", "INDEX", "IF", "NOT", "EXISTS"] or HELD_IN not in statement:
        return
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                       (words[5],)).fetchone()
    if row is not None and HELD_IN not in row[0]:
        conn.execute(f"DROP INDEX {words[5]}")
