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


#: Redis keys (after the prefix) and hash fields that are liveness or the leader's own
#: bookkeeping, not state: the leader lease and the store clock move on their own, and a
#: refused call by a live session may renew its liveness (as `last_heartbeat` above)
REDIS_VOLATILE_KEYS = {"leader", "clock", "silence"}
REDIS_VOLATILE_FIELDS = {"last_heartbeat"}


def dump_redis(url: str, prefix: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every key of one swarm on Redis, read by type, in one MULTI: the same role as
    `dump` for SQLite (the key names stand in for tables)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000))
        keys = [k for k in keys if k.split(":", 1)[1] not in REDIS_VOLATILE_KEYS]
        pipe = client.pipeline(transaction=True)
        for key in keys:
            pipe.type(key)
        types = [t.decode() for t in pipe.execute()]
        for key, kind in zip(keys, types, strict=True):
            {"hash": pipe.hgetall, "zset": lambda k: pipe.zrange(k, 0, -1, withscores=True),
             "set": pipe.smembers, "string": pipe.get,
             "list": lambda k: pipe.lrange(k, 0, -1)}[kind](key)  # type: ignore[no-untyped-call]
        values = pipe.execute()
    finally:
        client.close()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for key, value in zip(keys, values, strict=True):
        rows: list[tuple[Any, ...]]
        if isinstance(value, dict):
            rows = [(k, v) for k, v in value.items()
                    if k.decode() not in REDIS_VOLATILE_FIELDS]
        elif isinstance(value, set | list):
            rows = [tuple(v) if isinstance(v, tuple) else (v,) for v in value]
        else:
            rows = [(value,)]
        out[key.split(":", 1)[1]] = sorted(rows, key=repr)
    return out
