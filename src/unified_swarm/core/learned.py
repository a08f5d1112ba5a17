"""The learned policy at work (`SWARM_SCHEDULER=learned`): claims and offers chosen by the
`Brain`, and what the swarm learns from each outcome beyond the statistics the store moves
itself (detected capabilities, circuit breakers).

`LearnedScheduler` has the `Scheduler`'s face (claim, offer), so the Orchestrator and the
Coordinator use either without knowing which. Its choice comes from the Brain's picture of
the whole swarm instead of a read of candidates: the Brain names a task, the store's
compare-and-set claims it, and a lost race (another replica was first) moves on to the
Brain's next choice, at most `ATTEMPTS` times.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ..config import Settings
from ..errors import Contended, InvalidInput, TaskTaken
from ..models import Claimed, Clock, Idem, Quarantine, Recorded, Session, Task
from ..stats import ANY, PairStats
from ..store.base import Store
from . import breaker
from .brain import Brain
from .choice import Decision

log = logging.getLogger("unified_swarm.orchestrator")
T = TypeVar("T")
#: choices lost to another replica before a claim gives up (Contended: ask again)
ATTEMPTS = 8
#: a prior observation weighs as much as this many real ones (the oracle knows)
PRIOR_WEIGHT = 1000.0
#: spread of log-duration assumed around a prior mean (a coefficient of variation near 10%)
PRIOR_SIGMA2 = 0.01
#: the statuses of tasks the Brain keeps, and how many it reads per page when it loads
UNFINISHED = ("pending", "ready", "assigned", "in_progress")
LOAD_PAGE = 1000


class LearnedScheduler:
    """Claims and offers in the Brain's order (core/choice.py)."""

    name = "learned"

    def __init__(self, store: Store, brain: Brain) -> None:
        self.store = store
        self.brain = brain
        #: session id -> when a hold it waits behind runs out (look again then)
        self.look_again: dict[str, float] = {}

    async def claim(self, session: Session, clock: Clock, offers: bool | None = None,
                    proposal: str | None = None, idem: Idem | None = None) -> Claimed | None:
        """Claim the best task for the session: one offered to it first, then a task a
        one-solve match proposed for it, then the Brain's choice. None when the Brain has
        nothing for it now (the session checked in, as with an empty queue). Every claim
        carries `idem` (an Idempotency-Key): the first that takes a task keeps it."""
        if offers or (offers is None and session.current_tasks):
            for c in await self.store.offered_to(session.id):
                try:
                    return await self.store.claim(session.id, c.id, clock(), idem=idem)
                except TaskTaken:
                    continue
        if proposal is not None:
            try:
                return await self.store.claim(session.id, proposal, clock(),
                                              self.brain.predict(session.id, proposal), idem)
            except TaskTaken:
                self.brain.lost(proposal)

        async def take(task_id: str, predicted: float | None) -> Claimed:
            return await self.store.claim(session.id, task_id, clock(), predicted, idem)

        return await self._choose(session, clock, take)

    async def claim_many(self, session: Session, clock: Clock, n: int,
                         offers: bool | None = None, proposal: str | None = None,
                         idem: Idem | None = None) -> list[Claimed]:
        """Up to `n` tasks in one store step: the session's offers first, then a task a
        one-solve match proposed for it, then the Brain's choices (`Brain.decide_many`).
        Empty when the Brain has nothing for it now (it checked in); a round whose every
        choice was lost to another replica chooses again, at most `ATTEMPTS` times (then
        Contended). With an Idempotency-Key the answer is the first store step that
        claimed something (offers alone, if any): one step keeps the key."""
        claimed: list[Claimed] = []
        if offers or (offers is None and session.current_tasks):
            offered = [(c.id, None) for c in await self.store.offered_to(session.id)][:n]
            if offered:
                claimed = await self.store.claim_many(session.id, offered, clock(), idem)
        for _ in range(ATTEMPTS):
            if len(claimed) >= n or (claimed and idem is not None):
                return claimed
            want = n - len(claimed)
            picks, empty = self.brain.decide_many(session, clock(), want)
            if proposal is not None and all(d.task_id != proposal for d in picks):
                first = Decision(proposal, self.brain.predict(session.id, proposal))
                picks, dropped = [first, *picks][:want], picks[want - 1:]
                for d in dropped:
                    if d.task_id is not None:
                        self.brain.release(d.task_id, session.id)
            proposal = None  # tried once
            if not picks:
                self._look_again(session.id, empty)
                if not claimed:
                    await self.store.check_in(session.id, clock())
                return claimed
            got = await self.store.claim_many(
                session.id, [(d.task_id, d.predicted) for d in picks if d.task_id], clock(),
                idem)
            had = {c.task.id for c in got}
            for d in picks:
                if d.task_id is not None and d.task_id not in had:
                    if got:  # no room left for it: free it for others
                        self.brain.release(d.task_id, session.id)
                    else:  # every choice lost its race: not ready, as far as we know
                        self.brain.lost(d.task_id)
            if got:
                return claimed + got
        if claimed:
            return claimed
        raise Contended(f"every task chosen for session {session.id!r} was taken by another "
                        f"session first; ask again", retry_after=0.1)

    def _look_again(self, session_id: str, decision: Decision | None) -> None:
        if decision is not None and decision.retry_at is not None:
            self.look_again[session_id] = decision.retry_at
        else:
            self.look_again.pop(session_id, None)

    async def offer(self, session: Session, clock: Clock, deadline: float) -> Task | None:
        """Offer the Brain's choice for the session until `deadline` (the matcher's push to a
        long-idle session). None when there is nothing for it, or it went silent."""
        async def take(task_id: str, predicted: float | None) -> Task | None:
            return await self.store.offer(session.id, task_id, clock(), deadline)

        return await self._choose(session, clock, take, check_in=False)

    async def _choose(self, session: Session, clock: Clock,
                      take: Callable[[str, float | None], Awaitable[T | None]], *,
                      check_in: bool = True) -> T | None:
        for _ in range(ATTEMPTS):
            decision = self.brain.decide(session, clock())
            if decision.task_id is None:
                self._look_again(session.id, decision)
                if check_in:
                    await self.store.check_in(session.id, clock())
                return None
            try:
                return await take(decision.task_id, decision.predicted)
            except TaskTaken:
                self.brain.lost(decision.task_id)
        raise Contended(f"every task chosen for session {session.id!r} was taken by another "
                        f"session first; ask again", retry_after=0.1)


class Learning:
    """What the swarm learns from an outcome, besides the statistics the store moved in the
    outcome's own step: the session's detected capabilities, and its circuit breakers.
    Runs on the replica that recorded the outcome, right after it; the store's
    compare-and-set keeps two replicas from both tripping one breaker."""

    def __init__(self, store: Store, brain: Brain) -> None:
        self.store = store
        self.brain = brain

    async def after(self, session_id: str, capability: str, recorded: Recorded, success: bool,
                    now: float) -> None:
        if recorded.duplicate or recorded.stats is None:
            return
        for cap, st in recorded.stats.items():
            self.brain.model.set(session_id, cap, st)  # before the event: decide on it now
        await self._detect(session_id, now)
        for cap in (capability, ANY):
            await self._breaker(session_id, cap, recorded.stats.get(cap), success, now)

    async def _detect(self, session_id: str, now: float) -> None:
        current = self.brain.detected.get(session_id, frozenset())
        found = self.brain.model.detected(session_id, current)
        if found != current:
            self.brain.detected[session_id] = found
            await self.store.set_detected(session_id, sorted(found), now)

    async def _breaker(self, session_id: str, cap: str, st: PairStats | None, success: bool,
                       now: float) -> None:
        current = self.brain.quarantines.get((session_id, cap))
        expected = 0 if current is None else current.ejections
        if success:
            if breaker.after_success(current, now):
                await self.store.set_quarantine(session_id, cap, None, expected, now)
            return
        ejected, population = self.brain.census(cap, now)
        q = breaker.after_failure(session_id, cap, 0 if st is None else st.streak, current,
                                  now, ejected, population, self.brain.params.breaker)
        if q is not None and await self.store.set_quarantine(session_id, cap, q, expected, now):
            log.warning("session %s quarantined%s until %.0f (ejection %d in a row)",
                        session_id, "" if cap == ANY else f" for {cap}", q.until, q.ejections)


def load_prior(path: str) -> dict[tuple[str, str], PairStats]:
    """An operator's prior (`SWARM_SCHEDULER_PRIOR`): a JSON file `{"sessions": {session id:
    {capability: mean}}}`, taken as if each pair had been seen `PRIOR_WEIGHT` times (the
    benchmark's oracle: the learned policy given the true speeds). The mean is what the
    model measures (stats.py): for tasks that give their size (`estimated_hours`), the
    ratio of duration to that size; for the others, the duration in seconds."""
    try:
        raw = json.loads(Path(path).read_text())
        sessions = raw["sessions"]
        out = {}
        for sid, caps in sessions.items():
            for cap, mean in caps.items():
                out[(str(sid), str(cap))] = prior_stats(float(mean))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"SWARM_SCHEDULER_PRIOR={path!r} is not a readable prior "
                           f'({{"sessions": {{id: {{capability: seconds}}}}}}): {exc}') from exc
    return out


def prior_stats(mean: float) -> PairStats:
    if not mean > 0:
        raise ValueError(f"a mean duration must be > 0, got {mean}")
    x = math.log(mean) - PRIOR_SIGMA2 / 2  # so that E[duration] is `mean`
    w = PRIOR_WEIGHT
    return PairStats(w_success=w, w_duration=w, sum_log=w * x,
                     sum_log2=w * (x * x + PRIOR_SIGMA2))


def quarantined_until(quarantines: Sequence[Quarantine], now: float) -> float | None:
    """The end of the session-wide ejection in force, if any."""
    return max((q.until for q in quarantines if q.capability == ANY and q.open(now)),
               default=None)


async def load(store: Store, brain: Brain) -> None:
    """Give the Brain its picture from the store: unfinished tasks in insertion order (so a
    task comes after what it depends on), sessions, statistics and breakers."""
    tasks: list[Task] = []
    for status in UNFINISHED:
        cursor: str | None = None
        while True:
            page, cursor = await store.list_tasks(status=status, limit=LOAD_PAGE, cursor=cursor)
            tasks.extend(page)
            if cursor is None:
                break
    tasks.sort(key=lambda t: t.seq)
    brain.load(tasks, await store.list_sessions(), await store.all_stats(),
               await store.quarantines())


def described(session: Session, brain: Brain, now: float) -> Session:
    """The session with what the model says of it (GET /session/{id}): per-capability
    stats and its quarantine."""
    session.stats = dict(brain.model.wire_stats(session.id))
    session.quarantined_until = quarantined_until(
        [q for (sid, _), q in brain.quarantines.items() if sid == session.id], now)
    return session


def report(scheduler: object, brain: Brain, settings: Settings) -> dict[str, object]:
    """GET /swarm/scheduler."""
    prior = None
    if brain.prior:
        prior = {"path": settings.scheduler_prior,
                 "sessions": len({sid for sid, _ in brain.prior}), "pairs": len(brain.prior)}
    return {"policy": getattr(scheduler, "name", "fifo"), "prior": prior, **brain.report()}
