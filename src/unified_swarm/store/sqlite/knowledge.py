"""Knowledge steps: every version is a row; a delete is a tombstone version."""

from __future__ import annotations

import sqlite3

from ...errors import NotFound, StaleVersion
from ...jsonutil import dumps
from ...models import JSON, Event, KnowledgeEntry
from .rows import emit, entry_from_row

Conn = sqlite3.Connection


def _current(conn: Conn, topic: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM knowledge WHERE topic = ? ORDER BY version DESC LIMIT 1", (topic,)
    ).fetchone()
    return row


def _check(topic: str, current: int, expected: int | None) -> None:
    if expected is not None and expected != current:
        raise StaleVersion(
            f"knowledge {topic!r} is at version {current}, not {expected}: read it again")


def put(conn: Conn, ev: list[Event], topic: str, content: JSON, tags: list[str],
        expected: int | None, by: str | None, now: float) -> KnowledgeEntry:
    row = _current(conn, topic)
    current = 0 if row is None else row["version"]
    _check(topic, current, expected)
    entry = KnowledgeEntry(topic, current + 1, content, by, now, tags)
    conn.execute(
        "INSERT INTO knowledge (topic, version, content, tags, updated_by, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)", (topic, entry.version, dumps(content), dumps(tags), by, now))
    emit(conn, ev, "knowledge.updated", now, {"topic": topic, "version": entry.version,
                                               "updated_by": by, "deleted": False})
    return entry


def delete(conn: Conn, ev: list[Event], topic: str, expected: int | None, by: str | None,
           now: float) -> KnowledgeEntry:
    row = _current(conn, topic)
    if row is None or row["deleted"]:
        raise NotFound(f"knowledge topic {topic!r} does not exist")
    _check(topic, row["version"], expected)
    entry = KnowledgeEntry(topic, row["version"] + 1, None, by, now, [], deleted=True)
    conn.execute(
        "INSERT INTO knowledge (topic, version, content, tags, updated_by, updated_at, deleted) "
        "VALUES (?, ?, NULL, '[]', ?, ?, 1)", (topic, entry.version, by, now))
    emit(conn, ev, "knowledge.updated", now, {"topic": topic, "version": entry.version,
                                               "updated_by": by, "deleted": True})
    return entry


def get(conn: Conn, topic: str, version: int | None) -> KnowledgeEntry | None:
    if version is None:
        row = _current(conn, topic)
        if row is None or row["deleted"]:
            return None
    else:
        row = conn.execute("SELECT * FROM knowledge WHERE topic = ? AND version = ?",
                           (topic, version)).fetchone()
    return None if row is None else entry_from_row(row)


def list_latest(conn: Conn, tag: str | None) -> list[KnowledgeEntry]:
    rows = conn.execute(
        "SELECT k.* FROM knowledge k JOIN (SELECT topic, MAX(version) AS v FROM knowledge "
        "GROUP BY topic) m ON k.topic = m.topic AND k.version = m.v "
        "WHERE k.deleted = 0 ORDER BY k.topic").fetchall()
    entries = [entry_from_row(r) for r in rows]
    return [e for e in entries if tag is None or tag in e.tags]
