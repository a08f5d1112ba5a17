"""The choice: which ready task a free session should start, and when to leave a task for a
faster session that will be free soon (DESIGN: Learned scheduling; research/scheduling.md
§1.3, HEFT-online with reservations). Pure functions over the `Brain`'s picture.

Order of concerns, for one session asking:
1. priority class: candidates come best-first by (priority, upward rank, age), so the
   remaining critical path starts first within a class;
2. fit: the session's expected finish time (duration / P(success), from now) against the
   best other session's (from when it is expected free). When another session would finish
   the task more than `tolerance` sooner, the task is *held* for it (Kubernetes nominates a
   node the same way) for no longer than the time it expects to gain, and the asking session
   looks at the next candidate;
3. exploration: on tasks with slack (off the critical path) the session's own estimates are
   Thompson draws, so uncertain sessions get tried; the critical path uses posterior means.

Several waiting sessions are matched in one solve (`match`): the Hungarian method
(`scipy.optimize.linear_sum_assignment`) up to `lsa_limit` sessions, greedy earliest-finish
above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

#: a cost no real assignment reaches: pairs a session cannot take
INFEASIBLE = 1e18


@dataclass(frozen=True, slots=True)
class ChoiceParams:
    #: ready tasks one decision looks at (best first)
    candidates: int = 16
    #: hold a task for another session only when it finishes this much sooner
    tolerance: float = 0.15
    #: never hold a task longer than this, whatever the expected gain (seconds)
    max_hold: float = 300.0
    explore: bool = True
    #: sessions per solve up to which matching is optimal (LSA), greedy above
    lsa_limit: int = 300


@dataclass(frozen=True, slots=True)
class Hold:
    """A task left for a session expected to finish it sooner, until `until`."""

    task_id: str
    session_id: str
    until: float


@dataclass(frozen=True, slots=True)
class Decision:
    task_id: str | None
    #: the expected duration of the chosen task on the asking session
    predicted: float | None = None
    #: nothing now: look again at this time (a hold runs out), or None (wait for news)
    retry_at: float | None = None
    holds: tuple[Hold, ...] = ()


@dataclass(frozen=True, slots=True)
class Option:
    session_id: str
    finish: float


#: (session, task) -> (expected finish time, expected duration); `explore` asks for a draw
Finish = Callable[[str, str, bool], tuple[float, float]]
#: (task, sessions to leave out) -> the best other session for it, if any
Alternative = Callable[[str, frozenset[str]], Option | None]


def decide(session_id: str, candidates: Sequence[str], finish: Finish,
           alternative: Alternative, held_for: Callable[[str], str | None],
           slack: Callable[[str], float], now: float, params: ChoiceParams,
           hold_limit: Callable[[str], float] = lambda _: math.inf) -> Decision:
    """The first candidate this session should start, leaving tasks a faster session will
    finish sooner held for it. `held_for(task)` names the session a running hold is for;
    `hold_limit(task)` is the latest a task may still be held (the end of its first hold:
    a hold never outlasts the gain expected when it began, however often it is renewed)."""
    holds: list[Hold] = []
    busy: set[str] = {session_id}
    for tid in candidates:
        holder = held_for(tid)
        if holder is not None and holder != session_id:
            continue
        explore = params.explore and holder is None
        mine, expected = finish(session_id, tid, False)
        if explore and slack(tid) > expected:
            mine, _ = finish(session_id, tid, True)
        if holder == session_id:
            return Decision(tid, expected, None, tuple(holds))
        alt = alternative(tid, frozenset(busy))
        limit = hold_limit(tid)
        # finish times are clock readings: compare what is left of them from now
        if alt is None or limit <= now or \
                mine - now <= (alt.finish - now) * (1 + params.tolerance):
            return Decision(tid, expected, None, tuple(holds))
        gain = mine - alt.finish
        holds.append(Hold(tid, alt.session_id, min(now + min(gain, params.max_hold), limit)))
        busy.add(alt.session_id)
    retry = min((h.until for h in holds), default=None)
    return Decision(None, None, retry, tuple(holds))


def match(free: Sequence[str], soon: Sequence[tuple[str, float]], tasks: Sequence[str],
          kind: Callable[[str], str], size: Callable[[str], float],
          cost: Callable[[str, str], float], now: float,
          params: ChoiceParams) -> tuple[dict[str, str], list[Hold]]:
    """Assign the best-ranked tasks to free sessions and to sessions free soon in one solve.

    `tasks` come best first; the top |free| + |soon| of them are placed, each where it is
    expected to finish first overall (minimum total finish time). `cost(session, kind)` is
    the expected time a session needs for a task of that kind (its capability) and of size
    1, or INFEASIBLE; a task takes `size(task)` times that. Returns proposals for free
    sessions (session -> task) and holds for the soon-free ones (each no longer than what
    it saves against the best free session, nor `max_hold`).
    """
    columns = list(free) + [s for s, _ in soon]
    rows = list(tasks[:len(columns)])
    if not rows or not columns:
        return {}, []
    start = np.array([now] * len(free) + [max(at, now) for _, at in soon])
    by_kind: dict[str, np.ndarray] = {}
    for t in rows:
        k = kind(t)
        if k not in by_kind:
            by_kind[k] = np.array([cost(s, k) for s in columns])
    table = np.vstack([start + by_kind[kind(t)] * size(t) for t in rows])
    proposals: dict[str, str] = {}
    holds: list[Hold] = []
    for r, c in _solve(table, params.lsa_limit):
        if table[r, c] >= INFEASIBLE:
            continue
        sid, tid = columns[c], rows[r]
        if c < len(free):
            proposals[sid] = tid
            continue
        if not free:
            continue  # nobody free to compare with: no reason to hold anything
        gain = float(table[r, :len(free)].min()) - float(table[r, c])
        if gain > 0:
            holds.append(Hold(tid, sid, now + min(gain, params.max_hold)))
    return proposals, holds


def _solve(table: np.ndarray, lsa_limit: int) -> list[tuple[int, int]]:
    """Minimum-total-cost assignment of rows to distinct columns."""
    if table.shape[1] <= lsa_limit:
        rows, cols = linear_sum_assignment(table)
        return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]
    return greedy(table)


def greedy(table: np.ndarray) -> list[tuple[int, int]]:
    """Rows in order (best-ranked first), each to its earliest-finishing free column."""
    open_ = np.ones(table.shape[1], dtype=bool)
    out = []
    for r in range(table.shape[0]):
        if not open_.any():
            break
        c = int(np.argmin(np.where(open_, table[r], np.inf)))
        open_[c] = False
        out.append((r, c))
    return out

