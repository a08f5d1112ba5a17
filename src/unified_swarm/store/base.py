"""The Store protocol: the atomic primitives the orchestrator is built on.

Policy lives above this seam, in `core/`: which task a session gets and which session gets
an offer (core/scheduling.py), how a batch is planned (core/planning.py), when to reap
and whom to match (core/coordinator.py). A store only keeps state and offers primitives:
read ready candidates, claim or offer a *named* task by compare-and-set, insert a planned
batch if what its plan assumed still holds, record an outcome under a fencing token, reap.
No method here chooses among tasks. The rules that must hold inside a step (which status
may follow which, retry-or-fail, lease deadlines, dependency release, scores) come from
`lifecycle.py`, written once for every backend.

Every method that changes state is ONE atomic step (one SQL transaction begun with BEGIN
IMMEDIATE, or one Redis script) that also appends the events for the change, so the event
log and the state never disagree. Listeners added with `add_listener` hear those events
only after the step is durable.

Rules shared by every method below:

- Usage: an outcome call's `usage` is the attempt's total so far. In the call's own step
  the attempt keeps per field the larger figure (`usage.grow`) and the sums of the session,
  of the task's type and of the swarm gain the increase (`usage.add`); a refused call
  changes none of them.

- `now` is seconds since the epoch, passed in; a backend never reads the clock for rules
  (the Redis backend may substitute the server's TIME for lease deadlines, see its module).
- A lease is valid while `status == in_progress`, `assigned_to` is the caller,
  `fencing_token` matches and `lease_expires_at > now`. Late calls are refused even before
  the reaper has run.
- Outcome calls are idempotent per (task, fencing token): repeating the same complete or fail
  answers `Recorded(duplicate=True)`; a different outcome for a recorded attempt raises
  `OutcomeMismatch`. A session that never held the task gets `Forbidden`; one whose lease is
  gone gets `LeaseLost`.
- A session may start work (claim, be offered) while it is online, not draining, and runs
  fewer leases than its `max_concurrent_tasks`; else `NotClaimable`. A named task that can no
  longer be had (held elsewhere, not ready, a capability the session lacks) is `TaskTaken`
  (a `NotClaimable`): a scheduler moves on to its next candidate.
- Errors raised inside a step leave the store exactly as it was.
- The steps a client cannot repeat safely by themselves (register_session, insert_batch,
  claim, put_knowledge) take an optional `idem` (an Idempotency-Key in its scope, made in
  core/idempotency.py). With one, the step first looks the key up: a kept answer is
  returned as it was, and nothing else happens (`KeyReused` when the key came with
  another request); otherwise the step runs and, when it changed something, keeps its
  answer under the key IN THE SAME atomic step, for `idem.ttl` seconds (store/replay.py).
  Without one, the step does no idempotency work at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..errors import InvalidInput
from ..models import (
    JSON,
    Attempt,
    Candidate,
    Claimed,
    Counts,
    Event,
    EventListener,
    Heartbeat,
    Idem,
    Interrupt,
    KnowledgeEntry,
    Quarantine,
    Reaped,
    Recorded,
    Replay,
    Session,
    Split,
    Task,
    TaskStatus,
)
from ..stats import PairStats

#: an event type a caller may record (`record_event`): dotted lower-case words
EVENT_TYPE_RE = re.compile(r"^[a-z]+(\.[a-z_]+)+\Z")


def cursor_seq(cursor: str | None) -> int:
    """The task seq a `list_tasks` cursor stands for (every store's cursor is the last seq
    of a page; none: from the start); InvalidInput for one no store gave."""
    try:
        return int(cursor) if cursor else 0
    except ValueError:
        raise InvalidInput(f"cursor {cursor!r} is not one this server gave") from None


@runtime_checkable
class Store(Protocol):
    """The storage seam. See the module docstring for the rules every method keeps."""

    #: "sqlite" or "redis", reported by /healthz
    kind: str

    async def open(self) -> None:
        """Connect, create or migrate the schema, check durability settings."""

    async def close(self) -> None:
        """Finish in-flight steps and release connections."""

    def add_listener(self, listener: EventListener) -> None:
        """Hear every committed event (of every process sharing the store, where it can)."""

    # -- sessions ----------------------------------------------------------------------

    async def register_session(self, session: Session, token_hash: str, now: float,
                               idem: Idem | None = None) -> Session:
        """Atomically create the session, or resume it when it exists and is offline.

        A resumed session keeps its history and scores and gets the new token hash.
        Raises AlreadyExists when the id is online. Emits `session.joined`.
        """

    async def session_by_token(self, token_hash: str) -> Session | None:
        """The session whose token hashes to `token_hash`, if any (read only)."""

    async def get_session(self, session_id: str) -> Session | None:
        """One session with its current tasks (read only)."""

    async def list_sessions(self) -> list[Session]:
        """Every session ever registered, offline ones included (read only)."""

    async def heartbeat(self, session_id: str, now: float, status: str | None) -> Heartbeat:
        """Atomically mark the session alive and renew every valid lease it holds.

        Leases run to `now + lease_factor * heartbeat_interval`; an expired lease is not
        revived. An offline session comes back online (`session.joined`, resumed). `status`
        "draining" starts a drain; "idle"/"busy" are the session's own report.
        """

    async def leave_session(self, session_id: str, now: float, reason: str) -> Session:
        """Atomically take the session offline and put what it held back in the queue.

        `reason` "left" (it asked; its token is revoked, attempts end `released`) or
        "offline" (it went silent; attempts end `expired`). Emits `session.left` or
        `session.offline` and one event per task moved.
        """

    async def set_draining(self, session_id: str, now: float) -> Session:
        """Atomically mark the session draining: it keeps its leases, claims nothing new."""

    # -- tasks -------------------------------------------------------------------------

    async def task_statuses(self, task_ids: Sequence[str]) -> dict[str, TaskStatus]:
        """The status of each of these tasks that exists (read only; what a plan reads)."""

    async def insert_batch(self, tasks: Sequence[Task], assumed: Mapping[str, TaskStatus],
                           now: float, idem: Idem | None = None) -> list[Task] | None:
        """Atomically insert a planned batch (all or nothing), in the order given.

        `assumed` holds the statuses of stored tasks the plan read (the batch's dependencies
        outside it): when one of them has changed, nothing is written and the answer is None
        (plan again). Raises AlreadyExists when a task id exists. Gives each task its `seq`
        and timestamps; emits `task.added` each.
        """

    async def get_task(self, task_id: str) -> Task | None:
        """One task (read only)."""

    async def list_tasks(
        self,
        *,
        status: str | None = None,
        capability: str | None = None,
        session: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[Task], str | None]:
        """Tasks in insertion order after `cursor`, filtered; returns the next cursor."""

    async def history(self, task_id: str) -> list[Attempt]:
        """Every attempt of a task, oldest first (read only)."""

    async def notes(self, task_id: str) -> list[JSON]:
        """The task's handoff notes (`models.note`), oldest first (read only)."""

    async def add_note(self, task_id: str, note: dict[str, JSON], now: float) -> None:
        """Atomically append a handoff note (`models.note`) to a task; NotFound when the
        task does not exist. Steps that end an attempt with a note (a release, an answer)
        append theirs in their own step with the stores' internal helper."""

    async def ready_candidates(self, capabilities: Sequence[str],
                               limit: int) -> list[Candidate]:
        """Ready tasks a session with these capabilities may take (read only): at most
        `limit` per capability, best first by the index order (priority, then age), from
        one bounded index read each, however long the queue. No capabilities: any task.
        A candidate may be gone by the time it is claimed (`TaskTaken`)."""

    async def offered_to(self, session_id: str) -> list[Candidate]:
        """The tasks offered to (`assigned` to) this session, oldest first (read only)."""

    async def check_in(self, session_id: str, now: float) -> Session:
        """Atomically note that the session asked for work. Asking proves it alive (like a
        heartbeat): a session that had gone silent comes back online (`session.joined`,
        resumed); one that left stays out. Raises NotFound, or NotClaimable when it cannot
        take work now (left, draining, at max concurrency)."""

    async def claim(self, session_id: str, task_id: str, now: float,
                    predicted: float | None = None, idem: Idem | None = None) -> Claimed:
        """Atomically claim one named task, ready or offered to this session: compare-and-set
        on its status. The claim bumps the fencing token and attempts, starts a lease and an
        attempt row (keeping `predicted`, the duration the scheduler expected, on the
        attempt and in the event), and proves the session alive as `check_in` does. Raises NotFound,
        NotClaimable (the session cannot take work) or TaskTaken (the task is held
        elsewhere, not ready, or needs a capability the session lacks). Emits `task.claimed`.
        """

    async def claim_many(self, session_id: str, picks: Sequence[tuple[str, float | None]],
                         now: float, idem: Idem | None = None) -> list[Claimed]:
        """Atomically claim the named tasks, each `(task id, predicted)`, in the order given,
        as one step (a worker with N free slots asks once): each as `claim` does, except
        that a task that can no longer be had (gone, held elsewhere, not ready, a capability
        the session lacks) is skipped instead of refusing the step, and claiming stops once
        the session runs its `max_concurrent_tasks`. Answers the claims made, in that order
        (empty when every task was skipped: the session has then checked in). Raises
        NotFound or NotClaimable, as `check_in` does, when the session may take nothing.
        With `idem`, a step that claimed something keeps its answer under the key (an empty
        one keeps nothing: the retry looks again)."""

    async def offer(self, session_id: str, task_id: str, now: float,
                    deadline: float) -> Task | None:
        """Atomically offer one named ready task to the session until `deadline`
        (`task.assigned`); it claims it, or it goes back when the deadline passes. An offer
        is the server's initiative and proves no liveness: a session that went silent is
        offered nothing (None). Raises NotClaimable or TaskTaken as `claim` does."""

    async def progress(
        self, session_id: str, task_id: str, token: int, value: float, message: str | None,
        now: float, usage: Mapping[str, float] | None = None,
        rate_limit: dict[str, JSON] | None = None,
    ) -> Recorded:
        """Record progress under a valid lease and renew that lease (`task.progress`).

        `usage` (checked: usage.FIELDS) is kept on the attempt and summed as the module
        docstring says. `rate_limit` becomes the session's `rate_limited` state; without
        one the state is cleared (a normal report): each change of it emits
        `session.rate_limited` (`{"session_id", "rate_limited"}`)."""

    async def complete(
        self, session_id: str, task_id: str, token: int, result: JSON, now: float,
        usage: Mapping[str, float] | None = None,
    ) -> Recorded:
        """Record success under a valid lease; dependents whose dependencies are all
        complete become ready (`task.completed`, then `task.ready` each). In the same step
        the session's statistics on the capability and its totals (`stats.ANY`) move by
        `stats.ON_SUCCESS` with the attempt's duration; the event and `Recorded.stats`
        carry the new rows. `usage` is kept and summed as by `progress` (a duplicate adds
        nothing), the event carries the attempt's usage, and the session's rate-limited
        state is cleared."""

    async def fail(
        self, session_id: str, task_id: str, token: int, error: str, retry: bool, now: float,
        usage: Mapping[str, float] | None = None,
    ) -> Recorded:
        """Record a failed attempt under a valid lease; the task goes back to ready while
        attempts remain and `retry` is true (`task.requeued`), else to failed
        (`task.failed`, dependents `task.blocked`). The statistics move by
        `stats.ON_FAILURE`, carried as by `complete`; `usage` as by `complete`."""

    async def release(self, session_id: str, task_id: str, token: int, note: str | None,
                      now: float) -> Recorded:
        """The holder lets go of a valid lease (a preemption honoured, or its own choice):
        the attempt ends `released` and does not count against max_attempts (`attempts`
        goes back down); `note`, when given, joins the task's notes (kind "release") for
        the next holder; the task goes back to ready (`task.requeued`, reason "preempted"
        or "released"). Idempotent per (task, token) as outcomes are."""

    async def preempt(self, task_id: str, token: int, deadline: float,
                      now: float) -> Task | None:
        """Atomically mark the lease `token` of the task preempted: it runs to `deadline`
        at the latest and no renewal lengthens it (`task.preempted`); the task's
        `preemptions` grows by one (not for a second mark of the same attempt). Past it the
        reaper revokes the lease: the attempt ends `released` (not counted), the fencing token
        moves on, the task goes back to ready. None (nothing written) when that lease is
        no longer held."""

    async def request_input(self, session_id: str, task_id: str, token: int, question: str,
                            now: float) -> Recorded:
        """The holder asks the operator: `in_progress -> input_required` under a valid
        lease, its clock stopped (no deadline: never reaped while the session lives; requeued
        when it leaves or goes silent, not counted); the question joins the notes (kind
        "question"); `task.input_required`. Repeating it answers a duplicate."""

    async def give_input(self, task_id: str, answer: str, by: str | None, now: float) -> Task:
        """The operator's answer joins the notes (kind "answer"). A task waiting for it goes
        back to `in_progress` for the same holder (same token, the clock running again from
        `now`) when that session is online, else to ready (the attempt ends `released`, not
        counted); a task whose holder went meanwhile keeps the answer for the next one.
        `task.input_given`. NotClaimable when the task asks nothing."""

    async def cancel(self, task_id: str, now: float, reason: str) -> Task:
        """Atomically cancel a task that is not final; dependents become blocked.

        Raises NotFound, or NotClaimable when the task is already final.
        """

    async def split(self, session_id: str, task_id: str, token: int, subtasks: Sequence[Task],
                    order: Sequence[str], merge: str, merge_task: str | None,
                    assumed: Mapping[str, TaskStatus], digest: str, now: float) -> Split | None:
        """Atomically split a task under a valid lease: its attempt ends `split`, it becomes
        `waiting` (no lease, no session), and the planned `subtasks` (each with `parent_id`,
        a merge task among them for strategy `task`) are inserted as `insert_batch` does,
        None (nothing written) when a status in `assumed` moved. `order` is the subtasks'
        ids in the holder's order, the merge task last: `list` merges results in it. Emits
        `task.split`, then `task.added` each.

        From then on, the step that ends a subtask also ends its waiting parent: completed
        with the merged result (collab.merged) once every subtask completed, exactly once;
        failed at once, naming the subtask, when one can no longer complete, cancelling the
        rest of its tree. `cancel` of a parent cancels every task below it.

        Idempotent per (task, token, `digest` of the request): the same split again answers
        the stored one with `duplicate`; a different one raises OutcomeMismatch; a lease that
        is gone raises LeaseLost (nothing changed)."""

    async def reap(self, now: float, limit: int) -> Reaped:
        """Atomically move on up to `limit` items that are due at `now`.

        Silent sessions go offline (as `leave_session(reason="offline")`), expired leases end
        `expired` and go back to ready (or failed past max_attempts), offers past their
        claim deadline go back to ready.
        """

    async def next_deadline(self) -> float | None:
        """The earliest lease, offer or session-silence deadline, or None (read only)."""

    async def idle_sessions(self, now: float, idle_for: float) -> list[Session]:
        """Online, non-draining sessions holding nothing whose last task ended (or which
        joined) at least `idle_for` seconds ago, longest idle first (read only)."""

    # -- knowledge ---------------------------------------------------------------------

    async def put_knowledge(
        self, topic: str, content: JSON, tags: list[str], expected_version: int | None,
        updated_by: str | None, now: float, idem: Idem | None = None,
    ) -> KnowledgeEntry:
        """Atomically append the next version of a topic (1 for a new one).

        When `expected_version` is given it must equal the current version (0: the topic
        must not exist yet), else StaleVersion. Emits `knowledge.updated`.
        """

    async def get_knowledge(self, topic: str, version: int | None = None) -> KnowledgeEntry | None:
        """The latest version (None when deleted or absent), or exactly `version`."""

    async def list_knowledge(self, tag: str | None = None) -> list[KnowledgeEntry]:
        """The latest version of every live topic, by topic name (read only)."""

    async def delete_knowledge(
        self, topic: str, expected_version: int | None, updated_by: str | None, now: float
    ) -> KnowledgeEntry:
        """Atomically append a tombstone version; history stays readable. NotFound when
        absent, StaleVersion when `expected_version` is stale."""

    # -- the learned model -------------------------------------------------------------

    async def all_stats(self) -> list[tuple[str, str, PairStats]]:
        """Every (session, capability, statistics) row, `stats.ANY` rows included, by
        session then capability (read only)."""

    async def quarantines(self) -> list[Quarantine]:
        """Every open or half-open circuit breaker (read only)."""

    async def set_quarantine(self, session_id: str, capability: str,
                             record: Quarantine | None, expected: int, now: float) -> bool:
        """Atomically open (`record`) or close (None) the session's breaker on the
        capability (`stats.ANY`: the whole session), if the ejections it holds now are
        still `expected` (0: no breaker); False (nothing written) otherwise. Emits
        `session.quarantined` or, when one closes, `session.restored`."""

    async def set_detected(self, session_id: str, capabilities: list[str],
                           now: float) -> None:
        """Atomically keep the session's detected capabilities (`session.detected`)."""

    # -- the swarm ---------------------------------------------------------------------

    async def set_interrupt(self, interrupt: Interrupt | None, now: float) -> None:
        """Atomically set (or lift, with None) the swarm-wide interrupt (`swarm.interrupt`)."""

    async def get_interrupt(self) -> Interrupt | None:
        """The interrupt in force, if any (read only)."""

    async def counts(self) -> Counts:
        """Sessions and tasks by status, completion totals, the last event seq, and the
        usage sums of the swarm and of the `models.USAGE_TYPES` costliest task types."""

    async def events_after(self, seq: int, limit: int) -> list[Event]:
        """Events with sequence number > seq, oldest first, at most `limit` (read only)."""

    async def ping(self) -> None:
        """Raise Unavailable unless the store answers now."""

    async def recall(self, idem: Idem, now: float) -> Replay | None:
        """The answer kept under this key, unexpired at `now`, if any (read only). Raises
        KeyReused when the key was first sent with another request."""

    async def keep(self, kind: str, idem: Idem, answer: Replay, now: float) -> Replay:
        """Keep `answer` (of `kind`, store/replay.py) under the key in a step of its own,
        for a call whose answer is made of several steps (an emergency), unless the key
        has an answer already: then that one (first writer wins). KeyReused when the key
        was first sent with another request."""

    # -- autoscaling -------------------------------------------------------------------

    async def ready_counts(self, capabilities: Sequence[str]) -> dict[str, int]:
        """How many ready tasks need each of `capabilities` (read only, from the index of
        ready tasks: no scan of the other tasks). `counts()` has the total."""

    async def record_event(self, type_: str, data: dict[str, JSON], now: float) -> Event:
        """Atomically append one event for a decision taken above the store (a pool's
        size: `pool.scaled`); returns it with its seq. InvalidInput unless `type_` matches
        EVENT_TYPE_RE."""

    async def set_pool_pin(self, pool: str, desired: int | None, now: float) -> None:
        """Atomically pin a pool's size (None lifts the pin), for whichever replica leads
        (`pool.pinned`)."""

    async def pool_pins(self) -> dict[str, int]:
        """Every pool's pinned size (read only)."""


@runtime_checkable
class Leadership(Protocol):
    """Optional: a store that several orchestrator replicas share elects one of them to run
    the coordination loop (reaper and matcher). A store without it (SQLite: one process)
    makes its one orchestrator the leader. Safety never depends on leadership (every step
    is atomic); it keeps replicas from doing the same coordination work twice.
    """

    async def try_lead(self, holder: str, ttl: float) -> int | None:
        """Atomically take or renew the leader lease for `ttl` seconds, judged by the store's
        own clock. Returns the holder's leader token: the same while it renews in time, a
        higher one whenever the lease changed hands or lapsed (tokens only ever grow); None
        while another holder's lease runs. While a holder believes it leads, the store
        refuses its coordinator writes (`reap`, `offer`) with Conflict once another
        holder has taken the lease: a paused leader cannot act on a stale view.
        """

    async def resign(self, holder: str) -> None:
        """Atomically give the lease up, if `holder` has it (a clean shutdown)."""


@runtime_checkable
class StoreClock(Protocol):
    """Optional: a store shared by hosts can judge every `now` by its own clock."""

    def use_store_clock(self) -> None:
        """From now on, judge time (leases, deadlines, timestamps) by the store's clock
        instead of the `now` each call passes: replicas whose clocks disagree then agree,
        and timestamps follow the order in which steps commit. `next_deadline` (a wake-up
        hint) is then told on the caller's clock, so a skewed replica sleeps the right
        time. The orchestrator asks for this when it runs on the real clock; tests that
        move time by hand do not."""
