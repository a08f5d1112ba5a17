"""What a demo run did, from the server's records (every task with its attempt history)
and the workers' side-effect ledger: done, wall time, utilization, duplicates."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..client.types import Session, TaskDetail
from ..core.bounds import Bounds

FINAL = frozenset({"completed", "failed", "cancelled", "blocked"})


def seconds(stamp: str | None) -> float | None:
    return None if stamp is None else datetime.fromisoformat(stamp).timestamp()


def read_ledger(path: Path) -> Counter[str]:
    """Side effects per task: one ledger line per attempt that ran to its end."""
    runs: Counter[str] = Counter()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            if line.strip():
                runs[line.split()[0]] += 1
    return runs


@dataclass(slots=True)
class Summary:
    """Counts of one run. `ok` when every task completed exactly once, by the server's
    history and by the side-effect ledger alike."""

    total: int
    by_status: Counter[str]
    attempts: int
    retried: list[str]
    wall: float
    busy: float
    slots: int
    twice_recorded: list[str]
    ledger: Counter[str]
    per_worker: Counter[str] = field(default_factory=Counter)
    #: how short the run could have been at best (core/bounds.py), when known
    bounds: Bounds | None = None
    #: per capability, the sessions the learned model found fastest: "build: w2 2.1x, ..."
    fastest: list[str] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return self.by_status["completed"]

    @property
    def utilization(self) -> float:
        return self.busy / (self.wall * self.slots) if self.wall > 0 and self.slots else 0.0

    @property
    def ran_twice(self) -> list[str]:
        return sorted(t for t, n in self.ledger.items() if n > 1)

    @property
    def duplicates(self) -> int:
        return len(set(self.twice_recorded) | set(self.ran_twice))

    @property
    def ok(self) -> bool:
        return (self.completed == self.total and self.duplicates == 0
                and sum(self.ledger.values()) == self.total)

    def lines(self) -> list[str]:
        others = ", ".join(f"{n} {s}" for s, n in sorted(self.by_status.items())
                           if s != "completed") or "none failed"
        retried = (f"; retried after a failure: {', '.join(self.retried)}" if self.retried
                   else "")
        workers = ", ".join(f"{w} {n}" for w, n in sorted(self.per_worker.items()))
        dup = (f"{self.duplicates}  (no task completed twice in the server's history; "
               f"{sum(self.ledger.values())} side effects for {self.total} tasks)")
        if self.duplicates:
            dup = (f"{self.duplicates}  recorded twice: {self.twice_recorded or 'none'}; "
                   f"ran twice: {self.ran_twice or 'none'}")
        return [
            f"tasks        {self.completed} of {self.total} completed ({others}), "
            f"{self.attempts} attempts{retried}",
            f"wall time    {self.wall:.1f} s from submitting the workload to its last task",
            *self._against_bound(),
            f"utilization  {self.utilization:.0%}  ({self.busy:.1f} s of task time on "
            f"{self.slots} worker slots){self._utilization_note()}",
            f"duplicates   {dup}",
            f"by worker    {workers or 'nobody'}",
            *([f"fastest      {self.fastest[0]}"] + [f"             {f}" for f in self.fastest[1:]]
              if self.fastest else []),
        ]

    def _against_bound(self) -> list[str]:
        if self.bounds is None or self.bounds.lower <= 0:
            return []
        b = self.bounds
        return [f"makespan     {self.wall / b.lower:.2f}x its lower bound of {b.lower:.1f} s "
                f"(critical path at the fastest speeds {b.critical_path:.1f} s, load "
                f"{b.load:.1f} s): no schedule finishes sooner"]

    def _utilization_note(self) -> str:
        """Low utilization is no failure when the DAG itself leaves slots idle: say how much
        the dependencies allowed at best (the task time over the shortest makespan)."""
        if self.bounds is None or self.bounds.lower <= 0 or not self.slots:
            return ""
        allowed = min(self.busy / (self.bounds.lower * self.slots), 1.0)
        return f"; the dependencies allowed at most {allowed:.0%} at this much work"


def summarize(details: Iterable[TaskDetail], ledger: Counter[str], submitted: float,
              slots: int, finished: float | None = None) -> Summary:
    """`submitted`: when the workload went in (epoch seconds); `finished`: when the run
    ended (default: the last completion)."""
    by_status: Counter[str] = Counter()
    per_worker: Counter[str] = Counter()
    attempts, busy, last = 0, 0.0, submitted
    retried: list[str] = []
    twice: list[str] = []
    total = 0
    for detail in details:
        total += 1
        task, history = detail["task"], detail["history"]
        by_status[task["status"]] += 1
        attempts += len(history)
        if len(history) > 1:
            retried.append(task["id"])
        wins = [a for a in history if a["outcome"] == "completed"]
        if len(wins) > 1:
            twice.append(task["id"])
        for a in wins:
            per_worker[a["session_id"]] += 1
        busy += sum(a["duration"] or 0.0 for a in history)
        ended = seconds(task["completed_at"])
        if ended is not None:
            last = max(last, ended)
    wall = (finished if finished is not None else last) - submitted
    return Summary(total, by_status, attempts, retried, max(wall, 0.0), busy, slots, twice,
                   ledger, per_worker)


def fastest(sessions: Iterable[Session]) -> list[str]:
    """Per capability, the sessions the learned model saw run it, fastest first (speed
    against the pool on that capability), as summary lines."""
    by_cap: dict[str, list[tuple[float, str]]] = {}
    for s in sessions:
        for cap, st in (s.get("stats") or {}).items():
            speed = st.get("speed")
            if speed is not None:
                by_cap.setdefault(cap, []).append((float(speed), s["id"]))
    return [f"{cap}: " + ", ".join(f"{sid} {speed:.2f}x" for speed, sid in
                                   sorted(rows, reverse=True))
            for cap, rows in sorted(by_cap.items())]


def is_final(statuses: Mapping[str, str]) -> bool:
    return all(s in FINAL for s in statuses.values())
