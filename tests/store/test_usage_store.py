"""Usage on the attempt and its sums, and the rate-limited state, on every store (sqlite and
redis): kept in the outcome's own step, never counted twice, untouched by a refused call."""

from __future__ import annotations

import pytest

from unified_swarm import usage as rule
from unified_swarm.errors import LeaseLost, OutcomeMismatch
from unified_swarm.store.base import Store

from ..conftest import T0
from .helpers import add_tasks, claim_next, join, spec


def report(cost: float = 0.0, inp: int = 0, out: int = 0, turns: int = 0,
           read: int = 0, created: int = 0) -> dict[str, float]:
    return rule.normal({"cost_usd": cost, "input_tokens": inp, "output_tokens": out,
                        "num_turns": turns, "cache_read_input_tokens": read,
                        "cache_creation_input_tokens": created})


async def held(store: Store, sid: str, tid: str, type_: str = "build",
               now: float = T0) -> int:
    await add_tasks(store, [spec(tid, type_, required_capability="build")], now)
    c = await claim_next(store, sid, now)
    assert c is not None and c.task.id == tid
    return c.lease.fencing_token


async def test_complete_keeps_usage_on_the_attempt_and_sums_it(store: Store) -> None:
    await join(store, "w1")
    token = await held(store, "w1", "a")
    # progress reports the run so far; the completion its total: counted once
    await store.progress("w1", "a", token, 0.5, "half", T0 + 1, report(0.01, 100, 10, 1))
    done = await store.complete("w1", "a", token, {"ok": 1}, T0 + 2,
                                report(0.03, 300, 40, 3, read=50, created=7))
    assert not done.duplicate
    (attempt,) = await store.history("a")
    assert attempt.wire()["usage"] == {
        "cost_usd": 0.03, "input_tokens": 300, "output_tokens": 40,
        "cache_creation_input_tokens": 7, "cache_read_input_tokens": 50, "num_turns": 3}
    s = await store.get_session("w1")
    assert s is not None and s.wire()["usage"] == {**attempt.wire()["usage"], "attempts": 1}
    counts = await store.counts()
    assert rule.wire(counts.usage) == s.wire()["usage"]
    assert rule.wire(counts.usage_by_type["build"]) == s.wire()["usage"]
    # the event says what the attempt spent (the cost meter reads it from there)
    (ev,) = [e for e in await store.events_after(0, 100) if e.type == "task.completed"]
    assert ev.data["usage"] == attempt.wire()["usage"]


async def test_a_repeated_or_smaller_report_adds_nothing(store: Store) -> None:
    await join(store, "w1")
    token = await held(store, "w1", "a")
    await store.complete("w1", "a", token, 1, T0 + 1, report(0.5, 10))
    again = await store.complete("w1", "a", token, 1, T0 + 2, report(0.9, 99))
    assert again.duplicate  # the first report stands: a retry never counts twice
    s = await store.get_session("w1")
    assert s is not None and s.usage is not None
    assert s.usage["cost_usd"] == 0.5 and s.usage["attempts"] == 1
    await join(store, "w2")
    token = await held(store, "w2", "b")
    await store.progress("w2", "b", token, 0.1, None, T0 + 3, report(0.2, 20, 5))
    await store.progress("w2", "b", token, 0.2, None, T0 + 4, report(0.1, 10, 9))
    (attempt,) = await store.history("b")
    assert attempt.usage is not None
    assert (attempt.usage["cost_usd"], attempt.usage["input_tokens"],
            attempt.usage["output_tokens"]) == (0.2, 20, 9)  # per field, the largest
    total = rule.wire((await store.counts()).usage)
    assert total is not None
    assert total["cost_usd"] == 0.7 and total["input_tokens"] == 30 and total["attempts"] == 2


async def test_fail_records_usage_per_session_and_type(store: Store) -> None:
    await join(store, "w1")
    await join(store, "w2")
    t1 = await held(store, "w1", "x", "research")
    t2 = await held(store, "w2", "y", "build")
    await store.fail("w1", "x", t1, "boom", True, T0 + 5, report(1.25, 1000, 100, 4))
    await store.complete("w2", "y", t2, None, T0 + 6, report(0.25, 200, 20, 2))
    (ev,) = [e for e in await store.events_after(0, 100) if e.type == "task.requeued"]
    assert ev.data["usage"]["cost_usd"] == 1.25 and ev.data["duration"] == 5.0
    counts = await store.counts()
    assert list(counts.usage_by_type) == ["research", "build"]  # the costliest first
    assert counts.usage_by_type["research"]["cost_usd"] == 1.25
    assert counts.usage["cost_usd"] == 1.5 and counts.usage["num_turns"] == 6
    w1 = await store.get_session("w1")
    assert w1 is not None and w1.usage is not None and w1.usage["input_tokens"] == 1000
    # the next attempt of x reports nothing: nothing moves, the first keeps its own
    c = await claim_next(store, "w1", T0 + 7)
    assert c is not None and c.task.id == "x"
    await store.complete("w1", "x", c.lease.fencing_token, None, T0 + 8)
    assert (await store.counts()).usage == counts.usage
    first, second = await store.history("x")
    assert first.usage is not None and first.usage["cost_usd"] == 1.25
    assert second.usage is None and second.wire()["usage"] is None


async def test_a_refused_call_keeps_nothing(store: Store) -> None:
    await join(store, "w1")
    token = await held(store, "w1", "a")
    await store.complete("w1", "a", token, 1, T0 + 1)
    with pytest.raises(OutcomeMismatch):
        await store.fail("w1", "a", token, "late", True, T0 + 2, report(5.0, 5))
    with pytest.raises(OutcomeMismatch):
        await store.progress("w1", "a", token, 0.5, None, T0 + 2, report(5.0, 5),
                             {"task_id": "a", "at": "x"})
    await join(store, "w2")
    with pytest.raises(LeaseLost):  # a token that is not the lease's
        await store.complete("w1", "a", token + 1, 1, T0 + 2, report(5.0, 5))
    (attempt,) = await store.history("a")
    s = await store.get_session("w1")
    assert attempt.usage is None and s is not None and s.usage is None
    assert s.rate_limited is None
    counts = await store.counts()
    assert counts.usage == {} and counts.usage_by_type == {}


async def test_rate_limited_until_a_normal_report(store: Store) -> None:
    await join(store, "w1", max_tasks=2)
    token = await held(store, "w1", "a")
    state = {"task_id": "a", "at": "2026-01-01T00:00:00.000Z", "attempt": 1,
             "max_retries": 10, "retry_in_s": 2.5, "error_status": 429,
             "error": "rate_limit", "retry_at": "2026-01-01T00:00:02.500Z"}
    await store.progress("w1", "a", token, 0.1, "waiting", T0 + 1, None, state)
    s = await store.get_session("w1")
    assert s is not None and s.rate_limited == state and s.wire()["rate_limited"] == state
    await store.progress("w1", "a", token, 0.1, "waiting", T0 + 2, None, state)  # no change
    await store.progress("w1", "a", token, 0.2, "back", T0 + 3)
    s = await store.get_session("w1")
    assert s is not None and s.rate_limited is None
    changes = [e.data for e in await store.events_after(0, 100)
               if e.type == "session.rate_limited"]
    assert changes == [{"session_id": "w1", "rate_limited": state},
                       {"session_id": "w1", "rate_limited": None}]
    # an outcome clears it too, and so does leaving
    await store.progress("w1", "a", token, 0.3, None, T0 + 4, None, state)
    await store.complete("w1", "a", token, 1, T0 + 5)
    s = await store.get_session("w1")
    assert s is not None and s.rate_limited is None
    token = await held(store, "w1", "b", now=T0 + 6)
    await store.progress("w1", "b", token, 0.3, None, T0 + 7, None, {**state, "task_id": "b"})
    await store.leave_session("w1", T0 + 8, "left")
    s = await store.get_session("w1")
    assert s is not None and s.rate_limited is None
