"""Collaboration in the Store contract (both backends): handoff notes, split and merge,
the cascade of a split parent's end. Time is passed in, never slept."""

from __future__ import annotations

import asyncio

import pytest

from unified_swarm.config import Settings
from unified_swarm.core import collab
from unified_swarm.core.collab import Merge
from unified_swarm.errors import InvalidInput, LeaseLost, NotFound, OutcomeMismatch
from unified_swarm.models import Event, Outcome, Split, TaskSpec, TaskStatus, note
from unified_swarm.store.base import Store

from ..conftest import T0
from .helpers import SETTINGS, add_tasks, at, claim_next, join, spec

S = TaskStatus


async def test_notes_are_kept_per_task_in_order(store: Store) -> None:
    await add_tasks(store, [spec("a"), spec("b")], T0)
    assert await store.notes("a") == []
    await store.add_note("a", note("release", "half done", T0 + 1, "w1"), T0 + 1)
    await store.add_note("a", note("answer", "use v2", T0 + 2), T0 + 2)
    got = await store.notes("a")
    assert [n["text"] for n in got] == ["half done", "use v2"]
    assert got[0]["kind"] == "release" and got[0]["session_id"] == "w1"
    assert await store.notes("b") == []
    with pytest.raises(NotFound):
        await store.add_note("nope", note("release", "x", T0), T0)
    assert await store.notes("nope") == []


# -- split and merge ---------------------------------------------------------------------

LEASE = 30.0


async def _holding(store: Store, tid: str, sid: str = "w1", now: float = T0,
                   **kw: object) -> int:
    """`sid` (joined if new) claims task `tid` (added if new); its fencing token."""
    if await store.get_session(sid) is None:
        await join(store, sid, [], max_tasks=50)
    if await store.get_task(tid) is None:
        await add_tasks(store, [spec(tid, **kw)], now)  # type: ignore[arg-type]
    c = await store.claim(sid, tid, now)
    return c.lease.fencing_token


async def _split(store: Store, tid: str, token: int, subs: list[TaskSpec],
                 merge: Merge | None = None, sid: str = "w1", now: float = T0 + 1,
                 settings: Settings = SETTINGS) -> Split:
    return await collab.split(store, settings, at(now), sid, tid, token, subs,
                              merge or Merge("list"))


async def _finish(store: Store, tid: str, result: object, sid: str = "w1",
                  now: float = T0 + 2) -> None:
    token = await _holding(store, tid, sid, now)
    await store.complete(sid, tid, token, result, now)


async def _events(store: Store, type_: str, task_id: str) -> list[Event]:
    return [e for e in await store.events_after(0, 100_000)
            if e.type == type_ and e.data.get("task_id") == task_id]


async def test_split_parks_the_parent_and_merges_a_list_in_the_holders_order(
        store: Store) -> None:
    token = await _holding(store, "p", estimated_hours=12.0)
    done = await _split(store, "p", token, [
        spec("s1", dependencies=["s2"]), spec("s2")])  # s1 waits for s2: order is not age
    assert [t.id for t in done.subtasks] == ["s1", "s2"]
    assert all(t.parent_id == "p" and t.depth == 1 for t in done.subtasks)
    parent = await store.get_task("p")
    assert parent is not None and parent.status == S.WAITING
    assert parent.assigned_to is None and parent.lease_expires_at is None
    assert [a.outcome for a in await store.history("p")] == [Outcome.SPLIT]
    assert (await store.get_session("w1")).current_tasks == []  # type: ignore[union-attr]
    await _finish(store, "s2", {"n": 2})
    assert (await store.get_task("p")).status == S.WAITING  # type: ignore[union-attr]
    await _finish(store, "s1", "one")
    parent = await store.get_task("p")
    assert parent is not None and parent.status == S.COMPLETED
    assert parent.result == ["one", {"n": 2}]
    assert len(await _events(store, "task.completed", "p")) == 1


async def test_merge_object_and_a_late_result_of_the_split_attempt_refused(
        store: Store) -> None:
    token = await _holding(store, "p")
    await _split(store, "p", token, [spec("a"), spec("b")], Merge("object"))
    with pytest.raises(LeaseLost):  # the attempt ended `split`: its result is not the parent's
        await store.complete("w1", "p", token, "late", T0 + 2)
    await _finish(store, "b", [1])
    await _finish(store, "a", None)
    parent = await store.get_task("p")
    assert parent is not None and parent.result == {"a": None, "b": [1]}


async def test_merge_task_gets_every_result_and_its_result_is_the_parents(
        store: Store) -> None:
    token = await _holding(store, "p")
    done = await _split(store, "p", token, [spec("a"), spec("b")],
                        Merge("task", TaskSpec(type="build", id="m", title="merge")))
    merge = done.subtasks[-1]
    assert merge.id == "m" and set(merge.dependencies) == {"a", "b"}
    assert merge.status == S.PENDING and merge.parent_id == "p"
    await _finish(store, "a", 1)
    await _finish(store, "b", 2)
    assert (await store.get_task("p")).status == S.WAITING  # type: ignore[union-attr]
    await _finish(store, "m", {"sum": 3})
    parent = await store.get_task("p")
    assert parent is not None and parent.status == S.COMPLETED and parent.result == {"sum": 3}


async def test_racing_completions_complete_the_parent_exactly_once(store: Store) -> None:
    n = 12
    token = await _holding(store, "p")
    await _split(store, "p", token, [spec(f"s{i}") for i in range(n)])
    for i in range(n):
        await join(store, f"w{i + 2}", [])
    tokens = [(await store.claim(f"w{i + 2}", f"s{i}", T0 + 2)).lease.fencing_token
              for i in range(n)]
    await asyncio.gather(*(store.complete(f"w{i + 2}", f"s{i}", tokens[i], i, T0 + 3)
                           for i in range(n)))
    # a retried completion changes nothing either
    await store.complete("w2", "s0", tokens[0], 0, T0 + 4)
    parent = await store.get_task("p")
    assert parent is not None and parent.status == S.COMPLETED
    assert parent.result == list(range(n))
    assert len(await _events(store, "task.completed", "p")) == 1


async def test_a_subtask_failing_for_good_fails_the_parent_and_cancels_the_rest(
        store: Store) -> None:
    token = await _holding(store, "p")
    await add_tasks(store, [spec("after", dependencies=["p"])], T0)
    await _split(store, "p", token, [spec("a", max_attempts=1), spec("b"),
                                     spec("c", dependencies=["b"])])
    await join(store, "w2", [])
    tb = (await store.claim("w2", "b", T0 + 2)).lease.fencing_token
    ta = await _holding(store, "a", "w1", T0 + 2)
    await store.fail("w1", "a", ta, "disk full", True, T0 + 3)  # no attempts left
    parent = await store.get_task("p")
    assert parent is not None and parent.status == S.FAILED
    assert parent.error is not None and "'a'" in parent.error and "disk full" in parent.error
    for tid in ("b", "c"):
        assert (await store.get_task(tid)).status == S.CANCELLED  # type: ignore[union-attr]
    assert (await store.get_task("after")).status == S.BLOCKED  # type: ignore[union-attr]
    with pytest.raises(LeaseLost):
        await store.complete("w2", "b", tb, "too late", T0 + 4)
    assert len(await _events(store, "task.failed", "p")) == 1


async def test_cancelling_a_parent_cancels_every_descendant(store: Store) -> None:
    token = await _holding(store, "p")
    await _split(store, "p", token, [spec("a"), spec("b"), spec("c", dependencies=["a"])])
    ta = await _holding(store, "a", "w1", T0 + 2)
    await _split(store, "a", ta, [spec("a1"), spec("a2")], now=T0 + 3)
    await join(store, "w2", [])
    t1 = (await store.claim("w2", "a1", T0 + 4)).lease.fencing_token
    await store.cancel("p", T0 + 5, "not needed")
    for tid in ("p", "a", "b", "c", "a1", "a2"):
        got = await store.get_task(tid)
        assert got is not None and got.status == S.CANCELLED, (tid, got and got.status)
    assert await claim_next(store, "w2", T0 + 6) is None
    with pytest.raises(LeaseLost):
        await store.complete("w2", "a1", t1, "late", T0 + 6)
    assert (await store.get_session("w2")).current_tasks == []  # type: ignore[union-attr]


async def test_nested_splits_complete_bottom_up_and_stop_at_the_depth_cap(
        store: Store) -> None:
    settings = SETTINGS.replace(max_split_depth=2)
    token = await _holding(store, "p")
    await _split(store, "p", token, [spec("a"), spec("b")], settings=settings)
    ta = await _holding(store, "a", "w1", T0 + 2)
    done = await _split(store, "a", ta, [spec("a1")], Merge("object"), now=T0 + 3,
                        settings=settings)
    assert done.subtasks[0].depth == 2
    t1 = await _holding(store, "a1", "w1", T0 + 4)
    with pytest.raises(InvalidInput, match="deep"):
        await _split(store, "a1", t1, [spec("x")], now=T0 + 5, settings=settings)
    assert (await store.get_task("x")) is None
    await store.complete("w1", "a1", t1, "deep", T0 + 6)
    assert (await store.get_task("a")).result == {"a1": "deep"}  # type: ignore[union-attr]
    await _finish(store, "b", "b", now=T0 + 7)
    parent = await store.get_task("p")
    assert parent is not None and parent.result == [{"a1": "deep"}, "b"]


async def test_split_after_the_lease_expired_changes_nothing(store: Store) -> None:
    token = await _holding(store, "p")  # the session's heartbeat interval is 10 s
    with pytest.raises(LeaseLost):
        await _split(store, "p", token, [spec("a")], now=T0 + LEASE + 1)
    parent = await store.get_task("p")
    assert parent is not None and parent.status == S.IN_PROGRESS
    assert await store.get_task("a") is None
    assert await _events(store, "task.split", "p") == []


async def test_a_retried_split_answers_the_same_subtasks(store: Store) -> None:
    token = await _holding(store, "p")
    first = await _split(store, "p", token, [spec("a"), TaskSpec(type="build")])
    again = await _split(store, "p", token, [spec("a"), TaskSpec(type="build")], now=T0 + 2)
    assert again.duplicate and not first.duplicate
    assert [t.id for t in again.subtasks] == [t.id for t in first.subtasks]
    assert len((await store.list_tasks(limit=100))[0]) == 3
    with pytest.raises(OutcomeMismatch):
        await _split(store, "p", token, [spec("other")], now=T0 + 3)
    with pytest.raises(InvalidInput):  # a subtask waiting on its own parent would never run
        token2 = await _holding(store, "q")
        await _split(store, "q", token2, [spec("qa", dependencies=["q"])])
