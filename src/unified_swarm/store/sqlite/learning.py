"""What the learned scheduler keeps in the store: per-(session, capability) statistics,
moved inside the step that records each outcome (`stats.apply` with the shared rule),
circuit breakers and detected capabilities. Steps taking `ev` run inside the writer's
transaction; the others are reads."""

from __future__ import annotations

import sqlite3

from ... import stats
from ...jsonutil import dumps
from ...models import Event, Quarantine
from ...stats import ANY, PairStats
from .rows import emit

Conn = sqlite3.Connection
FIELDS = stats.FIELDS
UPSERT = (f"INSERT OR REPLACE INTO stats (session_id, capability, {', '.join(FIELDS)}) "
          f"VALUES (?, ?, {', '.join('?' * len(FIELDS))})")


def _row(conn: Conn, session_id: str, capability: str) -> PairStats:
    row = conn.execute("SELECT * FROM stats WHERE session_id = ? AND capability = ?",
                       (session_id, capability)).fetchone()
    return PairStats() if row is None else PairStats.from_mapping(dict(row))


def learn(conn: Conn, session_id: str, capability: str, success: bool,
          duration: float, estimated_hours: float | None) -> dict[str, PairStats]:
    """Move the session's statistics on the capability and its totals by one outcome."""
    rule = stats.ON_SUCCESS if success else stats.ON_FAILURE
    size = stats.size_of(estimated_hours)
    out = {}
    for cap in (capability, ANY):
        new = stats.apply(_row(conn, session_id, cap), rule, duration, size)
        conn.execute(UPSERT, (session_id, cap, *(getattr(new, f) for f in FIELDS)))
        out[cap] = new
    return out


def wire(moved: dict[str, PairStats]) -> dict[str, dict[str, float | int]]:
    """Statistics as an event carries them."""
    return {cap: st.wire() for cap, st in moved.items()}


def all_stats(conn: Conn) -> list[tuple[str, str, PairStats]]:
    rows = conn.execute("SELECT * FROM stats ORDER BY session_id, capability").fetchall()
    return [(r["session_id"], r["capability"], PairStats.from_mapping(dict(r))) for r in rows]


def quarantines(conn: Conn) -> list[Quarantine]:
    rows = conn.execute("SELECT * FROM quarantines ORDER BY session_id, capability")
    return [Quarantine(r["session_id"], r["capability"], r["until"], r["ejections"])
            for r in rows]


def set_quarantine(conn: Conn, ev: list[Event], session_id: str, capability: str,
                   record: Quarantine | None, expected: int, now: float) -> bool:
    """Open (or re-open) a breaker, or close it (`record` None), if the ejections stored
    are still `expected` (0: none): a compare-and-set, so two deciders never stack."""
    row = conn.execute("SELECT ejections FROM quarantines WHERE session_id = ? AND "
                       "capability = ?", (session_id, capability)).fetchone()
    if (0 if row is None else row[0]) != expected:
        return False
    data = {"session_id": session_id, "capability": None if capability == ANY else capability}
    if record is None:
        if row is None:
            return True
        conn.execute("DELETE FROM quarantines WHERE session_id = ? AND capability = ?",
                     (session_id, capability))
        emit(conn, ev, "session.restored", now, data)
        return True
    conn.execute("INSERT OR REPLACE INTO quarantines (session_id, capability, until, ejections)"
                 " VALUES (?, ?, ?, ?)", (session_id, capability, record.until,
                                          record.ejections))
    emit(conn, ev, "session.quarantined", now,
         data | {"until": record.until, "ejections": record.ejections})
    return True


def set_detected(conn: Conn, ev: list[Event], session_id: str, capabilities: list[str],
                 now: float) -> None:
    conn.execute("UPDATE sessions SET detected_capabilities = ? WHERE id = ?",
                 (dumps(sorted(capabilities)), session_id))
    emit(conn, ev, "session.detected", now,
         {"session_id": session_id, "detected_capabilities": sorted(capabilities)})
