"""Keyed steps on SQLite: the answer is kept in the step's own transaction (store/replay.py).

`keyed` wraps any write step: inside the same SAVEPOINT it looks the key up first (a kept,
unexpired answer is returned and nothing else runs), else runs the step and, when the step
emitted events (it changed something), keeps its answer in the same transaction. So the
answer is durable exactly when the write is, and a reply lost after the COMMIT is found
by the retry. Expired rows are purged a few at a time by the keyed writes themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar, cast

from ...models import Event, Idem, Replay
from .. import replay

R = TypeVar("R")
#: expired keys a keyed write deletes on its way (bounded work per write)
PURGE = 16


def recall(conn: sqlite3.Connection, idem: Idem, now: float) -> Replay | None:
    """The kept answer of this key, if it has one (KeyReused when the request differs)."""
    row = conn.execute("SELECT fingerprint, kind, reply FROM idempotency WHERE id = ? AND "
                       "expires_at > ?", (idem.id, now)).fetchone()
    if row is None:
        return None
    replay.check(idem, row[0])
    return replay.decode(row[1], row[2])


def keyed(kind: str, idem: Idem, now: float,
          step: Callable[[sqlite3.Connection, list[Event]], R],
          ) -> Callable[[sqlite3.Connection, list[Event]], R]:
    """`step`, answering a repeated key from what the first run kept."""
    def run(conn: sqlite3.Connection, events: list[Event]) -> R:
        kept = recall(conn, idem, now)
        if kept is not None:
            return kept  # type: ignore[return-value]  # the same kind, by the key's scope
        before = len(events)
        result = step(conn, events)
        # a step that changed nothing, or answered nothing (an empty batch claim, whose
        # retry must look again), keeps nothing
        if result is not None and result != [] and len(events) > before:
            _put(conn, kind, idem, cast(Replay, result), now)
        return result
    return run


def keep(conn: sqlite3.Connection, _: list[Event], kind: str, idem: Idem, answer: Replay,
         now: float) -> Replay:
    """`Store.keep`: the answer kept already, else `answer`, kept now."""
    kept = recall(conn, idem, now)
    if kept is not None:
        return kept
    _put(conn, kind, idem, answer, now)
    return answer


def _put(conn: sqlite3.Connection, kind: str, idem: Idem, answer: Replay, now: float) -> None:
    conn.execute("DELETE FROM idempotency WHERE id IN (SELECT id FROM idempotency "
                 "WHERE expires_at <= ? LIMIT ?)", (now, PURGE))
    conn.execute("INSERT OR REPLACE INTO idempotency (id, fingerprint, kind, reply, "
                 "expires_at) VALUES (?, ?, ?, ?, ?)",
                 (idem.id, idem.fingerprint, kind, replay.encode(kind, answer),
                  now + idem.ttl))
