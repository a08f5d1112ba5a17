"""One state machine for every store: the task lifecycle as data and pure functions.

These rules run INSIDE a store's atomic step, so they live below `store/` and `core/` alike:
the SQLite store calls them, and the Redis store's Lua scripts receive them as data in
their generated header (`store/redis/scripts.py: header`), so no Lua file restates them.

Adding a status is a change here and in `models.TaskStatus`: its edges in `EDGES` (its
class, final or held, follows from them and from `HELD`). Everything below, the SQL status
lists and the Lua header included, is derived from these tables.

Every function takes `now` when it needs time and reads no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import IllegalTransition
from .models import Task, TaskSpec, TaskStatus

S = TaskStatus

#: Every move a task can make (DESIGN.md), one line per status it leaves. `ready ->
#: in_progress` is the claim of a ready task; `assigned -> ready` is an offer nobody claimed
#: in time; `in_progress -> ready` an attempt that expired or was released.
#: `in_progress -> input_required` is the holder asking the operator a question (its lease
#: clock stops); the answer sends it back to `in_progress` for the same holder, or to
#: `ready` when that holder is gone (or went while it waited).
#: `in_progress -> waiting` is a split (the holder handed the work to subtasks); a waiting
#: parent completes once every subtask did, fails when one fails for good, or is cancelled.
EDGES = """
    pending        -> ready blocked cancelled
    ready          -> assigned in_progress cancelled
    assigned       -> in_progress ready cancelled
    in_progress    -> completed failed ready cancelled input_required waiting
    input_required -> in_progress ready cancelled
    waiting        -> completed failed cancelled
"""


def _parse(table: str) -> frozenset[tuple[TaskStatus, TaskStatus]]:
    pairs = set()
    for line in filter(None, (raw.strip() for raw in table.splitlines())):
        old, _, news = line.partition("->")
        pairs |= {(S(old.strip()), S(new)) for new in news.split()}
    return frozenset(pairs)


TRANSITIONS: frozenset[tuple[TaskStatus, TaskStatus]] = _parse(EDGES)
#: a task never leaves these (`blocked` too: a dependency of it can no longer complete)
FINAL = frozenset(s for s in S if not any(old == s for old, _ in TRANSITIONS))
#: a session holds the task: an offer (`assigned`), a lease (`in_progress`) or a lease whose
#: clock stopped while its question waits for the operator (`input_required`)
HELD = frozenset({S.ASSIGNED, S.IN_PROGRESS, S.INPUT_REQUIRED})
#: held without a running clock: never reaped, released only when the holder goes
PAUSED = frozenset({S.INPUT_REQUIRED})
#: an attempt runs (it has an attempt row that has not ended)
RUNNING = frozenset({S.IN_PROGRESS}) | PAUSED
#: a dependency that ends in one of these can never complete: its dependents are blocked
DEAD = FINAL - {S.COMPLETED}


def check_transition(old: TaskStatus, new: TaskStatus) -> None:
    """Refuse a move the table does not have (a store bug, never a client error)."""
    if (old, new) not in TRANSITIONS:
        raise IllegalTransition(f"task cannot go from {old} to {new}")


# -- dependencies --------------------------------------------------------------------------


def status_from_deps(dep_statuses: Iterable[TaskStatus]) -> TaskStatus:
    """pending while a dependency is open, blocked once one can never complete, else ready."""
    statuses = list(dep_statuses)
    if any(s in DEAD for s in statuses):
        return S.BLOCKED
    if all(s == S.COMPLETED for s in statuses):
        return S.READY
    return S.PENDING


# -- releasing held work -------------------------------------------------------------------

#: (held status, may it run again?) -> where the task goes when its holder lets it go without
#: success: an offer was never started and goes back as it was; an attempt goes back to the
#: queue while a retry is wanted and attempts remain, else it fails for good. A task waiting
#: for the operator's answer never fails because its holder went (the attempt waited, it did
#: not fail): it goes back to the queue, the answer kept in its notes.
RELEASE: Mapping[tuple[TaskStatus, bool], TaskStatus] = {
    (S.ASSIGNED, True): S.READY,
    (S.ASSIGNED, False): S.READY,
    (S.IN_PROGRESS, True): S.READY,
    (S.IN_PROGRESS, False): S.FAILED,
    (S.INPUT_REQUIRED, True): S.READY,
    (S.INPUT_REQUIRED, False): S.READY,
}


#: the error an attempt ends with when it does not count against max_attempts: given back
#: by its holder (by choice, or for a preemption), revoked past a preemption's grace, or cut
#: short while it waited for the operator's answer. How a reader of the history (the chaos
#: checker) tells them from the attempts that count.
RELEASED_BY_CHOICE = "released"
RELEASED_PREEMPTED = "preempted"
REVOKED = "preempted: the grace ran out"
ANSWERED_AFTER_LEAVING = "answered after its holder left"
WAITED_WHEN_GONE = "waited for input when its session went"
UNCOUNTED = frozenset({RELEASED_BY_CHOICE, RELEASED_PREEMPTED, REVOKED, ANSWERED_AFTER_LEAVING,
                       WAITED_WHEN_GONE})


def counted(error: str | None) -> bool:
    """Does an ended attempt with this error count against max_attempts?"""
    return error not in UNCOUNTED


def may_retry(task: Task, retry: bool) -> bool:
    """A retry is wanted and the task has attempts left."""
    return retry and task.attempts < task.max_attempts


def after_release(task: Task, retry: bool) -> TaskStatus:
    """Where a held task goes when its offer or attempt ends without success (failed,
    expired, released, its session gone)."""
    return RELEASE[(task.status, may_retry(task, retry))]


def lease_ttl(heartbeat_interval: float, lease_factor: float) -> float:
    """A lease lasts `lease_factor` heartbeat intervals of its session (so does a silent
    session before it counts as offline)."""
    return lease_factor * heartbeat_interval


def lease_deadline(now: float, heartbeat_interval: float, lease_factor: float) -> float:
    return now + lease_ttl(heartbeat_interval, lease_factor)


def renewed(task: Task, now: float, heartbeat_interval: float, lease_factor: float) -> float:
    """A renewed lease: a preempted one runs no further than its grace."""
    deadline = lease_deadline(now, heartbeat_interval, lease_factor)
    return deadline if task.preempt_at is None else min(deadline, task.preempt_at)


def mark_preempted(task: Task, deadline: float) -> None:
    """Preempt the current attempt: its lease ends at `deadline` at the latest (a second
    preemption never lengthens the grace of the first)."""
    task.preempt_at = deadline if task.preempt_at is None else min(task.preempt_at, deadline)
    if task.lease_expires_at is not None:
        task.lease_expires_at = min(task.lease_expires_at, task.preempt_at)


def question_open(status: TaskStatus, notes: Iterable[Mapping[str, object]]) -> bool:
    """The task's last question has no answer yet and the task is not over (its holder
    may have gone while it waited: the answer then waits in the queue with it)."""
    if status in FINAL:
        return False
    kinds = [n.get("kind") for n in notes if n.get("kind") in ("question", "answer")]
    return bool(kinds) and kinds[-1] == "question"


# -- priority ------------------------------------------------------------------------------

BASE_PRIORITY = 5
MAX_PRIORITY = 10
#: the emergency class (POST /swarm/emergency, operators only): above every priority a task
#: may be given, so it heads every ready index and every scheduler's order
EMERGENCY_PRIORITY = MAX_PRIORITY + 1
#: the seed's bonuses over BASE_PRIORITY for a task without a given priority
BONUS = {"critical": 3, "infinite_scale": 2, "roi_high": 1, "deps_met": 1}


def compute_priority(spec: TaskSpec | Task, deps_met: bool) -> int:
    """The seed's rule: 5; +3 critical, +2 infinite_scale, +1 roi "high", +1 dependencies met.

    A task without dependencies has its dependencies met, so a plain task gets 6. Capped at 10.
    """
    p = BASE_PRIORITY
    p += BONUS["critical"] if spec.critical else 0
    p += BONUS["infinite_scale"] if spec.infinite_scale else 0
    p += BONUS["roi_high"] if (spec.roi or "").lower() == "high" else 0
    p += BONUS["deps_met"] if deps_met else 0
    return min(p, MAX_PRIORITY)


def ready_priority(task: Task) -> int:
    """The priority a task has once it is ready: a given one stays, a computed one gains the
    dependencies-met bonus."""
    return task.priority if task.priority_given else compute_priority(task, deps_met=True)


def on_ready(task: Task) -> None:
    """pending -> ready once every dependency completed, with its ready priority."""
    check_transition(task.status, S.READY)
    task.status, task.priority = S.READY, ready_priority(task)


# -- the score -----------------------------------------------------------------------------

SCORE_ALPHA = 0.2
#: a new session's score, overall and per capability
SCORE_START = 0.5


def updated_score(old: float, success: bool) -> float:
    """Exponentially weighted success rate: recent attempts count most."""
    return (1 - SCORE_ALPHA) * old + SCORE_ALPHA * (1.0 if success else 0.0)
