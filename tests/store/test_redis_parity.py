"""The Redis store answers exactly like the SQLite reference, step by step.

Random but seeded walks through the whole protocol (sessions joining, going silent and
leaving, batches with dependencies, claims, offers, progress, outcomes repeated and
contradicted, cancels, the reaper, knowledge, the interrupt) run against both stores at
once; every answer, every refusal (type and message) and finally the whole event log,
every task, its history and every session must be equal.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from unified_swarm.config import Settings
from unified_swarm.errors import SwarmError
from unified_swarm.models import Interrupt, TaskSpec
from unified_swarm.store import make_store
from unified_swarm.store.base import Store
from unified_swarm.tokens import hash_token

from ..conftest import T0, make_settings_for
from .helpers import add_tasks, claim_next, offer_next, session

pytestmark = pytest.mark.redis

SIDS = ["w1", "w2", "w3", "w4"]
CAPS = [["build"], ["research"], ["build", "research"], []]
TYPES = ["build", "research", "marketing"]


def norm(value: Any) -> Any:
    """Records as plain data; the float that SQLite keeps with 15 digits, rounded."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        d = {f.name: norm(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if "duration_sum" in d:
            d["duration_sum"] = round(d["duration_sum"], 6)
        return (type(value).__name__, d)
    if isinstance(value, list | tuple):
        return [norm(v) for v in value]
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    return value


async def outcome(call: Awaitable[Any]) -> Any:
    try:
        return ("ok", norm(await call))
    except SwarmError as exc:
        return ("error", type(exc).__name__, exc.message)


@pytest.fixture
async def pair(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[
        tuple[Store, Store]]:
    sqlite = make_store(settings)
    redis = make_store(make_settings_for("redis", settings, request))
    await sqlite.open()
    await redis.open()
    try:
        yield sqlite, redis
    finally:
        await redis.close()
        await sqlite.close()


class Walk:
    """One random walk; `step` picks an operation and runs it on both stores."""

    def __init__(self, seed: int, stores: tuple[Store, Store]) -> None:
        self.rng = random.Random(seed)
        self.stores = stores
        self.now = T0
        self.tasks: list[str] = []
        self.tokens: dict[str, int] = {}
        self.n = 0
        self.op = ""

    async def both(self, call: Callable[[Store], Awaitable[Any]]) -> Any:
        a = await outcome(call(self.stores[0]))
        b = await outcome(call(self.stores[1]))
        assert a == b, f"step {self.n} ({self.op}): {a!r} != {b!r}"
        return a

    async def step(self) -> None:
        self.n += 1
        self.now += self.rng.choice([0.0, 0.5, 1.0, 3.0, 7.5, 20.0, 45.0])
        op = self.rng.choice(OPS)
        self.op = op.__name__
        await op(self)


def _pick(w: Walk, items: list[str]) -> str:
    return w.rng.choice(items) if items else "none"


async def op_register(w: Walk) -> None:
    sid = w.rng.choice(SIDS)
    caps = CAPS[SIDS.index(sid)]
    s = session(sid, list(caps), interval=w.rng.choice([5.0, 10.0]),
                max_tasks=w.rng.choice([1, 2]))
    await w.both(lambda st: st.register_session(s, hash_token(f"{sid}-{w.n}"), w.now))


async def op_heartbeat(w: Walk) -> None:
    sid, status = w.rng.choice(SIDS), w.rng.choice([None, None, "idle", "busy", "draining"])
    await w.both(lambda st: st.heartbeat(sid, w.now, status))


async def op_leave(w: Walk) -> None:
    sid, reason = w.rng.choice(SIDS), w.rng.choice(["left", "offline"])
    await w.both(lambda st: st.leave_session(sid, w.now, reason))


async def op_drain(w: Walk) -> None:
    sid = w.rng.choice(SIDS)
    await w.both(lambda st: st.set_draining(sid, w.now))


async def op_add(w: Walk) -> None:
    specs: list[TaskSpec] = []
    for _ in range(w.rng.randint(1, 4)):
        tid = f"t{len(w.tasks) + len(specs)}"
        pool = w.tasks + [s.id for s in specs if s.id]
        deps = w.rng.sample(pool, k=min(len(pool), w.rng.choice([0, 0, 1, 2])))
        if w.rng.random() < 0.03:
            deps.append("missing")
        specs.append(TaskSpec(
            type=w.rng.choice(TYPES), id=tid, dependencies=deps,
            priority=w.rng.choice([None, None, 3, 9]), critical=w.rng.random() < 0.2,
            roi=w.rng.choice([None, "high"]), max_attempts=w.rng.choice([None, 1, 2]),
            input={"n": w.n}, estimated_hours=w.rng.choice([None, 2, 9.5])))
    if w.rng.random() < 0.05 and w.tasks:
        specs[0].id = w.tasks[0]  # taken

    def fresh() -> list[TaskSpec]:  # plan_batch fills in ids: each store gets its own copy
        return [dataclasses.replace(s, dependencies=list(s.dependencies)) for s in specs]
    got = await w.both(lambda st: add_tasks(st, fresh(), w.now))
    if got[0] == "ok":
        w.tasks += [s.id for s in specs if s.id]


async def op_claim_next(w: Walk) -> None:
    sid = w.rng.choice(SIDS)
    got = await w.both(lambda st: claim_next(st, sid, w.now))
    if got[0] == "ok" and got[1] is not None:
        lease = got[1][1]["lease"][1]
        w.tokens[lease["task_id"]] = lease["fencing_token"]


async def op_claim(w: Walk) -> None:
    sid, tid = w.rng.choice(SIDS), _pick(w, w.tasks)
    got = await w.both(lambda st: st.claim(sid, tid, w.now))
    if got[0] == "ok":
        w.tokens[tid] = got[1][1]["lease"][1]["fencing_token"]


async def op_assign(w: Walk) -> None:
    sid = w.rng.choice(SIDS)
    await w.both(lambda st: offer_next(st, sid, w.now, w.now + 30))


def _held(w: Walk) -> tuple[str, str, int]:
    tid = _pick(w, list(w.tokens))
    token = w.tokens.get(tid, 1) + w.rng.choice([0, 0, 0, 0, -1])
    return w.rng.choice(SIDS), tid, token


async def op_progress(w: Walk) -> None:
    sid, tid, token = _held(w)
    value, message = w.rng.choice([0.1, 0.5, 0.75]), w.rng.choice([None, "m"])
    await w.both(lambda st: st.progress(sid, tid, token, value, message, w.now))


async def op_complete(w: Walk) -> None:
    sid, tid, token = _held(w)
    result = w.rng.choice([{"ok": True}, {"ok": True}, None, [1, 2]])
    await w.both(lambda st: st.complete(sid, tid, token, result, w.now))


async def op_fail(w: Walk) -> None:
    sid, tid, token = _held(w)
    error, retry = w.rng.choice(["boom", "bang"]), w.rng.random() < 0.7
    await w.both(lambda st: st.fail(sid, tid, token, error, retry, w.now))


async def op_cancel(w: Walk) -> None:
    tid = _pick(w, w.tasks)
    await w.both(lambda st: st.cancel(tid, w.now, "no longer needed"))


async def op_reap(w: Walk) -> None:
    limit = w.rng.choice([1, 2, 100])
    await w.both(lambda st: st.reap(w.now, limit))


async def op_reads(w: Walk) -> None:
    # (every random draw happens outside the calls: both stores must get the same arguments)
    idle_for, limit = w.rng.choice([0.0, 30.0]), w.rng.choice([1, 3, 100])
    await w.both(lambda st: st.next_deadline())
    await w.both(lambda st: st.idle_sessions(w.now, idle_for))
    await w.both(lambda st: st.counts())
    await w.both(lambda st: st.list_sessions())
    kw: dict[str, Any] = w.rng.choice([
        {}, {"status": "ready"}, {"capability": "build"}, {"session": "w1"},
        {"status": "completed", "session": "w2"}])
    await w.both(lambda st: st.list_tasks(limit=limit, **kw))


async def op_knowledge(w: Walk) -> None:
    topic = w.rng.choice(["a", "b"])
    expected = w.rng.choice([None, None, 0, 1, 2, 3])
    if w.rng.random() < 0.3:
        await w.both(lambda st: st.delete_knowledge(topic, expected, "w1", w.now))
    else:
        await w.both(lambda st: st.put_knowledge(topic, {"v": w.n}, ["x"], expected, None,
                                                 w.now))
    version, tag = w.rng.choice([None, 1, 2]), w.rng.choice([None, "x", "y"])
    await w.both(lambda st: st.get_knowledge(topic, version))
    await w.both(lambda st: st.list_knowledge(tag))


async def op_interrupt(w: Walk) -> None:
    value = w.rng.choice([None, Interrupt("stop", w.now, "op")])
    await w.both(lambda st: st.set_interrupt(value, w.now))
    await w.both(lambda st: st.get_interrupt())


OPS: list[Callable[[Walk], Awaitable[None]]] = [
    op_register, op_register, op_heartbeat, op_heartbeat, op_leave, op_drain, op_add, op_add,
    op_add, op_claim_next, op_claim_next, op_claim_next, op_claim, op_assign, op_progress,
    op_complete, op_complete, op_complete, op_fail, op_fail, op_cancel, op_reap, op_reap,
    op_reads, op_knowledge, op_interrupt,
]


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("PARITY_SEEDS", "6"))))
async def test_redis_answers_like_sqlite(pair: tuple[Store, Store], seed: int) -> None:
    walk = Walk(seed, pair)
    for _ in range(int(__import__("os").environ.get("PARITY_STEPS", "250"))):
        await walk.step()
    await walk.both(lambda st: st.events_after(0, 100_000))
    for tid in walk.tasks:
        await walk.both(lambda st, tid=tid: st.get_task(tid))  # type: ignore[misc]
        await walk.both(lambda st, tid=tid: st.history(tid))  # type: ignore[misc]
    for sid in SIDS:
        await walk.both(lambda st, sid=sid: st.get_session(sid))  # type: ignore[misc]
