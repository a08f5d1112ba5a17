"""Usage and the rate-limited state: the writes the outcome steps share (tasks.py calls them
inside their own transaction), and the reads of the sums.

The attempt keeps its report in `attempts.usage`; the session's sums live in
`sessions.usage`, the task type's and the swarm's in `usage_totals` (scope "type" or
"swarm"), all JSON objects moved by the rule of `unified_swarm.usage`, in the same step.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from ... import usage as rule
from ...jsonutil import dumps, loads
from ...models import JSON, USAGE_TYPES, Event, Task
from .rows import emit

Conn = sqlite3.Connection


def record(conn: Conn, t: Task, session_id: str, report: Mapping[str, float] | None
           ) -> dict[str, float] | None:
    """Keep `report` on the attempt of `t`'s current token and add what it gained to the
    sums of the session, the task type and the swarm. Returns what the attempt keeps now
    (None when it never reported)."""
    row = conn.execute("SELECT usage FROM attempts WHERE task_id = ? AND fencing_token = ?",
                       (t.id, t.fencing_token)).fetchone()
    kept = None if row is None or row[0] is None else loads(row[0])
    if report is None:
        return kept
    now, gained = rule.grow(kept, report)
    if not rule.moved(gained):
        return kept
    conn.execute("UPDATE attempts SET usage = ? WHERE task_id = ? AND fencing_token = ?",
                 (dumps(now), t.id, t.fencing_token))
    sums = conn.execute("SELECT usage FROM sessions WHERE id = ?", (session_id,)).fetchone()
    mine = rule.add(None if sums is None or sums[0] is None else loads(sums[0]), gained)
    conn.execute("UPDATE sessions SET usage = ? WHERE id = ?", (dumps(mine), session_id))
    for scope, name in (("type", t.type), ("swarm", "")):
        _add_total(conn, scope, name, gained)
    return now


def _add_total(conn: Conn, scope: str, name: str, gained: Mapping[str, float]) -> None:
    row = conn.execute("SELECT sums FROM usage_totals WHERE scope = ? AND name = ?",
                       (scope, name)).fetchone()
    sums = rule.add(None if row is None else loads(row[0]), gained)
    conn.execute("INSERT INTO usage_totals (scope, name, sums, cost_usd) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (scope, name) DO UPDATE SET sums = excluded.sums, "
                 "cost_usd = excluded.cost_usd", (scope, name, dumps(sums), sums["cost_usd"]))


def set_rate_limited(conn: Conn, ev: list[Event], session_id: str,
                     state: dict[str, JSON] | None, now: float) -> None:
    """The session's rate-limited state becomes `state` (None: cleared); a change emits
    `session.rate_limited`."""
    row = conn.execute("SELECT rate_limited FROM sessions WHERE id = ?",
                       (session_id,)).fetchone()
    old = None if row is None or row[0] is None else loads(row[0])
    if old == state:
        return
    conn.execute("UPDATE sessions SET rate_limited = ? WHERE id = ?",
                 (None if state is None else dumps(state), session_id))
    emit(conn, ev, "session.rate_limited", now,
         {"session_id": session_id, "rate_limited": state})


def totals(conn: Conn) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """The swarm's sums, and those of the USAGE_TYPES costliest task types."""
    swarm = conn.execute("SELECT sums FROM usage_totals WHERE scope = 'swarm'").fetchone()
    rows = conn.execute("SELECT name, sums FROM usage_totals WHERE scope = 'type' "
                        "ORDER BY cost_usd DESC, name LIMIT ?", (USAGE_TYPES,)).fetchall()
    return ({} if swarm is None else loads(swarm[0])), {r[0]: loads(r[1]) for r in rows}
