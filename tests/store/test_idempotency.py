"""Idempotency-Key, both stores: a keyed step keeps its answer in its own atomic step, so a
reply lost after the write (the store's `faults`: the step committed, the caller got 503)
is answered again by the retry, with no second effect (issue 10, item 7).

The first tests hold the store's primitives to the rule; the rest drive the Orchestrator,
which is what the API calls: no double task, no stray lease, no false AlreadyExists, the
same session and token for a register, one knowledge version.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from unified_swarm.config import Settings
from unified_swarm.core import idempotency
from unified_swarm.core.auth import Principal
from unified_swarm.core.orchestrator import Orchestrator, SessionSpec
from unified_swarm.core.planning import plan_batch
from unified_swarm.errors import AlreadyExists, KeyReused, NotClaimable, TaskTaken, Unavailable
from unified_swarm.models import Claimed, Idem, Placed, Session, Task, TaskSpec, TaskStatus
from unified_swarm.store.base import Store
from unified_swarm.store.replay import LostReplies
from unified_swarm.tokens import hash_token

from ..conftest import T0
from .helpers import add_tasks, at, claim_next, join, session, spec

TTL = 3600.0


def key(name: str, body: Any = None, *, who: str = "operator", route: str = "POST /x",
        ttl: float = TTL) -> Idem:
    return idempotency.make(who, route, name, "/x", repr(body).encode(), ttl)


def faults(store: Store) -> LostReplies:
    f: LostReplies = getattr(store, "faults")  # noqa: B009 (a test hook, not in the protocol)
    return f


async def last_seq(store: Store) -> int:
    return (await store.counts()).last_seq


# -- the primitives ---------------------------------------------------------------------


async def test_keep_is_first_writer_wins_and_refuses_another_request(store: Store) -> None:
    """`Store.keep` (an answer of several steps, an emergency's): the first answer kept
    is the one every later keep and recall of the key gets, exactly as it was; the key
    with another request is refused; another key keeps its own."""
    task = Task(id="e1", type="fix", title="now", required_capability="fix",
                status=TaskStatus.READY, priority=11, created_at=T0, updated_at=T0,
                input={"ms": 1.5})
    first = Placed(task, "w1", None)
    assert await store.keep("emergency", key("e-1", 1), first, T0) == first
    second = Placed(replace(task, title="later"), None, ("t9", "w2"))
    assert await store.keep("emergency", key("e-1", 1), second, T0 + 1) == first
    assert await store.recall(key("e-1", 1), T0 + 2) == first
    with pytest.raises(KeyReused):
        await store.keep("emergency", key("e-1", 2), second, T0 + 3)
    assert await store.keep("emergency", key("e-2", 1), second, T0 + 4) == second
    assert await store.recall(key("e-2", 1), T0 + 5) == second
    assert await store.recall(key("e-1", 1), T0 + TTL + 1) is None  # expired


async def test_a_lost_insert_is_answered_again_without_a_second_write(store: Store) -> None:
    k = key("add-1")
    faults(store).arm("insert_batch")
    with pytest.raises(Unavailable):
        await store.insert_batch(plan_batch([spec("a"), spec("b")], {}, T0, Settings()), {},
                                 T0, k)
    assert faults(store).lost == {"insert_batch": 1}
    seq = await last_seq(store)
    again = plan_batch([spec("a"), spec("b")], {}, T0 + 1, Settings())
    got = await store.insert_batch(again, {}, T0 + 1, k)
    assert got is not None and [t.id for t in got] == ["a", "b"]
    assert [t.created_at for t in got] == [T0, T0]  # the first answer, not the retry's
    assert await last_seq(store) == seq  # no second event: nothing happened again
    assert (await store.counts()).tasks == {"ready": 2}
    kept = await store.recall(k, T0 + 2)
    assert isinstance(kept, list) and all(isinstance(t, Task) for t in kept)
    assert [t.seq for t in kept if isinstance(t, Task)] == [t.seq for t in got]


async def test_a_lost_claim_is_answered_again_and_leaves_no_stray_lease(store: Store) -> None:
    await join(store, "w1", max_tasks=2)
    await add_tasks(store, [spec("a"), spec("b")], T0)
    k = key("claim-1", who="w1")
    faults(store).arm("claim")
    with pytest.raises(Unavailable):
        await store.claim("w1", "a", T0 + 1, idem=k)
    # the retry names another task (a scheduler's fresh choice): the key answers first
    got = await store.claim("w1", "b", T0 + 2, idem=k)
    assert got.task.id == "a" and got.lease.fencing_token == 1
    s = await store.get_session("w1")
    assert s is not None and s.current_tasks == ["a"]
    b = await store.get_task("b")
    assert b is not None and b.status == TaskStatus.READY


async def test_a_lost_batch_claim_is_answered_again_and_leaves_no_stray_lease(
        store: Store) -> None:
    await join(store, "w1", max_tasks=4)
    await add_tasks(store, [spec("a"), spec("b"), spec("c"), spec("d")], T0)
    k = key("batch-1", who="w1")
    faults(store).arm("claim_many")
    with pytest.raises(Unavailable):
        await store.claim_many("w1", [("a", 1.0), ("b", None)], T0 + 1, k)
    seq = await last_seq(store)
    # the retry names other tasks (a scheduler's fresh choice): the key answers first
    got = await store.claim_many("w1", [("c", None), ("d", None)], T0 + 2, k)
    assert [(c.task.id, c.lease.fencing_token) for c in got] == [("a", 1), ("b", 1)]
    assert await last_seq(store) == seq  # nothing happened again
    s = await store.get_session("w1")
    assert s is not None and sorted(s.current_tasks) == ["a", "b"]
    kept = await store.recall(k, T0 + 3)
    assert isinstance(kept, list) and all(isinstance(c, Claimed) for c in kept)
    assert [c.task.id for c in kept if isinstance(c, Claimed)] == ["a", "b"]


async def test_a_batch_claim_that_found_nothing_keeps_nothing(store: Store) -> None:
    """Its retry must look again: a key that kept "nothing" would answer nothing for a
    day, however much work came in."""
    await join(store, "w1", max_tasks=2, now=T0 - 100)  # silent: the claim revives it
    await join(store, "w2")
    await add_tasks(store, [spec("a")], T0)
    await store.claim("w2", "a", T0)
    k = key("batch-1", who="w1")
    assert await store.claim_many("w1", [("a", None)], T0 + 1, k) == []
    assert await store.recall(k, T0 + 1) is None
    await add_tasks(store, [spec("b")], T0 + 2)
    got = await store.claim_many("w1", [("b", None)], T0 + 3, k)
    assert [c.task.id for c in got] == ["b"]
    assert await store.recall(k, T0 + 4) is not None


async def test_a_lost_register_is_answered_again_not_already_exists(store: Store) -> None:
    k = key("join-1")
    faults(store).arm("register")
    with pytest.raises(Unavailable):
        await store.register_session(session("w1"), hash_token("t1"), T0, k)
    got = await store.register_session(session("w1"), hash_token("t1"), T0 + 1, k)
    assert got.id == "w1" and got.registered_at == T0
    with pytest.raises(AlreadyExists):  # without the key the session is online already
        await store.register_session(session("w1"), hash_token("t1"), T0 + 1)


async def test_a_lost_knowledge_write_is_one_version(store: Store) -> None:
    k = key("put-1")
    faults(store).arm("put_knowledge")
    with pytest.raises(Unavailable):
        await store.put_knowledge("t", {"v": 1}, [], None, "operator", T0, k)
    got = await store.put_knowledge("t", {"v": 1}, [], None, "operator", T0 + 1, k)
    assert got.version == 1 and got.updated_at == T0
    latest = await store.get_knowledge("t")
    assert latest is not None and latest.version == 1


async def test_the_same_key_with_another_request_is_refused_and_changes_nothing(
        store: Store) -> None:
    await store.put_knowledge("t", {"v": 1}, [], None, "operator", T0, key("k", 1))
    seq = await last_seq(store)
    with pytest.raises(KeyReused):
        await store.put_knowledge("t", {"v": 2}, [], None, "operator", T0 + 1, key("k", 2))
    with pytest.raises(KeyReused):
        await store.recall(key("k", 2), T0 + 1)
    assert await last_seq(store) == seq
    latest = await store.get_knowledge("t")
    assert latest is not None and latest.content == {"v": 1}


async def test_keys_are_scoped_per_caller_and_route(store: Store) -> None:
    """The same key from two callers (or on two routes) is two keys: both act."""
    a = await store.put_knowledge("t", 1, [], None, "operator", T0, key("k", 1))
    b = await store.put_knowledge("t", 1, [], None, "w1", T0, key("k", 1, who="w1"))
    c = await store.put_knowledge("t", 1, [], None, "operator", T0,
                                  key("k", 1, route="PUT /y"))
    assert (a.version, b.version, c.version) == (1, 2, 3)


async def test_a_refused_step_keeps_nothing(store: Store) -> None:
    await join(store, "w1")
    await join(store, "w2")
    await add_tasks(store, [spec("a")], T0)
    await store.claim("w2", "a", T0)
    k = key("claim-1", who="w1")
    with pytest.raises(TaskTaken):
        await store.claim("w1", "a", T0 + 1, idem=k)
    assert await store.recall(k, T0 + 1) is None  # its retry simply runs again


async def test_an_expired_key_is_forgotten(store: Store) -> None:
    k = key("put-1", ttl=10.0)
    await store.put_knowledge("t", 1, [], None, "operator", T0, k)
    assert await store.recall(k, T0 + 9) is not None
    assert await store.recall(k, T0 + 10) is None
    again = await store.put_knowledge("t", 1, [], None, "operator", T0 + 11, k)
    assert again.version == 2  # past its TTL the key is a new request


async def test_a_lost_reply_without_a_key_is_the_harm_keys_prevent(store: Store) -> None:
    """Item 7: without a key, a retry after a lost reply acts twice. This is why the SDK
    retries a non-idempotent call only with a key (and proves the fault is real)."""
    await join(store, "w1", max_tasks=2)
    faults(store).arm("insert_batch")
    with pytest.raises(Unavailable):
        await add_tasks(store, [spec("a"), spec("b")], T0)
    with pytest.raises(AlreadyExists):  # the add happened, its retry says it did not
        await add_tasks(store, [spec("a"), spec("b")], T0)
    faults(store).arm("claim")
    with pytest.raises(Unavailable):
        await claim_next(store, "w1", T0 + 1)
    second = await claim_next(store, "w1", T0 + 2)  # the retry: a second lease, a stray
    s = await store.get_session("w1")
    assert second is not None and s is not None and len(s.current_tasks) == 2


# -- through the Orchestrator (what the API calls) ----------------------------------------


@pytest.fixture
async def orch(store: Store, settings: Settings) -> AsyncIterator[Orchestrator]:
    o = Orchestrator(store, settings.replace(scheduler="fifo"), "operator-token", at(T0 + 5))
    await o.start(run_loop=False)
    yield o
    await o.stop()


OPERATOR = Principal("operator")


def call(o: Orchestrator, name: str, route: str, body: Any, *,
         caller: Principal = OPERATOR, path: str = "/x") -> Idem:
    return o.idem(caller, route, name, path, repr(body).encode())


async def as_session(o: Orchestrator, sid: str, max_tasks: int = 1) -> Principal:
    _, token = await o.register(SessionSpec(["build"], id=sid, max_concurrent_tasks=max_tasks))
    return await o.authenticate(token)


def holder(p: Principal) -> Session:
    assert p.session is not None
    return p.session


async def test_add_retried_after_a_lost_reply_is_one_batch(orch: Orchestrator) -> None:
    body = [TaskSpec(type="build", id="a"), TaskSpec(type="build")]  # one id generated
    k = call(orch, "add-1", "POST /work", "batch")
    faults(orch.store).arm("insert_batch")
    with pytest.raises(Unavailable):
        await orch.add_tasks(body, k)
    retry = [TaskSpec(type="build", id="a"), TaskSpec(type="build")]  # a new generated id
    got = await orch.add_tasks(retry, k)  # no false AlreadyExists
    first_ids = [s.id for s in body]
    assert [t.id for t in got] == first_ids
    assert (await orch.counts()).tasks == {"ready": 2}  # no double


async def test_request_retried_after_a_lost_reply_is_one_lease(orch: Orchestrator) -> None:
    await orch.add_tasks([TaskSpec(type="build", id="a"), TaskSpec(type="build", id="b")])
    w = holder(await as_session(orch, "w1", max_tasks=2))
    k = call(orch, "req-1", "GET /work/request", None, caller=Principal("session", w))
    faults(orch.store).arm("claim")
    with pytest.raises(Unavailable):
        await orch.request_work(w, 0.0, idem=k)
    got = await orch.request_work(w, 0.0, idem=k)
    assert got is not None and got.task.id == "a" and got.lease.fencing_token == 1
    s = await orch.get_session("w1")
    assert s.current_tasks == ["a"]  # no stray lease on "b"
    assert (await orch.counts()).tasks == {"in_progress": 1, "ready": 1}


async def test_request_retried_at_capacity_gets_its_claim(orch: Orchestrator) -> None:
    """A session that may hold one task: the retry's own check-in would refuse it (it holds
    its limit, from the lost try); the key answers before that."""
    await orch.add_tasks([TaskSpec(type="build", id="a")])
    w = holder(await as_session(orch, "w1"))
    k = call(orch, "req-1", "GET /work/request", None, caller=Principal("session", w))
    faults(orch.store).arm("claim")
    with pytest.raises(Unavailable):
        await orch.request_work(w, 0.0, idem=k)
    got = await orch.request_work(w, 0.0, idem=k)
    assert got is not None and got.task.id == "a"
    with pytest.raises(NotClaimable):  # a new request (no key, or another) is refused
        await orch.request_work(w, 0.0)


@pytest.mark.parametrize("scheduler", ["fifo", "learned"])
async def test_batch_request_retried_after_a_lost_reply_is_one_set_of_leases(
        store: Store, settings: Settings, scheduler: str) -> None:
    o = Orchestrator(store, settings.replace(scheduler=scheduler), "operator-token",
                     at(T0 + 5))
    await o.start(run_loop=False)
    try:
        await o.add_tasks([TaskSpec(type="build", id=t) for t in "abcd"])
        w = holder(await as_session(o, "w1", max_tasks=4))
        k = call(o, "req-1", "GET /work/request", None, caller=Principal("session", w))
        faults(o.store).arm("claim_many")
        with pytest.raises(Unavailable):
            await o.request_batch(w, 0.0, 2, idem=k)
        first = sorted((await o.get_session("w1")).current_tasks)
        assert len(first) == 2
        got = await o.request_batch(w, 0.0, 2, idem=k)
        assert sorted(c.task.id for c in got) == first
        assert all(c.lease.fencing_token == 1 for c in got)
        assert sorted((await o.get_session("w1")).current_tasks) == first  # no stray lease
        assert (await o.counts()).tasks == {"in_progress": 2, "ready": 2}
        again = await o.request_batch(w, 0.0, 2)  # a new request (no key) claims the rest
        assert sorted(c.task.id for c in again) == sorted(set("abcd") - set(first))
    finally:
        await o.stop()


async def test_a_keyed_batch_request_that_waited_gets_the_task_that_came(
        orch: Orchestrator) -> None:
    """The wait's first look found nothing (kept nothing); the task added meanwhile is
    claimed under the key, and a retry gets it again."""
    w = holder(await as_session(orch, "w1", max_tasks=2))
    k = call(orch, "req-1", "GET /work/request", None, caller=Principal("session", w))
    waiting = asyncio.create_task(orch.request_batch(w, 5.0, 2, idem=k))
    await asyncio.sleep(0.05)
    await orch.add_tasks([TaskSpec(type="build", id="a")])
    got = await asyncio.wait_for(waiting, 5.0)
    assert [c.task.id for c in got] == ["a"]
    again = await orch.request_batch(w, 0.0, 2, idem=k)
    assert [(c.task.id, c.lease.fencing_token) for c in again] == [("a", 1)]
    assert (await orch.get_session("w1")).current_tasks == ["a"]


async def test_claim_retried_after_a_lost_reply_is_one_attempt(orch: Orchestrator) -> None:
    await orch.add_tasks([TaskSpec(type="build", id="a")])
    w = holder(await as_session(orch, "w1"))
    k = call(orch, "claim-1", "POST /work/claim", "a", caller=Principal("session", w))
    faults(orch.store).arm("claim")
    with pytest.raises(Unavailable):
        await orch.claim(w, "a", k)
    got = await orch.claim(w, "a", k)
    assert got.task.attempts == 1 and got.lease.fencing_token == 1
    task, history = await orch.get_task("a")
    assert task.attempts == 1 and len(history) == 1


async def test_register_retried_after_a_lost_reply_is_one_session(orch: Orchestrator) -> None:
    k = call(orch, "join-1", "POST /session/register", "w1")
    faults(orch.store).arm("register")
    with pytest.raises(Unavailable):
        await orch.register(SessionSpec(["build"]), k)  # a generated id
    got, token = await orch.register(SessionSpec(["build"]), k)
    again, token2 = await orch.register(SessionSpec(["build"]), k)
    assert (got.id, token) == (again.id, token2)  # the same session, the same token
    who = await orch.authenticate(token)
    assert who.session_id == got.id
    assert len(await orch.list_sessions()) == 1
    other = call(orch, "join-2", "POST /session/register", "w1")
    _, fresh = await orch.register(SessionSpec(["build"]), other)
    assert fresh != token  # another key, another session, another token


async def test_knowledge_put_retried_after_a_lost_reply_is_one_version(
        orch: Orchestrator) -> None:
    k = call(orch, "put-1", "PUT /knowledge/{topic:path}", {"v": 1}, path="/knowledge/t")
    faults(orch.store).arm("put_knowledge")
    with pytest.raises(Unavailable):
        await orch.put_knowledge("t", {"v": 1}, [], None, OPERATOR, k)
    got = await orch.put_knowledge("t", {"v": 1}, [], None, OPERATOR, k)
    assert got.version == 1
    assert (await orch.get_knowledge("t", None)).version == 1


async def test_a_retry_racing_its_first_try_gets_the_first_answer(orch: Orchestrator) -> None:
    """The first try committed while its retry was being planned: the retry's conflict
    (the ids exist now) is the first try's answer, not AlreadyExists."""
    k = call(orch, "add-1", "POST /work", "batch")

    async def racing() -> list[Task]:
        await orch.add_tasks([TaskSpec(type="build", id="a")], k)  # the first try commits
        return await orch.add_tasks([TaskSpec(type="build", id="a")])  # AlreadyExists

    # the retry's look-up ran before the first try committed; its own plan then conflicts
    got = await orch._once(k, list, racing)
    assert [t.id for t in got] == ["a"]
    assert (await orch.counts()).tasks == {"ready": 1}


async def test_sqlite_purges_expired_keys_as_keyed_writes_go(settings: Settings) -> None:
    """Expired answers do not pile up: each keyed write deletes a few (bounded work)."""
    import sqlite3

    from unified_swarm.store.sqlite import SQLiteStore
    from unified_swarm.store.sqlite.keyed import PURGE

    store = SQLiteStore(settings.sqlite_path, settings)
    await store.open()
    try:
        for n in range(PURGE + 4):
            await store.put_knowledge(f"t{n}", n, [], None, "operator", T0,
                                      key(f"k{n}", ttl=10.0))

        def rows() -> int:
            with sqlite3.connect(settings.sqlite_path) as conn:
                return int(conn.execute("SELECT COUNT(*) FROM idempotency").fetchone()[0])
        assert rows() == PURGE + 4
        await store.put_knowledge("late", 1, [], None, "operator", T0 + 11, key("late"))
        assert rows() == 4 + 1  # PURGE expired ones went, the new one came
        await store.put_knowledge("later", 1, [], None, "operator", T0 + 12, key("later"))
        assert rows() == 2
    finally:
        await store.close()
