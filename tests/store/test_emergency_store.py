"""Preemption, release and input required in the Store contract (both backends). Time is
passed in, never slept: a lease here lasts 3 x 10 s."""

from __future__ import annotations

import pytest

from unified_swarm.errors import LeaseLost, NotClaimable, OutcomeMismatch, SwarmError
from unified_swarm.models import Outcome, TaskStatus
from unified_swarm.store.base import Store

from ..conftest import T0
from .helpers import add_tasks, claim_next, join, spec

S = TaskStatus


async def _running(store: Store, max_attempts: int = 1) -> tuple[str, int]:
    """Session w1 holds task a (max_attempts as given) under token 1."""
    await join(store, "w1")
    await add_tasks(store, [spec("a", max_attempts=max_attempts)], T0)
    got = await claim_next(store, "w1", T0)
    assert got is not None
    return got.task.id, got.lease.fencing_token


async def test_release_requeues_uncounted_with_its_note(store: Store) -> None:
    tid, token = await _running(store, max_attempts=1)
    done = await store.release("w1", tid, token, "step 2 of 5 done", T0 + 1)
    assert done.task.status == S.READY and done.task.attempts == 0
    again = await store.release("w1", tid, token, "step 2 of 5 done", T0 + 2)
    assert again.duplicate  # a retried release acts once
    with pytest.raises(OutcomeMismatch):
        await store.release("w1", tid, token, "another note", T0 + 2)
    notes = await store.notes(tid)
    assert [(n["kind"], n["text"]) for n in notes] == [("release", "step 2 of 5 done")]
    history = await store.history(tid)
    assert history[-1].outcome == Outcome.RELEASED
    # max_attempts is 1, yet the task runs again: a release is not a failure
    await join(store, "w2")
    nxt = await claim_next(store, "w2", T0 + 3)
    assert nxt is not None and nxt.task.id == tid and nxt.task.attempts == 1
    with pytest.raises(LeaseLost):
        await store.complete("w1", tid, token, "late", T0 + 4)


async def test_preempt_caps_the_lease_and_revokes_it_past_the_grace(store: Store) -> None:
    tid, token = await _running(store)
    marked = await store.preempt(tid, token, T0 + 5, T0 + 1)
    assert marked is not None and marked.preempt_at == T0 + 5
    assert marked.lease_expires_at == T0 + 5
    assert (await store.preempt(tid, token + 7, T0 + 9, T0 + 1)) is None  # not that lease
    beat = await store.heartbeat("w1", T0 + 2, None)
    (lease,) = beat.held
    assert lease.preempt_at == T0 + 5 and lease.expires_at == T0 + 5  # renewed no further
    await store.progress("w1", tid, token, 0.5, "half", T0 + 3)
    assert (await store.get_task(tid)).lease_expires_at == T0 + 5  # type: ignore[union-attr]
    reaped = await store.reap(T0 + 6, 10)
    assert reaped.requeued == [tid] and not reaped.failed
    t = await store.get_task(tid)
    assert t is not None and t.status == S.READY and t.attempts == 0 and t.preempt_at is None
    assert t.fencing_token == token + 1  # revoked: the token moved on
    assert (await store.history(tid))[-1].outcome == Outcome.RELEASED
    with pytest.raises(SwarmError) as late:  # the old holder's late result is refused
        await store.complete("w1", tid, token, "late", T0 + 7)
    assert late.value.status == 409
    again = await claim_next(store, "w1", T0 + 8)
    assert again is not None and again.lease.fencing_token > token + 1
    assert again.task.preempt_at is None


async def test_a_preempted_holder_that_releases_in_time(store: Store) -> None:
    tid, token = await _running(store)
    await store.preempt(tid, token, T0 + 30, T0 + 1)
    done = await store.release("w1", tid, token, "checkpoint: k1", T0 + 2)
    assert done.task.status == S.READY and done.task.attempts == 0
    assert (await store.history(tid))[-1].error == "preempted"


async def test_input_required_stops_the_clock_until_answered(store: Store) -> None:
    tid, token = await _running(store)
    asked = await store.request_input("w1", tid, token, "which region?", T0 + 1)
    assert asked.task.status == S.INPUT_REQUIRED and asked.task.lease_expires_at is None
    assert (await store.request_input("w1", tid, token, "which region?", T0 + 1)).duplicate
    beat = await store.heartbeat("w1", T0 + 100, None)  # alive, long past any lease
    (lease,) = beat.held
    assert lease.status == S.INPUT_REQUIRED and lease.expires_at is None
    assert not (await store.reap(T0 + 100, 10))  # never reaped while its session lives
    with pytest.raises(SwarmError):
        await store.complete("w1", tid, token, "x", T0 + 100)
    back = await store.give_input(tid, "eu-west", "operator", T0 + 101)
    assert back.status == S.IN_PROGRESS and back.assigned_to == "w1"
    assert back.fencing_token == token and back.lease_expires_at == T0 + 101 + 30
    beat = await store.heartbeat("w1", T0 + 102, None)
    notes = beat.held[0].notes or []
    assert [(n["kind"], n["text"]) for n in notes] == [("question", "which region?"),
                                                      ("answer", "eu-west")]
    with pytest.raises(NotClaimable):
        await store.give_input(tid, "again", "operator", T0 + 103)  # nothing asked now
    done = await store.complete("w1", tid, token, "ok", T0 + 104)
    assert done.task.status == S.COMPLETED


async def test_input_required_is_requeued_when_its_session_dies(store: Store) -> None:
    tid, token = await _running(store, max_attempts=1)
    await store.request_input("w1", tid, token, "go on?", T0 + 1)
    reaped = await store.reap(T0 + 1 + 31, 10)  # w1 went silent: offline
    assert reaped.offline == ["w1"] and reaped.requeued == [tid]
    t = await store.get_task(tid)
    assert t is not None and t.status == S.READY and t.attempts == 0
    answered = await store.give_input(tid, "yes", "operator", T0 + 40)  # kept for the next
    assert answered.status == S.READY
    assert [n["kind"] for n in await store.notes(tid)] == ["question", "answer"]


async def test_answer_after_its_holder_left_goes_to_the_queue(store: Store) -> None:
    tid, token = await _running(store)
    await store.request_input("w1", tid, token, "go on?", T0 + 1)
    # the session left between the question and the answer, its step not yet run: the
    # answer finds the holder offline
    await store.leave_session("w1", T0 + 2, "left")
    t = await store.get_task(tid)
    assert t is not None and t.status == S.READY
    assert (await store.give_input(tid, "yes", None, T0 + 3)).status == S.READY


async def test_cancel_while_waiting_for_input(store: Store) -> None:
    tid, token = await _running(store)
    await store.request_input("w1", tid, token, "?", T0 + 1)
    cancelled = await store.cancel(tid, T0 + 2, "not needed")
    assert cancelled.status == S.CANCELLED
    assert (await store.history(tid))[-1].outcome == Outcome.RELEASED
    s = await store.get_session("w1")
    assert s is not None and s.current_tasks == []
