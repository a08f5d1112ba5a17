"""SQLite keeps tasks per status in `task_counts` (triggers on every status move), so the
status view reads a few rows, not a million tasks: the kept counts equal a full count after
every kind of move, and a file written before the table existed is counted once on open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from unified_swarm.config import Settings
from unified_swarm.store.sqlite import SQLiteStore

from ..conftest import T0
from .helpers import add_tasks, claim_next, join, spec


def full_count(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status"))


async def test_kept_counts_equal_a_full_count_after_every_move(settings: Settings) -> None:
    store = SQLiteStore(settings.sqlite_path, settings)
    await store.open()
    try:
        await join(store, "w1")
        await add_tasks(store, [spec("a"), spec("b"), spec("c", dependencies=["a"]),
                                spec("d"), spec("e", dependencies=["d"])], T0)
        await claim_next(store, "w1", T0)
        await store.complete("w1", "a", 1, None, T0 + 1)  # c becomes ready
        await store.cancel("d", T0 + 2, "test")  # e is blocked
        c = await store.counts()
        assert c.tasks == full_count(settings.sqlite_path)
        assert c.tasks == {"completed": 1, "ready": 2, "cancelled": 1, "blocked": 1}
    finally:
        await store.close()


async def test_a_file_from_before_the_counts_is_counted_on_open(settings: Settings) -> None:
    store = SQLiteStore(settings.sqlite_path, settings)
    await store.open()
    try:
        await add_tasks(store, [spec("a"), spec("b"), spec("c", dependencies=["a"])], T0)
    finally:
        await store.close()
    with sqlite3.connect(settings.sqlite_path) as conn:  # as an older version left it
        for trigger in ("insert", "delete", "update"):
            conn.execute(f"DROP TRIGGER task_counts_{trigger}")
        conn.execute("DROP TABLE task_counts")
    store = SQLiteStore(settings.sqlite_path, settings)
    await store.open()
    try:
        assert (await store.counts()).tasks == {"ready": 2, "pending": 1}
        await add_tasks(store, [spec("d")], T0 + 1)
        assert (await store.counts()).tasks == {"ready": 3, "pending": 1}
    finally:
        await store.close()
