"""A digest of everything a SQLite store holds, read beside the running server.

Every table (sessions with their token hashes, tasks, dependencies, attempts, every
knowledge version, the event log, meta) is read through a read-only connection of its own:
WAL lets it read the last committed state while the server's writer works, so it needs no
store method and no hop onto the server's event loop. Only `sessions.last_heartbeat` is left
out: it is liveness, which a refused call by a live session may renew, not state.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

#: (table, column) pairs that are liveness, not state
VOLATILE = {("sessions", "last_heartbeat")}


def dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, in one read transaction."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("BEGIN")
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in tables:
            cur = conn.execute(f'SELECT * FROM "{table}"')
            keep = [i for i, d in enumerate(cur.description) if (table, d[0]) not in VOLATILE]
            out[table] = sorted((tuple(row[i] for i in keep) for row in cur), key=repr)
        conn.execute("COMMIT")
        return out
    finally:
        conn.close()


def digest(db: Path) -> str:
    return hashlib.sha256(repr(sorted(dump(db).items())).encode()).hexdigest()


def diff(before: dict[str, list[tuple[Any, ...]]],
         after: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any]:
    """What changed, table by table (for a readable assertion message)."""
    changed: dict[str, Any] = {}
    for table in sorted(set(before) | set(after)):
        old, new = set(before.get(table, [])), set(after.get(table, []))
        if old != new:
            changed[table] = {"gone": sorted(old - new, key=repr)[:5],
                              "new": sorted(new - old, key=repr)[:5]}
    return changed
