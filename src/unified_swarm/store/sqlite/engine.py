"""Threads that own the SQLite connections: one writer with group commit, a few readers.

Why a single writer thread: SQLite allows one writer at a time anyway, and with
`synchronous=FULL` every COMMIT waits for an fsync. The writer takes every step that is
waiting, runs each inside its own SAVEPOINT (a failing step rolls back alone), and commits
them together: one fsync for many requests (group commit). A step's caller hears its
result only after that COMMIT, and event listeners are scheduled before the callers resume.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from ...errors import SwarmError, Unavailable
from ...futures import settle
from ...models import Event

log = logging.getLogger(__name__)
T = TypeVar("T")
#: a write step: runs in the writer's transaction, appends the events it emits
WriteFn = Callable[[sqlite3.Connection, list[Event]], T]
#: a read: runs in one snapshot of a reader connection
ReadFn = Callable[[sqlite3.Connection], T]
MAX_GROUP = 256
SWITCH_INTERVAL = 0.0005


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[..., T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    events: list[Event] = field(default_factory=list)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


def _as_store_error(exc: BaseException) -> BaseException:
    if isinstance(exc, SwarmError):
        return exc
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        return Unavailable(f"sqlite: {exc}", retry_after=1.0)
    return exc


class Engine:
    """Runs write steps on the writer thread and reads on reader threads."""

    def __init__(
        self, path: Path, on_commit: Callable[[list[Event]], None], readers: int = 2
    ) -> None:
        self.path = path
        self._on_commit = on_commit
        self._writes: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._reads: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._readers = readers
        self._closed = True

    def start(self, init: Callable[[sqlite3.Connection], None]) -> None:
        # The writer must get the GIL soon after its fsync returns, or every request waits
        # out the interpreter's 5 ms switch interval behind the busy event loop.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # the data holds results and token digests: owner-only, like the token file (SQLite
        # gives the -wal and -shm files the database file's mode)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = connect(self.path)
        init(conn)
        self._closed = False
        self._threads = [threading.Thread(target=self._write_loop, args=(conn,),
                                          name="swarm-sqlite-writer", daemon=True)]
        for n in range(self._readers):
            self._threads.append(threading.Thread(target=self._read_loop,
                                                  args=(connect(self.path),),
                                                  name=f"swarm-sqlite-reader-{n}", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writes.put(None)
        for _ in range(self._readers):
            self._reads.put(None)
        for t in self._threads:
            t.join(timeout=10)

    async def write(self, fn: WriteFn[T]) -> T:
        """Run `fn` as one step of the next group commit; its result once it is durable.
        A step that raises is rolled back alone (its group commits without it)."""
        return await self._submit(self._writes, fn)

    async def read(self, fn: ReadFn[T]) -> T:
        """Run `fn` in one snapshot of a reader connection."""
        return await self._submit(self._reads, fn)

    async def _submit(self, q: queue.SimpleQueue[_Job[Any] | None], fn: Callable[..., T]) -> T:
        if self._closed:
            raise Unavailable("the store is closed", retry_after=1.0)
        loop = asyncio.get_running_loop()
        job: _Job[T] = _Job(fn, loop, loop.create_future())
        q.put(job)
        return await job.future

    # -- threads -----------------------------------------------------------------------

    def _read_loop(self, conn: sqlite3.Connection) -> None:
        while (job := self._reads.get()) is not None:
            result, exc = None, None
            try:
                conn.execute("BEGIN")  # one snapshot for every statement of the read
                try:
                    result = job.fn(conn)
                finally:
                    conn.execute("COMMIT")
            except BaseException as e:  # delivered to the awaiting caller
                exc = _as_store_error(e)
            job.loop.call_soon_threadsafe(settle, job.future, result, exc)
        conn.close()

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        stop = False
        while not stop:
            first = self._writes.get()
            if first is None:
                break
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    nxt = self._writes.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            self._run_group(conn, group)
        conn.close()

    def _run_group(self, conn: sqlite3.Connection, group: list[_Job[Any]]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                outcomes.append(self._run_step(conn, job))
            conn.execute("COMMIT")
        except BaseException as e:  # the whole group failed to commit: nothing was written
            log.error("sqlite group commit failed: %s", e)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = _as_store_error(e)
            for job in group:
                job.loop.call_soon_threadsafe(settle, job.future, None, err)
            return
        events = [ev for job, (_, exc) in zip(group, outcomes, strict=True)
                  if exc is None for ev in job.events]
        if events:
            self._on_commit(events)
        for job, (result, exc) in zip(group, outcomes, strict=True):
            job.loop.call_soon_threadsafe(settle, job.future, result, exc)

    @staticmethod
    def _run_step(conn: sqlite3.Connection, job: _Job[Any]) -> tuple[Any, BaseException | None]:
        conn.execute("SAVEPOINT step")
        try:
            result = job.fn(conn, job.events)
        except BaseException as e:
            conn.execute("ROLLBACK TO step")
            conn.execute("RELEASE step")
            job.events.clear()
            if isinstance(e, sqlite3.OperationalError | sqlite3.DatabaseError):
                raise  # the connection itself is in trouble: fail the whole group
            return None, _as_store_error(e)
        conn.execute("RELEASE step")
        return result, None
