"""Which task a session gets, and which task an idle session is offered: the choice,
written once for every store.

A store offers only primitives: a bounded read of ready candidates per capability
(`Store.ready_candidates`) and a compare-and-set claim or offer of one *named* task. The
`Policy` orders the candidates for a session; the `Scheduler` tries them in that order,
from a pool of candidates kept between claims and kept true by the swarm's events
(core/candidates.py), so a claim is one store write, with a read only every few claims.

- A lost race (`TaskTaken`: another session got the task first) moves on to the next
  candidate, never retries the same one; once every candidate is lost it reads again, at
  most `ROUNDS` times, then gives up with `Contended` (a long-poll just asks again).
- Fairness inside this process: the claims and offers in flight here are remembered, so
  concurrent requests try different candidates instead of racing each other for the head
  of the queue; a request that finds every candidate taken by one of them waits for that
  claim to settle and looks again (the queue may be empty by then). The fencing token of
  each claim it hears of is remembered too (a bounded memory): a candidate read before that
  claim committed carries an older token and is skipped without a try, while a task that
  came back to the queue since (a failed or expired attempt) carries that token and is
  taken again. Replicas race through the store's compare-and-set and lose cleanly.

The policy is phase 1's order, priority then age (`PriorityThenAge`): a learned policy
replaces it by implementing `Policy.rank`; nothing else changes.

Time comes from a clock read right before each write (not once per request): a claim that
waited for its turn is dated when it is made, so a task never looks claimed before the
dependency that released it completed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from ..errors import Contended, TaskTaken
from ..models import Candidate, Claimed, Clock, Event, Idem, Session, Task
from ..store.base import Store
from .candidates import READ, Key, Pool, Pools, key_of

T = TypeVar("T")
#: candidate reads whose every candidate was lost before a claim gives up (Contended)
ROUNDS = 3
#: claims remembered (task id -> the fencing token the latest claim produced)
REMEMBERED = 10_000


class Policy(Protocol):
    """Orders the candidates for a session: the scheduling decision itself."""

    name: str

    def rank(self, session: Session, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The candidates in the order the session should get them, best first. It may
        leave out those it should not get (now or ever): none left means nothing for it
        now, as an empty queue does, never a lost race."""


class PriorityThenAge:
    """Phase 1's order (`fifo`): the higher priority first, then the older task."""

    name = "fifo"

    def rank(self, session: Session, candidates: Sequence[Candidate]) -> list[Candidate]:
        return sorted(candidates, key=lambda t: (-t.priority, t.seq))


class _Busy(Exception):
    """Every candidate left is being tried by another request of this process."""

    def __init__(self, settled: asyncio.Event) -> None:
        self.settled = settled


class Scheduler:
    """Claims and offers over one store, in the order of one policy."""

    def __init__(self, store: Store, policy: Policy | None = None) -> None:
        self.store = store
        self.policy: Policy = policy or PriorityThenAge()
        #: task id -> set once the claim or offer of it in flight here has settled
        self._trying: dict[str, asyncio.Event] = {}
        #: task id -> the fencing token its latest claim (heard of) gave it, newest last
        self._claimed: OrderedDict[str, int] = OrderedDict()
        self.pools = Pools()
        #: the pool read in flight per key, with the pools' generation when it began
        self._reads: dict[Key, tuple[int, asyncio.Future[Pool | None]]] = {}
        store.add_listener(self._heard)

    async def claim(self, session: Session, clock: Clock,
                    offers: bool | None = None, idem: Idem | None = None) -> Claimed | None:
        """Claim the best task for the session: one offered to it first (looked up when
        `offers`, by default when the session holds anything), else the best ready one.

        None when nothing is ready for it; the session has then checked in (asking proves it
        alive, and one that may take no work is refused with NotClaimable, as a claim would
        be). Raises Contended when every candidate of ROUNDS reads was taken first. Every
        claim carries `idem` (an Idempotency-Key): the first that takes a task keeps it.
        """
        async def take(t: Candidate) -> Claimed:
            got = await self.store.claim(session.id, t.id, clock(), idem=idem)
            self._remember(got.task.id, got.task.fencing_token)  # should its event be late
            return got

        async def none_ready() -> None:
            await self.store.check_in(session.id, clock())

        if offers or (offers is None and session.current_tasks):
            offered = self.policy.rank(session, await self.store.offered_to(session.id))
            try:
                got = await self._first(offered, take)
            except _Busy:  # another request of this session is claiming its offer
                got = None
            if got is not None:
                return got
        return await self._rounds(
            session, lambda ranked, pool: self._first(ranked, take, pool), none_ready)

    async def claim_many(self, session: Session, clock: Clock, n: int,
                         offers: bool | None = None,
                         idem: Idem | None = None) -> list[Claimed]:
        """Claim up to `n` tasks for the session in one store step: its offers first, then
        the best ready ones, in the policy's order (a worker with n free slots asks once).
        Empty when nothing is ready for it (it checked in); Contended as `claim`. With an
        Idempotency-Key the answer is the first store step that claimed something (offers
        alone, if any): the key is kept by one step, never split over two."""
        async def take(ts: Sequence[Candidate]) -> list[Claimed]:
            got = await self.store.claim_many(session.id, [(t.id, None) for t in ts], clock(),
                                              idem)
            for c in got:
                self._remember(c.task.id, c.task.fencing_token)
            return got

        claimed: list[Claimed] = []
        if offers or (offers is None and session.current_tasks):
            offered = self.policy.rank(session, await self.store.offered_to(session.id))
            # _Busy: another request of this session is claiming its offers
            with contextlib.suppress(_Busy):
                claimed = await self._first_n(offered, n, take) or []
        if len(claimed) >= n or (claimed and idem is not None):
            return claimed

        async def none_ready() -> None:
            if not claimed:
                await self.store.check_in(session.id, clock())

        want = n - len(claimed)
        rest = await self._rounds(
            session, lambda ranked, pool: self._first_n(ranked, want, take, pool), none_ready)
        return claimed + (rest or [])

    async def offer(self, session: Session, clock: Clock, deadline: float) -> Task | None:
        """Offer the best ready task to the session until `deadline`. None when nothing is
        ready for it, or it went silent (the store offers nothing then)."""
        async def none_ready() -> None:
            return None

        async def offer(t: Candidate) -> Task | _Silent:
            return await self.store.offer(session.id, t.id, clock(), deadline) or SILENT

        got = await self._rounds(
            session, lambda ranked, pool: self._first(ranked, offer, pool), none_ready)
        return got if isinstance(got, Task) else None

    def _heard(self, events: Sequence[Event]) -> None:
        """A store listener: keeps the pools true, and the claims' fencing tokens (of every
        replica: a read older than any of them is stale)."""
        for ev in events:
            if ev.type == "task.claimed":
                self._remember(str(ev.data["task_id"]), int(ev.data["fencing_token"]))
        self.pools.heard(events)

    def _remember(self, task_id: str, token: int) -> None:
        if token > self._claimed.get(task_id, 0):
            self._claimed[task_id] = token
            self._claimed.move_to_end(task_id)
            if len(self._claimed) > REMEMBERED:
                self._claimed.popitem(last=False)

    def _stale(self, task: Candidate) -> bool:
        """Read before a claim of this process committed: it is not ready any more."""
        return task.fencing_token < self._claimed.get(task.id, 0)

    async def _pool(self, session: Session) -> Pool | None:
        """The session's pool: kept, or read afresh; None when nothing is ready for it."""
        key = key_of(session.capabilities)
        pool = self.pools.get(key)
        for _ in range(ROUNDS + 1):
            if pool is not None and pool.items:
                return pool
            pool = await self._read(session, key)
            if pool is None:
                return None
        raise Contended("the ready tasks kept changing under every read; ask again",
                        retry_after=0.1)

    async def _read(self, session: Session, key: Key) -> Pool | None:
        """A fresh pool for `key`, shared: requests that find the pool used up at the same
        moment (every worker whose claim settled together) wait for one read instead of
        each sending its own, as long as no task was made ready since that read began
        (then it might not show the task: read again)."""
        flight = self._reads.get(key)
        if flight is None or flight[0] != self.pools.generation:
            read = asyncio.ensure_future(self._read_now(session, key))
            mine = self._reads[key] = (self.pools.generation, read)

            def landed(done: asyncio.Future[Pool | None]) -> None:
                if self._reads.get(key) is mine:
                    del self._reads[key]
                _retrieved(done)

            read.add_done_callback(landed)
            flight = mine
        # shielded: a request that gives up (its client left) ends no other's read
        return await asyncio.shield(flight[1])

    async def _read_now(self, session: Session, key: Key) -> Pool | None:
        limit = READ + len(self._trying)
        read = await self.store.ready_candidates(session.capabilities, limit)
        if not read:
            return None
        pool = Pool.of(key, read, limit, [t for t in read if not self._stale(t)])
        self.pools.put(pool)  # (a read older than our own claims: the next one is not)
        return pool

    async def _rounds(self, session: Session,
                      first: Callable[[Sequence[Candidate], Pool], Awaitable[T | None]],
                      none_ready: Callable[[], Awaitable[None]]) -> T | None:
        """Try the pool's candidates in the policy's order (`first`: `_first`, or `_first_n`
        for a batch) until one is had, reading the pool again after every round lost."""
        lost = 0
        while (pool := await self._pool(session)) is not None:
            ranked = self.policy.rank(session, list(pool.items.values()))
            if not ranked:
                break  # the policy has nothing for this session now
            try:
                got = await first(ranked, pool)
            except _Busy as busy:
                await busy.settled.wait()  # then look again: it may have emptied the queue
                continue
            if got is not None:
                return got
            lost += 1
            if lost >= ROUNDS:
                raise Contended(f"every task tried for session {session.id!r} was taken "
                                f"by another session first; ask again", retry_after=0.1)
        await none_ready()
        return None

    async def _first(self, ranked: Sequence[Candidate],
                     take: Callable[[Candidate], Awaitable[T]],
                     pool: Pool | None = None) -> T | None:
        """Take the first candidate, in the policy's order, that nobody took first; None
        when every one was lost; _Busy when those left are being tried here already. A
        candidate taken or lost leaves the pool."""
        busy: asyncio.Event | None = None
        for task in ranked:
            if task.id in self._trying:
                busy = busy or self._trying[task.id]
                continue
            settled = self._trying[task.id] = asyncio.Event()
            try:
                got = await take(task)
            except TaskTaken:
                if pool is not None:
                    pool.discard(task.id)
                continue
            finally:
                del self._trying[task.id]
                settled.set()
            if pool is not None:
                pool.discard(task.id)
            return got
        if busy is not None:
            raise _Busy(busy)
        return None


    async def _first_n(self, ranked: Sequence[Candidate], n: int,
                       take: Callable[[Sequence[Candidate]], Awaitable[list[Claimed]]],
                       pool: Pool | None = None) -> list[Claimed] | None:
        """`_first` for a batch: the first `n` candidates nobody here is trying, taken in one
        store step; None when every one was lost, _Busy when those left are being tried."""
        picked: list[Candidate] = []
        busy: asyncio.Event | None = None
        for task in ranked:
            if len(picked) >= n:
                break
            if task.id in self._trying:
                busy = busy or self._trying[task.id]
            else:
                picked.append(task)
        if not picked:
            if busy is not None:
                raise _Busy(busy)
            return None
        settled = asyncio.Event()
        for task in picked:
            self._trying[task.id] = settled
        got: list[Claimed] = []
        try:
            got = await take(picked)
        finally:
            for task in picked:
                del self._trying[task.id]
            settled.set()
        if pool is not None:
            # what was taken leaves the pool; the rest stays unless all were lost (a task
            # left out for want of room is still ready, and one lost leaves on its event)
            for tid in ([t.id for t in picked] if not got else [c.task.id for c in got]):
                pool.discard(tid)
        return got or None


def _retrieved(read: asyncio.Future[Pool | None]) -> None:
    """A shared read's failure reaches every request waiting for it; this marks it seen
    even when none waits any more (no "exception was never retrieved" at exit)."""
    if not read.cancelled():
        read.exception()


class _Silent:
    """The store offered nothing: the session went silent."""


SILENT = _Silent()
