"""`Store.claim_many`: several named tasks claimed in one atomic step (issue 16), on every
backend; and the schedulers' batches over it (fifo and learned)."""

from __future__ import annotations

import asyncio

import pytest

from unified_swarm.core.brain import Brain
from unified_swarm.core.learned import LearnedScheduler, load
from unified_swarm.errors import NotClaimable, NotFound
from unified_swarm.models import SessionStatus, TaskStatus
from unified_swarm.store.base import Store

from ..conftest import T0
from .helpers import _session, add_tasks, at, join, scheduler, spec

S = TaskStatus


async def test_claims_named_tasks_in_order_up_to_the_sessions_room(store: Store) -> None:
    await join(store, "w1", max_tasks=3)
    await add_tasks(store, [spec(f"t{i}") for i in range(5)], T0)
    got = await store.claim_many("w1", [("t3", 1.5), ("t1", None), ("t0", None), ("t2", None)],
                                 T0 + 1)
    assert [c.task.id for c in got] == ["t3", "t1", "t0"]
    assert all(c.task.status == S.IN_PROGRESS and c.lease.fencing_token == 1 for c in got)
    assert all(c.lease.session_id == "w1" for c in got)
    assert (await store.get_task("t2")).status == S.READY  # type: ignore[union-attr]
    s = await store.get_session("w1")
    assert s is not None and sorted(s.current_tasks) == ["t0", "t1", "t3"]
    assert s.status == SessionStatus.BUSY
    history = await store.history("t3")
    assert [a.predicted for a in history] == [1.5]
    with pytest.raises(NotClaimable):  # at capacity: refused like one claim
        await store.claim_many("w1", [("t2", None)], T0 + 2)


async def test_skips_what_cannot_be_had_and_claims_a_name_once(store: Store) -> None:
    await join(store, "w1", max_tasks=5)
    await join(store, "w2", ["other"])
    await add_tasks(store, [spec("a"), spec("b"), spec("c"), spec("x", "other")], T0)
    await store.claim_many("w1", [("b", None)], T0)
    got = await store.claim_many(
        "w1", [("missing", None), ("b", None), ("x", None), ("a", None), ("a", None),
               ("c", None)], T0 + 1)
    assert [c.task.id for c in got] == ["a", "c"]  # gone, held, capability: skipped
    assert (await store.get_task("a")).attempts == 1  # type: ignore[union-attr]
    assert await store.claim_many("w1", [("a", None)], T0 + 2) == []  # all skipped: empty
    with pytest.raises(NotFound):
        await store.claim_many("nobody", [("a", None)], T0)


async def test_concurrent_batches_never_claim_a_task_twice(store: Store) -> None:
    for i in range(4):
        await join(store, f"w{i}", max_tasks=10)
    await add_tasks(store, [spec(f"t{i}") for i in range(12)], T0)
    names = [(f"t{i}", None) for i in range(12)]
    got = await asyncio.gather(*(store.claim_many(f"w{i}", names, T0 + 1) for i in range(4)))
    ids = [c.task.id for batch in got for c in batch]
    assert sorted(ids) == sorted(n for n, _ in names)  # each once, none lost
    events = await store.events_after(0, 1000)
    assert sum(1 for e in events if e.type == "task.claimed") == 12


async def test_fifo_batches_in_priority_then_age_order(store: Store) -> None:
    await join(store, "w1", max_tasks=3)
    await add_tasks(store, [spec("low", priority=2), spec("old"), spec("high", priority=9),
                            spec("new")], T0)
    got = await scheduler(store).claim_many(await _session(store, "w1"), at(T0 + 1), 3)
    assert [c.task.id for c in got] == ["high", "old", "new"]
    with pytest.raises(NotClaimable):
        await scheduler(store).claim_many(await _session(store, "w1"), at(T0 + 1), 1)
    await join(store, "w2", max_tasks=3)
    got = await scheduler(store).claim_many(await _session(store, "w2"), at(T0 + 1), 3)
    assert [c.task.id for c in got] == ["low"]
    assert await scheduler(store).claim_many(await _session(store, "w2"), at(T0 + 1), 3) == []


async def test_learned_batches_keep_the_brains_choice_and_free_what_is_left(
        store: Store) -> None:
    brain = Brain()
    store.add_listener(brain.apply)
    await join(store, "w1", max_tasks=2)
    await add_tasks(store, [spec("a", priority=3), spec("b", priority=9), spec("c")], T0)
    await load(store, brain)
    sched = LearnedScheduler(store, brain)
    me = await _session(store, "w1")
    got = await sched.claim_many(me, at(T0 + 1), 3)  # room for 2 only
    claimed = [c.task.id for c in got]
    assert len(set(claimed)) == 2 and claimed[0] == "b"  # the top rank first, never twice
    left = ({"a", "b", "c"} - set(claimed)).pop()
    assert left not in brain.holds  # nothing held for a session with no room
    assert brain.decide(me, T0 + 2).task_id == left  # and it is still there to choose
