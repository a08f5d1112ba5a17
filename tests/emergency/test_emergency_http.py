"""Emergencies, preemption and input required over real HTTP, on both stores: real
`swarm worker` processes (the shell executor running tests/worker/task.sh) where it is
about the worker, the SDK where it is about a session that asks. Waits are bounded polls.

Time bounds are in heartbeats as measured in the same run (the longest gap between a
worker's beats as the server saw them, never under the configured BEAT): on a loaded
machine every beat comes late, and so may the emergency, by the same measure."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from tests.worker.conftest import Workers, held_by, status_is, wait_for
from unified_swarm.client import Client
from unified_swarm.config import Settings
from unified_swarm.errors import Conflict

#: test workers beat every BEAT s; a preempted holder has GRACE s to let go
BEAT = 1.0
GRACE = 8.0
TASK = ("--command", "sh tests/worker/task.sh")


@pytest.fixture
def server(store_settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(store_settings.replace(preempt_grace=GRACE)).start()
    yield live
    live.stop()


@pytest.fixture
def op(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, server.token) as client:
        yield client


@pytest.fixture
def workers(server: LiveServer, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(server, tmp_path)
    try:
        yield pool
    finally:
        pool.close()


def at(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def measured_beat(op: Client, session_id: str, beats: int = 3) -> float:
    """The heartbeat interval of `session_id` as the server sees it now: the longest gap
    between `beats` + 1 consecutive beats (at least BEAT)."""
    seen: list[float] = []

    def enough() -> bool | None:
        last = op.session(session_id)["last_heartbeat"]
        if last is not None and (not seen or at(last) != seen[-1]):
            seen.append(at(last))
        return len(seen) > beats or None
    wait_for(enough, f"{beats} heartbeats of {session_id}", within=30 * BEAT, every=0.05)
    return max(BEAT, *(b - a for a, b in itertools.pairwise(seen)))


def effects(tmp_path: Path, task_id: str) -> list[str]:
    """Attempts of `task_id` that really ran to their end (task.sh logs one line each)."""
    path = tmp_path / "effects.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line for line in lines if line.split()[0] == task_id]


@pytest.mark.slow
def test_an_idle_worker_starts_the_emergency_within_a_heartbeat(
        op: Client, workers: Workers) -> None:
    workers.start("idle", *TASK, beat=BEAT)
    wait_for(lambda: op.sessions("idle") or None, "the worker to register and idle")
    beat = measured_beat(op, "idle")
    placed = op.emergency("build", id="fire", title="fire", input={"seconds": 0.2})
    assert placed["assigned_to"] == "idle" and placed["preempted"] is None
    assert placed["task"]["priority"] == 11
    done = wait_for(lambda: status_is(op, "fire", "completed"), "the emergency to complete")
    task = done["task"]
    assert at(task["started_at"]) - at(task["created_at"]) <= beat
    # it ended: the interrupt lifted by itself and the swarm takes work again
    op.add_task("build", id="after")
    wait_for(lambda: status_is(op, "after", "completed"), "work to flow again")


@pytest.mark.slow
def test_a_busy_swarm_preempts_the_least_important_task(
        op: Client, workers: Workers, tmp_path: Path) -> None:
    op.add_tasks([{"type": "build", "id": "minor", "priority": 2, "max_attempts": 1,
                   "input": {"seconds": 30}},
                  {"type": "build", "id": "major", "priority": 9, "input": {"seconds": 8}}])
    workers.start("wa", *TASK, beat=BEAT)
    workers.start("wb", *TASK, beat=BEAT)
    minor = wait_for(lambda: status_is(op, "minor", "in_progress"), "minor to start")
    wait_for(lambda: status_is(op, "major", "in_progress", "completed"), "major to start")
    holder = minor["task"]["assigned_to"]
    assert holder is not None
    # the task reported progress ("SWARM_PROGRESS 0.1 started") before the emergency
    wait_for(lambda: op.get_task("minor")["task"]["progress"]["message"], "minor's progress")
    beat = measured_beat(op, holder, beats=2)  # under the load of both running tasks
    sent = time.time()
    placed = op.emergency("build", id="fire", input={"seconds": 0.2})
    if placed["preempted"] is None:  # major ended first: its worker was idle and took it
        assert placed["assigned_to"] is not None
        pytest.skip("the major task finished before the emergency came: no one to preempt")
    assert placed["preempted"] == {"task_id": "minor", "session_id": holder}
    fire = wait_for(lambda: status_is(op, "fire", "completed"), "the emergency", within=30)
    assert at(fire["task"]["started_at"]) - sent <= GRACE + beat
    history = op.get_task("minor")["history"]
    assert history[0]["outcome"] == "released" and history[0]["session_id"] == holder
    # the preempted task (max_attempts 1: a preemption is not counted) runs again once
    # the emergency ended, and completes exactly once, its release note handed on
    done = wait_for(lambda: status_is(op, "minor", "completed"), "minor to complete",
                    within=60)
    notes = done["task"]["context"]["notes"]
    assert [(n["kind"], n["text"]) for n in notes] == [("release", "10%: started")]
    assert [a["outcome"] for a in done["history"]] == ["released", "completed"]
    assert done["task"]["preemptions"] == 1 and done["task"]["attempts"] == 1
    assert len(effects(tmp_path, "minor")) == 1
    assert len(effects(tmp_path, "fire")) == 1


@pytest.mark.slow
def test_a_holder_that_ignores_preemption_is_revoked(op: Client, server: LiveServer) -> None:
    with Client(server.url, server.token) as reg:
        token = reg.register(["build"], id="stubborn", heartbeat_interval=BEAT)["token"]
    with Client(server.url, token) as me:
        op.add_task("build", id="slow")
        got = me.claim("slow")
        placed = op.emergency("build", id="fire", interrupt=False)
        assert placed["preempted"] == {"task_id": "slow", "session_id": "stubborn"}
        beat = me.heartbeat()
        (order,) = beat["directives"]["preempt"]
        assert order["task_id"] == "slow" and 0 < order["grace_s"] <= GRACE

        def revoked() -> bool | None:
            me.heartbeat()  # alive all along: only the grace ends the lease
            task = op.get_task("slow")["task"]
            return task["fencing_token"] > got["lease"]["fencing_token"] or None
        wait_for(revoked, "the lease to be revoked", within=GRACE + 10, every=0.5)
        with pytest.raises(Conflict):
            me.complete("slow", got["lease"]["fencing_token"], "too late")


def test_input_required_waits_for_the_answer_for_the_same_holder(
        op: Client, server: LiveServer) -> None:
    with Client(server.url, server.token) as reg:
        token = reg.register(["build"], id="asker", heartbeat_interval=0.5)["token"]
    with Client(server.url, token) as me:
        op.add_task("build", id="q")
        got = me.claim("q")
        fence = got["lease"]["fencing_token"]
        asked = me.input_request("q", fence, "which region?")
        assert asked["task"]["status"] == "input_required"
        until = time.monotonic() + 3.0  # twice the lease TTL (1.5 s), alive all along
        while time.monotonic() < until:
            held = me.heartbeat()["held"]
            time.sleep(0.25)
        assert held[0]["status"] == "input_required"
        assert op.get_task("q")["task"]["status"] == "input_required"  # never reaped
        answered = op.answer("q", "eu-west")
        assert answered["status"] == "in_progress" and answered["assigned_to"] == "asker"
        held = me.heartbeat()["held"]
        notes = held[0]["notes"]
        assert [n["text"] for n in notes] == ["which region?", "eu-west"]
        detail = op.get_task("q")
        assert detail["task"]["context"]["notes"][-1]["text"] == "eu-west"
        done = me.complete("q", fence, {"region": "eu-west"})
        assert done["task"]["status"] == "completed"


def test_input_required_is_requeued_when_its_session_dies(
        op: Client, server: LiveServer) -> None:
    with Client(server.url, server.token) as reg:
        token = reg.register(["build"], id="ghost", heartbeat_interval=0.5)["token"]
    with Client(server.url, token) as me:
        op.add_task("build", id="q2", max_attempts=1)
        got = me.claim("q2")
        me.input_request("q2", got["lease"]["fencing_token"], "still there?")
    # no more heartbeats: offline after 1.5 s, the task back in the queue, not counted
    back = wait_for(lambda: status_is(op, "q2", "ready"), "q2 to be requeued", within=15)
    assert back["task"]["attempts"] == 0
    assert op.answer("q2", "yes")["status"] == "ready"  # the answer waits with it
    with Client(server.url, server.token) as reg:
        token = reg.register(["build"], id="next", heartbeat_interval=5)["token"]
    with Client(server.url, token) as nxt:
        again = nxt.claim("q2")
        assert [n["text"] for n in again["task"]["context"]["notes"]] == [
            "still there?", "yes"]
        assert held_by(op, "q2", "next")
