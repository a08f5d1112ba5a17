"""The choice above the store: a policy orders the candidates, the scheduler claims them by
name; a lost race moves on, and claims of one process never race each other. Real stores
(both backends), no HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from unified_swarm.core.scheduling import ROUNDS, Scheduler
from unified_swarm.errors import Contended, TaskTaken
from unified_swarm.models import Candidate, Claimed, Idem, Session
from unified_swarm.store.base import Store

from ..conftest import T0
from ..store.helpers import add_tasks, at, join, spec


class LowestFirst:
    """A policy of another mind: the lowest priority first."""

    name = "lowest-first"

    def rank(self, session: Session, candidates: Sequence[Candidate]) -> list[Candidate]:
        return sorted(candidates, key=lambda t: (t.priority, t.seq))


class Nothing:
    """A policy that holds every task back (for a faster session, say)."""

    name = "nothing"

    def rank(self, session: Session, candidates: Sequence[Candidate]) -> list[Candidate]:
        return []


class Counting:
    """Counts the claims a store refused as lost races."""

    def __init__(self, store: Store) -> None:
        self.lost = 0
        self._claim = store.claim

        async def claim(session_id: str, task_id: str, now: float,
                        predicted: float | None = None, idem: Idem | None = None) -> Claimed:
            try:
                return await self._claim(session_id, task_id, now, predicted, idem)
            except TaskTaken:
                self.lost += 1
                raise

        store.claim = claim  # type: ignore[method-assign]


async def test_the_policy_decides_the_order(store: Store) -> None:
    s = await join(store, "w1", max_tasks=3)
    await add_tasks(store, [spec("low", priority=2), spec("top", priority=9),
                            spec("mid", priority=5)], T0)
    fifo, other = Scheduler(store), Scheduler(store, LowestFirst())
    first = await fifo.claim(s, at(T0))
    second = await other.claim(s, at(T0))
    assert first is not None and first.task.id == "top"
    assert second is not None and second.task.id == "low"


async def test_a_policy_that_holds_everything_back_gives_nothing_now(store: Store) -> None:
    s = await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    assert await Scheduler(store, Nothing()).claim(s, at(T0 + 5)) is None  # not Contended
    found = await store.get_session("w1")
    assert found is not None and found.last_heartbeat == T0 + 5  # it checked in


async def test_a_lost_race_moves_to_the_next_candidate(store: Store) -> None:
    me = await join(store, "me")
    await join(store, "rival")
    await add_tasks(store, [spec("a", priority=9), spec("b", priority=8)], T0)
    before = await store.ready_candidates(["build"], 10)
    await store.claim("rival", "a", T0)  # another replica wins the head...
    scheduler = Scheduler(store)  # (...and this one never heard of it)

    async def read_from_before(capabilities: Sequence[str], limit: int) -> list[Candidate]:
        return before

    store.ready_candidates = read_from_before  # type: ignore[method-assign]
    counting = Counting(store)
    got = await scheduler.claim(me, at(T0))
    assert got is not None and got.task.id == "b"
    assert counting.lost == 1


async def test_claims_of_one_process_never_race_each_other(store: Store) -> None:
    sessions = [await join(store, f"w{n}") for n in range(16)]
    await add_tasks(store, [spec(f"t{n}") for n in range(64)], T0)
    counting, scheduler = Counting(store), Scheduler(store)
    claimed: list[str] = []

    async def worker(s: Session) -> None:
        while (got := await scheduler.claim(s, at(T0))) is not None:
            claimed.append(got.task.id)
            await store.complete(s.id, got.task.id, got.lease.fencing_token, None, T0)

    await asyncio.gather(*(worker(s) for s in sessions))
    assert sorted(claimed) == sorted(f"t{n}" for n in range(64))
    assert counting.lost == 0  # none tried a task another request here had claimed


async def test_a_task_back_in_the_queue_is_taken_again_at_once(store: Store) -> None:
    """The scheduler remembers its claims to skip stale candidates, never a task that came
    back: a failed attempt's task is claimed again by the very next request."""
    s = await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    scheduler = Scheduler(store)
    first = await scheduler.claim(s, at(T0))
    assert first is not None
    await store.fail("w1", "a", first.lease.fencing_token, "boom", True, T0)
    again = await scheduler.claim(s, at(T0))
    assert again is not None and again.task.id == "a" and again.lease.fencing_token == 2


async def test_every_race_lost_is_contended_not_empty(store: Store) -> None:
    s = await join(store, "w1")
    await add_tasks(store, [spec(f"t{n}") for n in range(3)], T0)
    counting = Counting(store)

    async def always_taken(session_id: str, task_id: str, now: float,
                           predicted: float | None = None, idem: Idem | None = None) -> Claimed:
        counting.lost += 1
        raise TaskTaken(f"task {task_id!r} was taken by another replica")

    store.claim = always_taken  # type: ignore[method-assign]
    with pytest.raises(Contended):
        await Scheduler(store).claim(s, at(T0))
    assert counting.lost == 3 * ROUNDS  # each round tried every candidate once, then read again


async def test_the_pool_follows_the_swarm(store: Store) -> None:
    """Claims come from a pool of candidates kept between them, which sees what a fresh read
    would: a better task added since comes first, one claimed elsewhere is not tried."""
    s = await join(store, "w1", max_tasks=10)
    await join(store, "other")
    await add_tasks(store, [spec(f"t{n}", priority=5) for n in range(6)], T0)
    counting, scheduler = Counting(store), Scheduler(store)
    reads = 0
    read = store.ready_candidates

    async def counted(capabilities: Sequence[str], limit: int) -> list[Candidate]:
        nonlocal reads
        reads += 1
        return await read(capabilities, limit)

    store.ready_candidates = counted  # type: ignore[method-assign]
    first = await scheduler.claim(s, at(T0))
    await store.claim("other", "t1", T0)  # by name, past the scheduler
    second = await scheduler.claim(s, at(T0))
    assert first is not None and second is not None
    assert [first.task.id, second.task.id] == ["t0", "t2"] and reads == 1
    assert counting.lost == 0  # t1 left the pool when its claim was heard
    await add_tasks(store, [spec("urgent", priority=9)], T0)
    third = await scheduler.claim(s, at(T0))
    assert third is not None and third.task.id == "urgent" and reads == 2
