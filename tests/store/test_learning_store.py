"""The learned scheduler's store contract, on every backend: statistics move in the outcome's
step by the one shared rule (the same numbers on SQLite and Redis, to the last bit), the
prediction rides on the attempt, breakers are a compare-and-set, detection is kept."""

from __future__ import annotations

import math
from collections.abc import Sequence

from unified_swarm import stats
from unified_swarm.models import Event, Quarantine
from unified_swarm.stats import ANY, ON_FAILURE, ON_SUCCESS, PairStats
from unified_swarm.store.base import Store

from ..conftest import T0
from .helpers import add_tasks, join, spec


class Heard:
    def __init__(self, store: Store) -> None:
        self.events: list[Event] = []
        store.add_listener(self.hear)

    def hear(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    def of(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]


async def test_outcomes_move_the_statistics_by_the_rule(store: Store) -> None:
    heard = Heard(store)
    await join(store, "w", ["build"])
    await add_tasks(store, [spec("a"), spec("b")], T0)
    got = await store.claim("w", "a", T0, predicted=12.5)
    done = await store.complete("w", "a", got.lease.fencing_token, {"ok": 1}, T0 + 8.0)
    want = stats.apply(PairStats(), ON_SUCCESS, 8.0)
    assert done.stats == {"build": want, ANY: want}
    got = await store.claim("w", "b", T0 + 9.0)
    failed = await store.fail("w", "b", got.lease.fencing_token, "boom", True, T0 + 10.0)
    after = stats.apply(want, ON_FAILURE, 1.0)
    assert failed.stats == {"build": after, ANY: after}
    assert sorted(await store.all_stats()) == sorted(
        [("w", "build", after), ("w", ANY, after)])
    # the events carry the same rows, and the claim carries its prediction
    (completed,) = heard.of("task.completed")
    assert PairStats.from_mapping(completed.data["stats"]["build"]) == want
    assert completed.data["required_capability"] == "build"
    (requeued,) = heard.of("task.requeued")
    assert PairStats.from_mapping(requeued.data["stats"][ANY]) == after
    assert [e.data["predicted"] for e in heard.of("task.claimed")] == [12.5, None]
    history = await store.history("a")
    assert history[0].predicted == 12.5


async def test_a_duplicate_outcome_moves_nothing(store: Store) -> None:
    await join(store, "w", ["build"])
    await add_tasks(store, [spec("a")], T0)
    got = await store.claim("w", "a", T0)
    await store.complete("w", "a", got.lease.fencing_token, None, T0 + 2.0)
    again = await store.complete("w", "a", got.lease.fencing_token, None, T0 + 3.0)
    assert again.duplicate and again.stats is None
    rows = {cap: st for _, cap, st in await store.all_stats()}
    assert rows["build"].attempts == 1
    assert rows["build"].sum_log == math.log(2.0)


async def test_the_breaker_is_a_compare_and_set(store: Store) -> None:
    heard = Heard(store)
    await join(store, "w", ["build"])
    q = Quarantine("w", "build", T0 + 60.0, 1)
    assert await store.set_quarantine("w", "build", q, 0, T0)
    assert not await store.set_quarantine("w", "build", q, 0, T0)  # someone was first
    again = Quarantine("w", "build", T0 + 180.0, 2)
    assert await store.set_quarantine("w", "build", again, 1, T0 + 61.0)
    whole = Quarantine("w", ANY, T0 + 60.0, 1)
    assert await store.set_quarantine("w", ANY, whole, 0, T0)
    assert await store.quarantines() == [whole, again]
    assert await store.set_quarantine("w", "build", None, 2, T0 + 200.0)
    assert await store.quarantines() == [whole]
    assert [e.type for e in heard.events if e.type.startswith("session.q")
            or e.type == "session.restored"] == [
        "session.quarantined", "session.quarantined", "session.quarantined",
        "session.restored"]
    assert heard.of("session.quarantined")[2].data["capability"] is None
    assert heard.of("session.restored")[0].data == {"session_id": "w", "capability": "build"}


async def test_detected_capabilities_are_kept(store: Store) -> None:
    heard = Heard(store)
    await join(store, "w", [])
    await store.set_detected("w", ["research", "build"], T0)
    s = await store.get_session("w")
    assert s is not None and s.detected_capabilities == ["build", "research"]
    assert heard.of("session.detected")[0].data["detected_capabilities"] == [
        "build", "research"]


async def test_events_tell_the_scheduler_enough(store: Store) -> None:
    heard = Heard(store)
    await join(store, "w", ["build"], max_tasks=3)
    await add_tasks(store, [spec("a", estimated_hours=2.0)], T0)
    assert heard.of("session.joined")[0].data["max_concurrent_tasks"] == 3
    assert heard.of("task.added")[0].data["estimated_hours"] == 2.0
