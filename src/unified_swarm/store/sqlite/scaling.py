"""The steps autoscaling needs (see `store.base.Store`): ready tasks per capability, an
event for a decision taken above the store, and the operator's pins of pool sizes (kept in
`meta` as `pool_pin:<pool>`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ...models import JSON, Event
from .rows import emit

PIN = "pool_pin:"


def ready_counts(conn: sqlite3.Connection, capabilities: Sequence[str]) -> dict[str, int]:
    """Counted on the partial index of ready tasks: as many rows as are ready, no more."""
    counts = dict.fromkeys(capabilities, 0)
    for cap in counts:
        # the ready index: the planner would otherwise count every task of the capability
        # through tasks_capability (the task list's index)
        row = conn.execute("SELECT COUNT(*) FROM tasks INDEXED BY tasks_ready "
                           "WHERE status = 'ready' AND required_capability = ?",
                           (cap,)).fetchone()
        counts[cap] = int(row[0])
    return counts


def record_event(conn: sqlite3.Connection, ev: list[Event], type_: str,
                 data: dict[str, JSON], now: float) -> Event:
    emit(conn, ev, type_, now, data)
    return ev[-1]


def set_pin(conn: sqlite3.Connection, ev: list[Event], pool: str, desired: int | None,
            now: float) -> None:
    conn.execute("DELETE FROM meta WHERE key = ?", (PIN + pool,))
    if desired is not None:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (PIN + pool, str(desired)))
    emit(conn, ev, "pool.pinned", now, {"pool": pool, "desired": desired})


def pins(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT key, value FROM meta WHERE key >= ? AND key < ?",
                        (PIN, PIN[:-1] + chr(ord(":") + 1))).fetchall()
    return {k.removeprefix(PIN): int(v) for k, v in rows}
