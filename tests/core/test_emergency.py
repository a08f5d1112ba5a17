"""Emergencies, preemption and input required as use-cases of the Orchestrator, over both
real stores, with a hand-moved clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from unified_swarm.config import Settings
from unified_swarm.core.orchestrator import Orchestrator, SessionSpec
from unified_swarm.errors import InvalidInput, NotClaimable, SwarmError
from unified_swarm.lifecycle import EMERGENCY_PRIORITY
from unified_swarm.models import Session, TaskSpec, TaskStatus

from ..conftest import T0

S = TaskStatus


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def orch(store: object, store_settings: Settings) -> AsyncIterator[Orchestrator]:
    o = Orchestrator(store, store_settings.replace(preempt_grace=20),  # type: ignore[arg-type]
                     "op-token", Clock())
    await o.start(run_loop=False)
    yield o
    await o.stop()


def tick(o: Orchestrator, seconds: float) -> float:
    assert isinstance(o.clock, Clock)
    o.clock.now += seconds
    return o.clock.now


async def join(o: Orchestrator, sid: str, caps: list[str]) -> Session:
    s, _ = await o.register(SessionSpec(capabilities=caps, id=sid, heartbeat_interval=10))
    return s


async def test_emergency_goes_to_the_idle_session_and_interrupts_the_rest(
        orch: Orchestrator) -> None:
    busy = await join(orch, "busy", ["build"])
    idle = await join(orch, "idle", ["build"])
    other = await join(orch, "other", ["research"])  # cannot take it
    await orch.add_tasks([TaskSpec("build", id="low", priority=2),
                          TaskSpec("build", id="queued", priority=9)])
    first = await orch.request_work(busy, 0)
    assert first is not None and first.task.id == "queued"
    task, placed = await orch.emergency(TaskSpec("build", id="fire", title="fire"), True, True,
                                        "operator")
    assert task.priority == EMERGENCY_PRIORITY and placed.assigned_to == "idle"
    assert placed.preempted is None
    assert orch.interrupt is not None and orch.interrupt.task_id == "fire"
    # the interrupt: nobody takes the queued task, the chosen session takes the emergency
    assert await orch.request_work(other, 0) is None
    with pytest.raises(NotClaimable):
        await orch.claim(idle, "low")
    got = await orch.request_work(idle, 0)
    assert got is not None and got.task.id == "fire"
    events = [e.type for e in await orch.events_after(0, 1000)]
    assert "swarm.emergency" in events and "task.assigned" in events
    await orch.complete(idle, "fire", got.lease.fencing_token, "out")
    await orch.start(run_loop=False)  # what the event listener does, done for certain here
    assert orch.interrupt is None  # lifted by itself
    nxt = await orch.request_work(idle, 0)
    assert nxt is not None and nxt.task.id == "low"  # the queue moves again


async def test_emergency_preempts_the_least_important_task(orch: Orchestrator) -> None:
    a = await join(orch, "a", ["build"])
    b = await join(orch, "b", ["build"])
    await orch.add_tasks([TaskSpec("build", id="important", priority=9),
                          TaskSpec("build", id="minor", priority=3, max_attempts=1)])
    got_a = await orch.request_work(a, 0)
    got_b = await orch.request_work(b, 0)
    assert got_a is not None and got_b is not None
    minor = got_a if got_a.task.id == "minor" else got_b
    victim = "a" if minor is got_a else "b"
    _task, placed = await orch.emergency(TaskSpec("build", id="fire"), True, True, "op")
    assert placed.assigned_to is None and placed.preempted == ("minor", victim)
    _beat, directives = await orch.heartbeat(victim, None)
    assert [tid for tid, _ in directives.preempt] == ["minor"]
    assert 0 < directives.preempt[0][1] <= 20
    holder = a if victim == "a" else b
    await orch.release(holder, "minor", minor.lease.fencing_token, "half done at step 3")
    again = await orch.request_work(holder, 0)
    assert again is not None and again.task.id == "fire"  # the freed session takes it
    await orch.complete(holder, "fire", again.lease.fencing_token, "ok")
    await orch.start(run_loop=False)
    assert orch.interrupt is None
    # the preempted task (max_attempts 1) runs again, with the note for its next holder
    nxt = await orch.request_work(holder, 0)
    assert nxt is not None and nxt.task.id == "minor" and nxt.task.attempts == 1
    notes = await orch.store.notes("minor")
    assert [n["text"] for n in notes] == ["half done at step 3"]
    done = await orch.complete(holder, "minor", nxt.lease.fencing_token, "done")
    assert done.task.status == S.COMPLETED


async def test_an_ignored_preemption_is_revoked_after_the_grace(orch: Orchestrator) -> None:
    a = await join(orch, "a", ["build"])
    await orch.add_tasks([TaskSpec("build", id="slow")])
    got = await orch.request_work(a, 0)
    assert got is not None
    _t, placed = await orch.emergency(TaskSpec("build", id="fire"), True, True, "op")
    assert placed.preempted == ("slow", "a")
    tick(orch, 5)
    await orch.heartbeat("a", None)  # a heartbeat does not lengthen the grace
    now = tick(orch, 16)
    await orch.tick(now)
    t, _ = await orch.get_task("slow")
    assert t.status == S.READY and t.fencing_token == got.lease.fencing_token + 1
    with pytest.raises(SwarmError) as late:
        await orch.complete(a, "slow", got.lease.fencing_token, "late")
    assert late.value.status == 409
    fire = await orch.request_work(a, 0)
    assert fire is not None and fire.task.id == "fire"


async def test_a_task_preempted_max_preemptions_times_is_never_chosen_again(
        orch: Orchestrator) -> None:
    """With max_preemptions 2, the long task gives way to two emergencies; the third finds
    it running and leaves it alone (nobody else to preempt: no placement), so a stream of
    emergencies cannot starve it. A second mark of one attempt is not counted twice."""
    orch.settings = orch.settings.replace(max_preemptions=2)
    a = await join(orch, "a", ["build"])
    await orch.add_tasks([TaskSpec("build", id="long", priority=1)])
    for n in range(1, 3):
        got = await orch.request_work(a, 0)
        assert got is not None and got.task.id == "long"
        _t, placed = await orch.emergency(TaskSpec("build", id=f"fire{n}"), False, True, "op")
        assert placed.preempted == ("long", "a")
        # marking the same attempt again (a retried step) does not count another preemption
        again = await orch.store.preempt("long", got.lease.fencing_token, orch.clock() + 20,
                                         orch.clock())
        assert again is not None and again.preemptions == n
        await orch.release(a, "long", got.lease.fencing_token, None)
        fire = await orch.request_work(a, 0)
        assert fire is not None and fire.task.id == f"fire{n}"
        await orch.complete(a, f"fire{n}", fire.lease.fencing_token, "ok")
    got = await orch.request_work(a, 0)
    assert got is not None and got.task.id == "long"
    _t, placed = await orch.emergency(TaskSpec("build", id="fire3"), False, True, "op")
    assert placed.preempted is None and placed.assigned_to is None
    t, _ = await orch.get_task("long")
    assert t.preempt_at is None and t.preemptions == 2 and t.wire()["preemptions"] == 2
    done = await orch.complete(a, "long", got.lease.fencing_token, "finally")
    assert done.task.status == S.COMPLETED and done.task.attempts == 1


async def test_emergency_without_interrupt_or_anyone_to_preempt(orch: Orchestrator) -> None:
    _t, placed = await orch.emergency(TaskSpec("build", id="fire"), False, True, "op")
    assert placed.assigned_to is None and placed.preempted is None
    assert orch.interrupt is None
    with pytest.raises(InvalidInput):
        await orch.emergency(TaskSpec("build", id="f2", dependencies=["fire"]), True, True,
                             "op")


async def test_input_required_answered_to_the_same_holder(orch: Orchestrator) -> None:
    a = await join(orch, "a", ["build"])
    await orch.add_tasks([TaskSpec("build", id="q")])
    got = await orch.request_work(a, 0)
    assert got is not None
    token = got.lease.fencing_token
    asked = await orch.request_input(a, "q", token, "which branch?")
    assert asked.task.status == S.INPUT_REQUIRED
    for _ in range(5):  # alive, far past the lease: never reaped
        now = tick(orch, 20)
        await orch.heartbeat("a", None)
        await orch.tick(now)
    t, _ = await orch.get_task("q")
    assert t.status == S.INPUT_REQUIRED
    back = await orch.give_input("q", "main", "operator")
    assert back.status == S.IN_PROGRESS and back.assigned_to == "a"
    beat, _ = await orch.heartbeat("a", None)
    assert beat.held[0].notes is not None and beat.held[0].notes[-1]["text"] == "main"
    assert (await orch.complete(a, "q", token, "ok")).task.status == S.COMPLETED


async def test_an_emergency_finished_before_its_interrupt_was_set_lifts_it(
        orch: Orchestrator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A session waiting for work may take the emergency the moment it is added and
    finish it before the interrupt is set: its end was heard with nothing to lift. The
    interrupt must not outlive its task (a chaos campaign stalled for an hour on this)."""
    quick = await join(orch, "quick", ["build"])
    await orch.add_tasks([TaskSpec("build", id="queued")])
    record = orch.store.record_event

    async def meanwhile(type_: str, data: dict[str, object], now: float) -> None:
        await record(type_, data, now)
        if type_ == "swarm.emergency":
            got = await orch.claim(quick, "fire")
            await orch.complete(quick, "fire", got.lease.fencing_token, "done")

    monkeypatch.setattr(orch.store, "record_event", meanwhile)
    task, _ = await orch.emergency(TaskSpec("build", id="fire", title="fire"), True, True,
                                   "operator")
    assert task.status == S.COMPLETED
    assert orch.interrupt is None and await orch.store.get_interrupt() is None
    nxt = await orch.request_work(quick, 0)
    assert nxt is not None and nxt.task.id == "queued"


async def test_an_interrupt_whose_task_ended_is_lifted_by_the_next_request(
        orch: Orchestrator) -> None:
    """The lift that follows the emergency's end failed (the store was away then): the next
    session asking for work finds the task ended and lifts the interrupt itself."""
    s = await join(orch, "s", ["build"])
    await orch.add_tasks([TaskSpec("build", id="old"), TaskSpec("build", id="queued")])
    got = await orch.request_work(s, 0)
    assert got is not None and got.task.id == "old"
    await orch.complete(s, "old", got.lease.fencing_token, "done")
    await orch.set_interrupt("emergency: old", "operator", "old")  # as if the lift failed
    nxt = await orch.request_work(s, 0)
    assert nxt is not None and nxt.task.id == "queued"
    assert orch.interrupt is None and await orch.store.get_interrupt() is None


async def test_a_replica_follows_a_new_interrupt_of_the_same_reason(
        orch: Orchestrator) -> None:
    """Emergencies may share a title: a replica hearing a second interrupt of the same
    reason follows its task, not the first one's."""
    await orch.set_interrupt("emergency: same", "operator", "e1")
    orch._refresh_interrupt({"active": True, "reason": "emergency: same", "task_id": "e2"})
    assert orch.interrupt is not None and orch.interrupt.task_id == "e2"
