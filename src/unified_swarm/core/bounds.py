"""How short a DAG's makespan can be on given workers, and a schedule that gets close.

Pure: a DAG is a list of `Node`s, and `durations[task][worker]` says how long the task takes
on that worker (a missing worker cannot run it). From these:

- `critical_path`: the longest dependency chain, each task at its fastest worker;
- `lp_load_bound`: the LP relaxation of makespan on unrelated machines without precedence,
  `min T` such that each task is spread over workers (`sum_w x[t,w] = 1`) and no worker's share
  of the work exceeds its slots times T (`sum_t x[t,w] * p[t,w] <= slots[w] * T`). With workers
  of different speeds, total work over the worker count is *not* a bound; this LP is;
- `lower_bounds`: both, and their maximum, which no schedule can beat;
- `heft`: HEFT (Topcuoglu, Hariri, Wu 2002) without communication costs: tasks in decreasing
  upward rank (mean duration plus the longest rank among successors), each put where it
  finishes earliest, idle gaps included, so it waits for a fast busy worker rather than take a
  slow idle one;
- `schedule_errors`: what is wrong with a schedule (tests use it on HEFT's).

scipy is imported only by `lp_load_bound`, when it runs.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: durations[task id][worker id] = seconds; a worker missing from a task's row cannot run it
Durations = Mapping[str, Mapping[str, float]]
#: tolerance when comparing times that went through sums
EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Node:
    """One task of a DAG: its id, its type (the capability it needs), its base duration in
    seconds (before any worker's speed) and the ids it depends on."""

    id: str
    type: str
    work: float
    deps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Bounds:
    """Two valid lower bounds on the makespan; `lower` is the larger."""

    critical_path: float
    load: float

    @property
    def lower(self) -> float:
        return max(self.critical_path, self.load)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where and when a schedule runs one task; `slot` numbers a worker's parallel slots."""

    task: str
    worker: str
    slot: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Schedule:
    placements: Mapping[str, Placement]

    @property
    def makespan(self) -> float:
        return max((p.end for p in self.placements.values()), default=0.0)


def topological(nodes: Sequence[Node]) -> list[Node]:
    """The nodes in dependency order (Kahn; ties keep the given order). ValueError on a
    duplicate id, an unknown dependency or a cycle."""
    by_id = {n.id: n for n in nodes}
    if len(by_id) != len(nodes):
        raise ValueError("duplicate task id in the DAG")
    waiting = {n.id: len(set(n.deps)) for n in nodes}
    children: dict[str, list[str]] = {n.id: [] for n in nodes}
    index = {n.id: i for i, n in enumerate(nodes)}
    for n in nodes:
        for d in set(n.deps):
            if d not in by_id:
                raise ValueError(f"{n.id} depends on unknown task {d}")
            children[d].append(n.id)
    ready = [(index[i], i) for i, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    out: list[Node] = []
    while ready:
        _, tid = heapq.heappop(ready)
        out.append(by_id[tid])
        for c in children[tid]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (index[c], c))
    if len(out) != len(nodes):
        raise ValueError("the DAG has a cycle")
    return out


def _fastest(durations: Durations, task: str) -> float:
    row = durations.get(task) or {}
    if not row:
        raise ValueError(f"no worker can run {task}")
    return min(row.values())


def critical_path(nodes: Sequence[Node], durations: Durations) -> float:
    """The longest chain of dependencies, every task on its fastest worker."""
    finish: dict[str, float] = {}
    for n in topological(nodes):
        start = max((finish[d] for d in n.deps), default=0.0)
        finish[n.id] = start + _fastest(durations, n.id)
    return max(finish.values(), default=0.0)


def lp_load_bound(nodes: Sequence[Node], durations: Durations,
                  slots: Mapping[str, int] | None = None) -> float:
    """The optimum T of the load LP in the module docstring (HiGHS through
    `scipy.optimize.linprog`). Needs scipy: `pip install 'unified-swarm[bench]'`."""
    if not nodes:
        return 0.0
    try:
        import numpy as np
        from scipy.optimize import linprog
        from scipy.sparse import coo_matrix
    except ImportError as exc:  # pragma: no cover - the message is the point
        raise ImportError("the LP bound needs scipy: pip install scipy") from exc
    workers = sorted({w for n in nodes for w in durations.get(n.id, {})})
    col = {w: i for i, w in enumerate(workers)}
    pairs = [(t, n.id, w, p) for t, n in enumerate(nodes)
             for w, p in sorted(durations.get(n.id, {}).items())]
    if len({t for t, *_ in pairs}) != len(nodes):
        raise ValueError("some task has no worker that can run it")
    nvar = len(pairs) + 1  # x[t,w] for each feasible pair, then T last
    k = range(len(pairs))
    a_eq = coo_matrix((np.ones(len(pairs)), (np.array([pairs[i][0] for i in k], dtype=np.int64),
                                              np.arange(len(pairs), dtype=np.int64))),
                      shape=(len(nodes), nvar))
    rows = [col[pairs[i][2]] for i in k] + list(range(len(workers)))
    cols = list(k) + [nvar - 1] * len(workers)
    vals = [pairs[i][3] for i in k] + [-float((slots or {}).get(w, 1)) for w in workers]
    a_ub = coo_matrix((np.array(vals), (np.array(rows, dtype=np.int64),
                                        np.array(cols, dtype=np.int64))),
                      shape=(len(workers), nvar))
    cost = np.array([0.0] * (nvar - 1) + [1.0])
    bounds: list[tuple[float, float | None]] = [(0.0, 1.0)] * (nvar - 1) + [(0.0, None)]
    res = linprog(cost, A_ub=a_ub.toarray(), b_ub=np.zeros(len(workers)),
                  A_eq=a_eq.toarray(), b_eq=np.ones(len(nodes)), bounds=bounds,
                  method="highs")
    if res.status != 0:
        raise ArithmeticError(f"the load LP did not solve: {res.message}")
    # HiGHS answers within its tolerance; shave it so the bound stays below the true optimum
    assert res.fun is not None  # solved (status 0)
    return max(0.0, float(res.fun) * (1 - 1e-7))


def lower_bounds(nodes: Sequence[Node], durations: Durations,
                 slots: Mapping[str, int] | None = None) -> Bounds:
    """Both bounds; `Bounds.lower` is a makespan no schedule on these workers can beat."""
    return Bounds(critical_path(nodes, durations), lp_load_bound(nodes, durations, slots))


def upward_ranks(nodes: Sequence[Node], cost: Mapping[str, float]) -> dict[str, float]:
    """Each task's cost plus the largest rank among the tasks that depend on it: the work
    left on the longest path from its start to the end of the DAG."""
    children: dict[str, list[str]] = {n.id: [] for n in nodes}
    for n in nodes:
        for d in set(n.deps):
            children[d].append(n.id)
    rank: dict[str, float] = {}
    for n in reversed(topological(nodes)):
        rank[n.id] = cost[n.id] + max((rank[c] for c in children[n.id]), default=0.0)
    return rank


def heft(nodes: Sequence[Node], durations: Durations,
         slots: Mapping[str, int] | None = None) -> Schedule:
    """HEFT with insertion: see the module docstring. Ties go to the worker listed first
    (sorted ids), so the schedule is deterministic."""
    order = {n.id: i for i, n in enumerate(topological(nodes))}
    mean = {n.id: _mean(durations, n.id) for n in nodes}
    rank = upward_ranks(nodes, mean)
    busy: dict[tuple[str, int], list[tuple[float, float]]] = {}
    placed: dict[str, Placement] = {}
    by_id = {n.id: n for n in nodes}
    for tid in sorted(by_id, key=lambda t: (-rank[t], order[t])):
        ready = max((placed[d].end for d in by_id[tid].deps), default=0.0)
        best: Placement | None = None
        for w, p in sorted(durations[tid].items()):
            for s in range((slots or {}).get(w, 1)):
                start = _earliest_gap(busy.get((w, s), []), ready, p)
                if best is None or start + p < best.end - EPS:
                    best = Placement(tid, w, s, start, start + p)
        assert best is not None  # _mean refused a task no worker can run
        placed[tid] = best
        _insert(busy.setdefault((best.worker, best.slot), []), (best.start, best.end))
    return Schedule(placed)


def _mean(durations: Durations, task: str) -> float:
    _fastest(durations, task)  # refuses a task with no worker
    row = durations[task]
    return sum(row.values()) / len(row)


def _earliest_gap(intervals: list[tuple[float, float]], ready: float, length: float) -> float:
    """The earliest start >= ready at which `length` fits between sorted busy intervals."""
    start = ready
    for a, b in intervals:
        if start + length <= a + EPS:
            return start
        start = max(start, b)
    return start


def _insert(intervals: list[tuple[float, float]], iv: tuple[float, float]) -> None:
    i = 0
    while i < len(intervals) and intervals[i] < iv:
        i += 1
    intervals.insert(i, iv)


def schedule_errors(nodes: Sequence[Node], durations: Durations, schedule: Schedule,
                    slots: Mapping[str, int] | None = None) -> list[str]:
    """Everything that makes `schedule` impossible: a task missing, unknown or on a worker
    that cannot run it, a wrong duration, a start before time 0 or before a dependency ends,
    two tasks at once on one worker slot, a slot the worker does not have."""
    errors: list[str] = []
    ids = {n.id for n in nodes}
    errors += [f"{t} is not scheduled" for t in sorted(ids - set(schedule.placements))]
    errors += [f"{t} is not in the DAG" for t in sorted(set(schedule.placements) - ids)]
    for n in nodes:
        p = schedule.placements.get(n.id)
        if p is not None:
            errors += _placement_errors(n, p, durations, schedule, slots or {})
    errors += _overlaps(schedule)
    return errors


def _placement_errors(n: Node, p: Placement, durations: Durations, schedule: Schedule,
                      slots: Mapping[str, int]) -> list[str]:
    out: list[str] = []
    want = (durations.get(n.id) or {}).get(p.worker)
    if p.task != n.id:
        out.append(f"{n.id}'s placement names {p.task}")
    if want is None:
        out.append(f"{n.id} is on {p.worker}, which cannot run it")
    elif not math.isclose(p.end - p.start, want, rel_tol=1e-9, abs_tol=EPS):
        out.append(f"{n.id} lasts {p.end - p.start:g} s on {p.worker}, not {want:g} s")
    if p.start < -EPS:
        out.append(f"{n.id} starts before time 0")
    if not 0 <= p.slot < slots.get(p.worker, 1):
        out.append(f"{n.id} is on slot {p.slot} of {p.worker}, which has no such slot")
    for d in n.deps:
        dep = schedule.placements.get(d)
        if dep is not None and p.start < dep.end - EPS:
            out.append(f"{n.id} starts at {p.start:g} before its dependency {d} ends "
                       f"at {dep.end:g}")
    return out


def _overlaps(schedule: Schedule) -> list[str]:
    lanes: dict[tuple[str, int], list[Placement]] = {}
    for p in schedule.placements.values():
        lanes.setdefault((p.worker, p.slot), []).append(p)
    out: list[str] = []
    for (w, s), lane in sorted(lanes.items()):
        lane.sort(key=lambda p: (p.start, p.end))
        for a, b in itertools.pairwise(lane):
            if b.start < a.end - EPS:
                out.append(f"{a.task} and {b.task} overlap on {w} slot {s}")
    return out
