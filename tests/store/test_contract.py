"""The Store contract: every backend passes these unchanged (parametrized sqlite / redis).

Time is passed in (`T0 + seconds`), never slept; a lease of a session with a 10 s heartbeat
interval lasts 30 s (lease_factor 3).
"""

from __future__ import annotations

import asyncio

import pytest

from unified_swarm.errors import (
    AlreadyExists,
    DependencyCycle,
    Forbidden,
    InvalidInput,
    LeaseLost,
    NotClaimable,
    NotFound,
    OutcomeMismatch,
    StaleVersion,
    UnknownDependency,
)
from unified_swarm.models import Interrupt, Outcome, SessionStatus, TaskStatus
from unified_swarm.store.base import Store
from unified_swarm.tokens import hash_token

from ..conftest import T0
from .helpers import add_tasks, claim_next, join, offer_next, session, spec

S = TaskStatus
LEASE = 30.0


# -- sessions ----------------------------------------------------------------------------


async def test_register_then_find_by_token(store: Store) -> None:
    s = await join(store, "w1", ["build", "research"])
    assert s.status == SessionStatus.IDLE and s.capabilities == ["build", "research"]
    found = await store.session_by_token(hash_token("w1"))
    assert found is not None and found.id == "w1"
    assert await store.session_by_token(hash_token("nobody")) is None


async def test_register_online_id_twice_conflicts(store: Store) -> None:
    await join(store, "w1")
    with pytest.raises(AlreadyExists):
        await join(store, "w1")


async def test_offline_session_resumes_with_history(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    c = await claim_next(store, "w1", T0)
    assert c is not None
    await store.complete("w1", "a", c.lease.fencing_token, {"ok": True}, T0 + 1)
    await store.leave_session("w1", T0 + 2, "left")
    assert await store.session_by_token(hash_token("w1")) is None  # token revoked
    again = await store.register_session(session("w1"), hash_token("w1-new"), T0 + 3)
    assert again.status == SessionStatus.IDLE
    assert again.tasks_completed == 1


async def test_list_and_get_sessions(store: Store) -> None:
    await join(store, "w1")
    await join(store, "w2")
    assert [s.id for s in await store.list_sessions()] == ["w1", "w2"]
    assert await store.get_session("nope") is None


# -- adding tasks ------------------------------------------------------------------------


async def test_add_batch_sets_first_status_and_priority(store: Store) -> None:
    added = await add_tasks(store, [
        spec("a"), spec("b", dependencies=["a"]), spec("c", critical=True, roi="high"),
        spec("d", priority=2)], T0)
    by_id = {t.id: t for t in added}
    assert by_id["a"].status == S.READY and by_id["a"].priority == 6  # 5 +1 deps met
    assert by_id["b"].status == S.PENDING and by_id["b"].priority == 5
    assert by_id["c"].priority == 10  # 5 +3 +1 +1
    assert by_id["d"].priority == 2
    assert by_id["a"].required_capability == "build"


async def test_batch_is_all_or_nothing(store: Store) -> None:
    await add_tasks(store, [spec("a")], T0)
    for bad, err in (
        ([spec("x"), spec("y", dependencies=["ghost"])], UnknownDependency),
        ([spec("x", dependencies=["y"]), spec("y", dependencies=["x"])], DependencyCycle),
        ([spec("x", dependencies=["x"])], DependencyCycle),
        ([spec("x"), spec("a")], AlreadyExists),
        ([spec("x"), spec("x")], AlreadyExists),
        ([spec("x"), spec("y", priority=11)], InvalidInput),
    ):
        with pytest.raises(err):
            await add_tasks(store, bad, T0)
        assert await store.get_task("x") is None
    tasks, _ = await store.list_tasks()
    assert [t.id for t in tasks] == ["a"]


async def test_dependency_on_stored_task(store: Store) -> None:
    await add_tasks(store, [spec("a")], T0)
    (b,) = await add_tasks(store, [spec("b", dependencies=["a"])], T0)
    assert b.status == S.PENDING


async def test_dependency_on_failed_task_is_blocked_at_once(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a", max_attempts=1)], T0)
    c = await claim_next(store, "w1", T0)
    assert c is not None
    await store.fail("w1", "a", c.lease.fencing_token, "boom", True, T0)
    (b,) = await add_tasks(store, [spec("b", dependencies=["a"])], T0)
    assert b.status == S.BLOCKED


async def test_a_batch_replans_when_a_dependency_moves(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("dep")], T0)
    claimed = await claim_next(store, "w1", T0)
    assert claimed is not None
    read = store.task_statuses

    async def racing(ids: list[str]) -> dict[str, object]:
        seen = await read(ids)  # the plan reads "dep" in progress...
        if "dep" in ids and seen.get("dep") == "in_progress":
            await store.complete("w1", "dep", claimed.lease.fencing_token, None, T0 + 1)
        return seen  # type: ignore[return-value]

    store.task_statuses = racing  # type: ignore[method-assign,assignment]
    added = await add_tasks(store, [spec("after", dependencies=["dep"])], T0 + 2)
    assert added[0].status.value == "ready"  # ...which completed before the write: replanned
    assert (await store.get_task("after")).status.value == "ready"  # type: ignore[union-attr]


# -- choosing and claiming ---------------------------------------------------------------


async def test_claim_order_is_priority_then_age(store: Store) -> None:
    await join(store, "w1", max_tasks=10)
    await add_tasks(store, [spec("low", priority=3), spec("old", priority=7),
                           spec("new", priority=7), spec("top", priority=9)], T0)
    order = []
    for _ in range(4):
        c = await claim_next(store, "w1", T0)
        assert c is not None
        order.append(c.task.id)
    assert order == ["top", "old", "new", "low"]
    assert await claim_next(store, "w1", T0) is None


async def test_claim_matches_capability(store: Store) -> None:
    await join(store, "builder", ["build"], max_tasks=5)
    await join(store, "anyone", [])
    await add_tasks(store, [spec("r", "research", priority=9), spec("b", "build", priority=1)], T0)
    c = await claim_next(store, "builder", T0)
    assert c is not None and c.task.id == "b"
    assert await claim_next(store, "builder", T0) is None  # never the research task
    c2 = await claim_next(store, "anyone", T0)
    assert c2 is not None and c2.task.id == "r"


async def test_claim_starts_a_fenced_lease(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    c = await claim_next(store, "w1", T0)
    assert c is not None
    assert c.task.status == S.IN_PROGRESS and c.task.assigned_to == "w1"
    assert c.lease.fencing_token == 1 and c.task.attempts == 1
    assert c.lease.expires_at == pytest.approx(T0 + LEASE)
    (att,) = await store.history("a")
    assert att.session_id == "w1" and att.fencing_token == 1 and att.outcome is None
    s = await store.get_session("w1")
    assert s is not None and s.status == SessionStatus.BUSY and s.current_tasks == ["a"]


async def test_max_concurrent_tasks(store: Store) -> None:
    await join(store, "w1", max_tasks=2)
    await add_tasks(store, [spec(f"t{i}") for i in range(3)], T0)
    assert await claim_next(store, "w1", T0) is not None
    assert await claim_next(store, "w1", T0) is not None
    with pytest.raises(NotClaimable):
        await claim_next(store, "w1", T0)


async def test_claim_named(store: Store) -> None:
    await join(store, "w1")
    await join(store, "w2")
    await join(store, "r1", ["research"])
    await add_tasks(store, [spec("a"), spec("b", dependencies=["a"])], T0)
    with pytest.raises(NotClaimable):
        await store.claim("w1", "b", T0)  # pending
    with pytest.raises(NotClaimable):
        await store.claim("r1", "a", T0)  # wrong capability
    with pytest.raises(NotFound):
        await store.claim("w1", "ghost", T0)
    c = await store.claim("w1", "a", T0)
    assert c.lease.fencing_token == 1
    with pytest.raises(NotClaimable):
        await store.claim("w2", "a", T0)  # held


async def test_draining_or_offline_session_claims_nothing(store: Store) -> None:
    await join(store, "w1")
    await join(store, "w2")
    await add_tasks(store, [spec("a")], T0)
    await store.set_draining("w1", T0)
    with pytest.raises(NotClaimable):
        await claim_next(store, "w1", T0)
    await store.leave_session("w2", T0, "left")
    with pytest.raises(NotClaimable):
        await claim_next(store, "w2", T0)


async def test_concurrent_claimers_never_share_a_task(store: Store) -> None:
    n_sessions, n_tasks = 16, 120
    for i in range(n_sessions):
        await join(store, f"w{i}")
    await add_tasks(store, [spec(f"t{i}") for i in range(n_tasks)], T0)
    done: list[str] = []

    async def worker(sid: str) -> None:
        for _ in range(n_tasks):
            c = await claim_next(store, sid, T0)
            if c is None:
                return
            rec = await store.complete(sid, c.task.id, c.lease.fencing_token, sid, T0)
            assert not rec.duplicate
            done.append(c.task.id)

    await asyncio.gather(*(worker(f"w{i}") for i in range(n_sessions)))
    assert sorted(done) == sorted(f"t{i}" for i in range(n_tasks))
    for i in range(n_tasks):
        assert len(await store.history(f"t{i}")) == 1


# -- outcomes and fencing ----------------------------------------------------------------


async def test_complete_releases_dependents_with_priority_bump(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a"), spec("b", dependencies=["a"])], T0)
    c = await claim_next(store, "w1", T0)
    assert c is not None
    rec = await store.complete("w1", "a", 1, {"answer": 42}, T0 + 5)
    assert rec.task.status == S.COMPLETED and rec.task.result == {"answer": 42}
    b = await store.get_task("b")
    assert b is not None and b.status == S.READY and b.priority == 6
    (att,) = await store.history("a")
    assert att.outcome == Outcome.COMPLETED and att.ended_at == T0 + 5
    s = await store.get_session("w1")
    assert s is not None and s.status == SessionStatus.IDLE and s.tasks_completed == 1
    assert s.performance_score > 0.5


async def test_outcome_calls_are_idempotent_per_token(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    await claim_next(store, "w1", T0)
    first = await store.complete("w1", "a", 1, {"v": 1}, T0 + 1)
    again = await store.complete("w1", "a", 1, {"v": 1}, T0 + 2)
    assert not first.duplicate and again.duplicate
    with pytest.raises(OutcomeMismatch):
        await store.complete("w1", "a", 1, {"v": 2}, T0 + 3)
    with pytest.raises(OutcomeMismatch):
        await store.fail("w1", "a", 1, "late failure", True, T0 + 3)
    t = await store.get_task("a")
    assert t is not None and t.result == {"v": 1}


async def test_fail_is_idempotent_too(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    await claim_next(store, "w1", T0)
    first = await store.fail("w1", "a", 1, "boom", True, T0 + 1)
    again = await store.fail("w1", "a", 1, "boom", True, T0 + 2)
    assert first.task.status == S.READY and again.duplicate
    with pytest.raises(OutcomeMismatch):
        await store.complete("w1", "a", 1, None, T0 + 3)


async def test_other_session_is_forbidden_and_stale_token_is_refused(store: Store) -> None:
    await join(store, "w1")
    await join(store, "w2")
    await add_tasks(store, [spec("a")], T0)
    await claim_next(store, "w1", T0)
    with pytest.raises(Forbidden):
        await store.complete("w2", "a", 1, None, T0)
    with pytest.raises(LeaseLost):
        await store.complete("w1", "a", 7, None, T0)
    with pytest.raises(NotFound):
        await store.complete("w1", "ghost", 1, None, T0)
    t = await store.get_task("a")
    assert t is not None and t.status == S.IN_PROGRESS and t.result is None


async def test_expired_lease_is_refused_before_and_after_reaping(store: Store) -> None:
    await join(store, "w1")
    await join(store, "w2")
    await add_tasks(store, [spec("a")], T0)
    await claim_next(store, "w1", T0)
    late = T0 + LEASE + 0.001
    with pytest.raises(LeaseLost):  # expired, not yet reaped
        await store.complete("w1", "a", 1, "late", late)
    await store.heartbeat("w2", late, None)  # keep w2 alive
    reaped = await store.reap(late, 100)
    assert reaped.requeued == ["a"] and "w1" in reaped.offline
    c = await claim_next(store, "w2", late)
    assert c is not None and c.lease.fencing_token == 2 and c.task.attempts == 2
    with pytest.raises(LeaseLost):  # w1 woke up: its old token is dead
        await store.complete("w1", "a", 1, "late", late)
    await store.complete("w2", "a", 2, "fresh", late + 1)
    t = await store.get_task("a")
    assert t is not None and t.result == "fresh"
    history = await store.history("a")
    assert [a.outcome for a in history] == [Outcome.EXPIRED, Outcome.COMPLETED]
    assert history[0].lease_expires_at == pytest.approx(T0 + LEASE)  # its deadline
    assert history[0].ended_at == late


async def test_every_ended_attempt_keeps_the_deadline_it_ended_under(store: Store) -> None:
    """An outcome is checked against its lease after the fact (the chaos checker): each
    attempt keeps the lease deadline in force when it ended, renewals included."""
    await join(store, "w1", max_tasks=3)
    await add_tasks(store, [spec("c"), spec("f"), spec("l")], T0)
    for tid in ("c", "f", "l"):
        claimed = await store.claim(session_id="w1", task_id=tid, now=T0)
        assert claimed.lease.fencing_token == 1
    await store.heartbeat("w1", T0 + 10, None)  # renews all three to T0 + 10 + LEASE
    await store.progress("w1", "c", 1, 0.5, None, T0 + 20)  # c's to T0 + 20 + LEASE
    await store.complete("w1", "c", 1, {"ok": 1}, T0 + 21)
    await store.fail("w1", "f", 1, "boom", True, T0 + 22)
    await store.leave_session("w1", T0 + 23, "left")
    ended = {tid: (await store.history(tid))[0] for tid in ("c", "f", "l")}
    assert ended["c"].outcome == Outcome.COMPLETED
    assert ended["c"].lease_expires_at == pytest.approx(T0 + 20 + LEASE)
    assert ended["f"].outcome == Outcome.FAILED
    assert ended["f"].lease_expires_at == pytest.approx(T0 + 10 + LEASE)
    assert ended["l"].outcome == Outcome.RELEASED
    assert ended["l"].lease_expires_at == pytest.approx(T0 + 10 + LEASE)


async def test_heartbeat_and_progress_renew_the_lease(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    await claim_next(store, "w1", T0)
    beat = await store.heartbeat("w1", T0 + 20, None)
    assert [lease.expires_at for lease in beat.held] == [pytest.approx(T0 + 20 + LEASE)]
    rec = await store.progress("w1", "a", 1, 0.5, "half", T0 + 45)
    assert rec.task.progress == 0.5 and rec.task.progress_message == "half"
    assert rec.task.lease_expires_at == pytest.approx(T0 + 45 + LEASE)
    assert not await store.reap(T0 + 70, 100)  # would have expired at T0 + 30
    await store.complete("w1", "a", 1, None, T0 + 74)


async def test_heartbeat_does_not_revive_an_expired_lease(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    await claim_next(store, "w1", T0)
    beat = await store.heartbeat("w1", T0 + LEASE + 1, None)
    assert beat.held == []
    with pytest.raises(LeaseLost):
        await store.complete("w1", "a", 1, None, T0 + LEASE + 1)


async def test_attempts_run_out_then_dependents_block(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a", max_attempts=2), spec("b", dependencies=["a"]),
                           spec("c", dependencies=["b"])], T0)
    now = T0
    for token in (1, 2):
        c = await claim_next(store, "w1", now)
        assert c is not None and c.lease.fencing_token == token
        await store.fail("w1", "a", token, f"boom {token}", True, now)
    t = await store.get_task("a")
    assert t is not None and t.status == S.FAILED and t.attempts == 2 and t.error == "boom 2"
    for tid in ("b", "c"):
        d = await store.get_task(tid)
        assert d is not None and d.status == S.BLOCKED


async def test_fail_without_retry_is_final(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    await claim_next(store, "w1", T0)
    rec = await store.fail("w1", "a", 1, "fatal", False, T0)
    assert rec.task.status == S.FAILED and rec.task.attempts == 1


async def test_expiry_past_max_attempts_fails(store: Store) -> None:
    await join(store, "w1", interval=1000)
    await add_tasks(store, [spec("a", max_attempts=1)], T0)
    await store.claim("w1", "a", T0)
    await store.progress("w1", "a", 1, 0.1, None, T0)  # lease now T0 + 3000
    reaped = await store.reap(T0 + 3001, 100)
    assert reaped.failed == ["a"]


async def test_cancel_blocks_dependents_and_refuses_the_holder(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a"), spec("b", dependencies=["a"])], T0)
    await claim_next(store, "w1", T0)
    t = await store.cancel("a", T0, "not needed")
    assert t.status == S.CANCELLED
    b = await store.get_task("b")
    assert b is not None and b.status == S.BLOCKED
    with pytest.raises(LeaseLost):
        await store.complete("w1", "a", 1, None, T0)
    with pytest.raises(NotClaimable):
        await store.cancel("a", T0, "again")
    s = await store.get_session("w1")
    assert s is not None and s.current_tasks == []


# -- sessions leaving and going silent ---------------------------------------------------


async def test_leaving_session_releases_its_tasks_at_once(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    await claim_next(store, "w1", T0)
    s = await store.leave_session("w1", T0 + 1, "left")
    assert s.status == SessionStatus.OFFLINE
    t = await store.get_task("a")
    assert t is not None and t.status == S.READY and t.assigned_to is None
    (att,) = await store.history("a")
    assert att.outcome == Outcome.RELEASED


async def test_silent_session_goes_offline_and_comes_back(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    await claim_next(store, "w1", T0)
    assert await store.next_deadline() == pytest.approx(T0 + LEASE)
    reaped = await store.reap(T0 + LEASE, 100)
    assert reaped.offline == ["w1"] and reaped.requeued == ["a"]
    s = await store.get_session("w1")
    assert s is not None and s.status == SessionStatus.OFFLINE
    beat = await store.heartbeat("w1", T0 + LEASE + 5, None)  # it was only paused
    assert beat.session.status == SessionStatus.IDLE and beat.held == []


async def test_asking_for_work_revives_a_silent_session(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    await store.reap(T0 + LEASE, 100)
    s = await store.get_session("w1")
    assert s is not None and s.status == SessionStatus.OFFLINE
    c = await claim_next(store, "w1", T0 + LEASE + 1)
    assert c is not None
    s = await store.get_session("w1")
    assert s is not None and s.status == SessionStatus.BUSY
    assert s.last_heartbeat == T0 + LEASE + 1
    types = [e.type for e in await store.events_after(0, 100)]
    assert types.count("session.joined") == 2


async def test_an_offer_proves_no_liveness(store: Store) -> None:
    await join(store, "w1")
    await join(store, "w2", now=T0 + 5)
    await add_tasks(store, [spec("a")], T0)
    offered = await offer_next(store, "w1", T0 + 1, T0 + 300)
    assert offered is not None
    s = await store.get_session("w1")
    assert s is not None and s.last_heartbeat == T0  # not refreshed by the offer
    reaped = await store.reap(T0 + LEASE, 100)
    assert reaped.offline == ["w1"] and reaped.requeued == ["a"]
    assert await offer_next(store, "w1", T0 + LEASE, T0 + 300) is None  # silent: nothing
    s = await store.get_session("w1")
    assert s is not None and s.status == SessionStatus.OFFLINE


async def test_reap_is_bounded(store: Store) -> None:
    for i in range(5):
        await join(store, f"w{i}", interval=1)
    reaped = await store.reap(T0 + 10, 2)
    assert len(reaped.offline) == 2 and reaped.more
    while (await store.reap(T0 + 10, 2)).more:
        pass
    assert all(s.status == SessionStatus.OFFLINE for s in await store.list_sessions())


# -- offers ------------------------------------------------------------------------------


async def test_offer_then_claim_or_time_out(store: Store) -> None:
    await join(store, "w1")
    await join(store, "w2")
    await add_tasks(store, [spec("a"), spec("b")], T0)
    offered = await offer_next(store, "w1", T0, T0 + 300)
    assert offered is not None and offered.id == "a" and offered.status == S.ASSIGNED
    with pytest.raises(NotClaimable):
        await store.claim("w2", "a", T0)
    c2 = await claim_next(store, "w2", T0)
    assert c2 is not None and c2.task.id == "b"
    beat = await store.heartbeat("w1", T0 + 1, None)
    assert [t.id for t in beat.assignments] == ["a"]
    c = await claim_next(store, "w1", T0 + 1)  # an offer to me comes first
    assert c is not None and c.task.id == "a"
    await store.complete("w1", "a", 1, None, T0 + 2)
    await add_tasks(store, [spec("c")], T0 + 3)
    await offer_next(store, "w1", T0 + 3, T0 + 10)
    await store.heartbeat("w1", T0 + 11, None)
    reaped = await store.reap(T0 + 11, 100)
    assert reaped.requeued == ["c"]
    t = await store.get_task("c")
    assert t is not None and t.status == S.READY and t.attempts == 0


async def test_draining_gives_offers_back_however_asked(store: Store) -> None:
    for sid in ("op-drained", "self-drained"):
        await join(store, sid)
    await add_tasks(store, [spec("a"), spec("b")], T0)
    assert await offer_next(store, "op-drained", T0, T0 + 300) is not None
    assert await offer_next(store, "self-drained", T0, T0 + 300) is not None
    await store.set_draining("op-drained", T0 + 1)
    beat = await store.heartbeat("self-drained", T0 + 1, "draining")
    assert beat.assignments == [] and beat.session.status == SessionStatus.DRAINING
    for tid in ("a", "b"):
        t = await store.get_task(tid)
        assert t is not None and t.status == S.READY and t.assigned_to is None
    requeued = [e for e in await store.events_after(0, 100) if e.type == "task.requeued"]
    assert len(requeued) == 2
    for e in requeued:
        assert e.data["reason"] == "draining" and e.data["required_capability"] == "build"


# -- listing -----------------------------------------------------------------------------


async def test_list_tasks_filters_and_pages(store: Store) -> None:
    await join(store, "w1")
    await add_tasks(store, [spec(f"t{i}") for i in range(5)] + [spec("r", "research")], T0)
    await store.claim("w1", "t2", T0)
    page, cursor = await store.list_tasks(limit=2)
    assert [t.id for t in page] == ["t0", "t1"] and cursor is not None
    page2, _ = await store.list_tasks(limit=2, cursor=cursor)
    assert [t.id for t in page2] == ["t2", "t3"]
    assert [t.id for t in (await store.list_tasks(capability="research"))[0]] == ["r"]
    assert [t.id for t in (await store.list_tasks(session="w1"))[0]] == ["t2"]
    assert len((await store.list_tasks(status="ready"))[0]) == 5
    with pytest.raises(InvalidInput):
        await store.list_tasks(cursor="garbage")


async def test_a_filtered_page_is_full_however_far_its_matches_lie(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page holds `limit` matches when there are that many after the cursor, on every
    store: Redis looks at a bounded number of tasks per script (lowered to 4 here) and asks
    again from where it stopped, instead of answering a short or empty page."""
    from unified_swarm.store import redis as redis_store

    monkeypatch.setattr(redis_store, "LIST_BUDGET", 4)
    await join(store, "w1", ["rare"], max_tasks=3)
    await add_tasks(store, [spec(f"b{i}") for i in range(12)] +
                    [spec(f"r{i}", "rare") for i in range(3)], T0)
    for i in range(3):
        await store.claim("w1", f"r{i}", T0)
    for kw in ({"capability": "rare"}, {"session": "w1"}, {"status": "in_progress"}):
        page, cursor = await store.list_tasks(limit=2, **kw)
        assert [t.id for t in page] == ["r0", "r1"] and cursor is not None, kw
        rest, end = await store.list_tasks(limit=2, cursor=cursor, **kw)
        assert [t.id for t in rest] == ["r2"] and end is None, kw
    assert (await store.list_tasks(capability="none"))[0] == []


# -- knowledge ---------------------------------------------------------------------------


async def test_knowledge_versions_and_compare_and_set(store: Store) -> None:
    e1 = await store.put_knowledge("api/design", {"v": 1}, ["arch"], None, "w1", T0)
    assert e1.version == 1
    with pytest.raises(StaleVersion):
        await store.put_knowledge("api/design", {"v": 2}, [], 0, "w2", T0)
    e2 = await store.put_knowledge("api/design", {"v": 2}, [], 1, "w2", T0 + 1)
    assert e2.version == 2
    latest = await store.get_knowledge("api/design")
    assert latest is not None and latest.content == {"v": 2} and latest.updated_by == "w2"
    old = await store.get_knowledge("api/design", 1)
    assert old is not None and old.content == {"v": 1} and old.tags == ["arch"]
    assert await store.get_knowledge("api/design", 9) is None
    with pytest.raises(StaleVersion):
        await store.put_knowledge("new-topic", 1, [], 3, None, T0)
    await store.put_knowledge("new-topic", 1, ["x"], 0, None, T0)
    assert [e.topic for e in await store.list_knowledge()] == ["api/design", "new-topic"]
    assert [e.topic for e in await store.list_knowledge("x")] == ["new-topic"]


async def test_knowledge_delete_keeps_history(store: Store) -> None:
    await store.put_knowledge("t", "a", [], None, None, T0)
    with pytest.raises(StaleVersion):
        await store.delete_knowledge("t", 5, None, T0)
    tomb = await store.delete_knowledge("t", 1, None, T0)
    assert tomb.deleted and tomb.version == 2
    assert await store.get_knowledge("t") is None
    v1 = await store.get_knowledge("t", 1)
    assert v1 is not None and v1.content == "a"
    assert await store.list_knowledge() == []
    with pytest.raises(NotFound):
        await store.delete_knowledge("t", None, None, T0)
    again = await store.put_knowledge("t", "b", [], 2, None, T0)
    assert again.version == 3


# -- events, interrupt, counts -----------------------------------------------------------


async def test_events_are_contiguous_and_describe_each_change(store: Store) -> None:
    heard: list[int] = []
    store.add_listener(lambda evs: heard.extend(e.seq for e in evs))
    await join(store, "w1")
    await add_tasks(store, [spec("a"), spec("b", dependencies=["a"])], T0)
    with pytest.raises(UnknownDependency):
        await add_tasks(store, [spec("z", dependencies=["ghost"])], T0)  # writes no event
    await claim_next(store, "w1", T0)
    await store.complete("w1", "a", 1, None, T0)
    await store.put_knowledge("k", 1, [], None, None, T0)
    events = await store.events_after(0, 1000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events] == [
        "session.joined", "task.added", "task.added", "task.claimed", "task.completed",
        "task.ready", "knowledge.updated"]
    assert events[3].data["fencing_token"] == 1
    assert [e.seq for e in await store.events_after(5, 1)] == [6]
    for _ in range(100):  # listeners hear committed events, maybe a moment later
        if heard == [e.seq for e in events]:
            break
        await asyncio.sleep(0.01)
    assert heard == [e.seq for e in events]


async def test_interrupt_round_trip(store: Store) -> None:
    assert await store.get_interrupt() is None
    await store.set_interrupt(Interrupt("deploy freeze", T0, "operator"), T0)
    got = await store.get_interrupt()
    assert got is not None and got.reason == "deploy freeze"
    await store.set_interrupt(None, T0)
    assert await store.get_interrupt() is None


async def test_counts(store: Store) -> None:
    await join(store, "w1")
    await join(store, "w2")
    await add_tasks(store, [spec("a"), spec("b"), spec("c", dependencies=["a"])], T0)
    await claim_next(store, "w1", T0)
    await store.complete("w1", "a", 1, None, T0 + 4)
    await claim_next(store, "w2", T0 + 4)
    c = await store.counts()
    assert c.tasks == {"completed": 1, "in_progress": 1, "ready": 1}
    assert c.sessions == {"idle": 1, "busy": 1}
    assert c.completed_total == 1 and c.duration_sum == pytest.approx(4.0)
    assert c.last_seq > 0


async def test_idle_sessions(store: Store) -> None:
    await join(store, "w1", now=T0)
    await join(store, "w2", now=T0 + 100)
    assert [s.id for s in await store.idle_sessions(T0 + 150, 120)] == ["w1"]
