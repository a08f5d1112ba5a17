"""The store steps autoscaling adds, on every backend: ready counts per capability (only
ready tasks count, not those waiting on dependencies), recorded events in the one sequence,
and pool pins that every replica reads."""

from __future__ import annotations

import pytest

from unified_swarm.errors import InvalidInput
from unified_swarm.store.base import Store

from ..conftest import T0
from .helpers import add_tasks, claim_next, join, spec


async def test_ready_counts_only_ready_work(store: Store) -> None:
    await add_tasks(store, [spec("b1"), spec("b2"), spec("r1", "research"),
                           spec("b3", dependencies=["b1"]),   # pending: not ready
                           spec("x1", "other")], T0)
    assert await store.ready_counts(["build", "research", "nothing"]) == {
        "build": 2, "research": 1, "nothing": 0}
    assert await store.ready_counts([]) == {}
    await join(store, "w1", ["build"])
    claimed = await claim_next(store, "w1", T0 + 1)
    assert claimed is not None
    assert (await store.ready_counts(["build"]))["build"] == 1
    await store.complete("w1", claimed.task.id, claimed.lease.fencing_token, None, T0 + 2)
    # b1 done releases b3
    want = 2 if claimed.task.id == "b1" else 1
    assert (await store.ready_counts(["build"]))["build"] == want


async def test_record_event_joins_the_sequence(store: Store) -> None:
    seen: list[str] = []
    store.add_listener(lambda evs: seen.extend(e.type for e in evs))
    await add_tasks(store, [spec("a")], T0)
    ev = await store.record_event("pool.scaled", {"pool": "build", "from": 1, "to": 4},
                                  T0 + 1)
    assert ev.type == "pool.scaled" and ev.data == {"pool": "build", "from": 1, "to": 4}
    events = await store.events_after(0, 100)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1] == ev
    assert (await store.counts()).last_seq == ev.seq
    for bad in ("Pool.scaled", "pool", 'pool.x"y', "pool.scaled\n"):
        with pytest.raises(InvalidInput):
            await store.record_event(bad, {}, T0)
    assert (await store.counts()).last_seq == ev.seq


async def test_pool_pins(store: Store) -> None:
    assert await store.pool_pins() == {}
    await store.set_pool_pin("build", 3, T0)
    await store.set_pool_pin("research-2", 0, T0)
    assert await store.pool_pins() == {"build": 3, "research-2": 0}
    await store.set_pool_pin("build", None, T0 + 1)
    assert await store.pool_pins() == {"research-2": 0}
    pinned = [e for e in await store.events_after(0, 100) if e.type == "pool.pinned"]
    assert [e.data for e in pinned] == [{"pool": "build", "desired": 3},
                                        {"pool": "research-2", "desired": 0},
                                        {"pool": "build", "desired": None}]
