"""`AsyncClient` against a real server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import LiveServer
from unified_swarm import errors
from unified_swarm.client import AsyncClient


@pytest.fixture
async def op(sqlite_server: LiveServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(sqlite_server.url, sqlite_server.token) as client:
        yield client


async def test_register_add_request_complete(op: AsyncClient) -> None:
    assert (await op.healthz())["status"] == "ok"
    reg = await op.register(["build"], id="w1", max_concurrent_tasks=2)
    me = op.with_token(reg["token"])
    assert reg["session"]["max_concurrent_tasks"] == 2
    added = await op.add_tasks([{"id": "a", "type": "build", "priority": 3},
                                {"id": "b", "type": "build", "priority": 8}])
    assert [t["priority"] for t in added] == [3, 8]
    got = await me.request_work(wait=1)
    assert got is not None and got["task"]["id"] == "b"
    beat = await me.heartbeat()
    assert [lease["task_id"] for lease in beat["held"]] == ["b"]
    claimed = await me.claim("a")
    assert claimed["lease"]["session_id"] == "w1"
    for c in (got, claimed):
        lease = c["lease"]
        rec = await me.complete(lease["task_id"], lease["fencing_token"], {"by": "async"})
        assert rec["duplicate"] is False
    page = await op.list_tasks(status="completed")
    assert sorted(t["id"] for t in page["tasks"]) == ["a", "b"]
    assert [t["id"] async for t in op.iter_tasks(status="completed", page_size=1)] != []
    status = await op.status()
    assert status["tasks_completed"] == 2 and status["total_sessions"] == 1
    assert (await op.get_task("a"))["history"][0]["outcome"] == "completed"


async def test_wait_timeout_answers_none(op: AsyncClient) -> None:
    me = op.with_token((await op.register(["build"]))["token"])
    t0 = time.monotonic()
    assert await me.request_work(wait=0.3) is None
    assert time.monotonic() - t0 >= 0.29


async def test_long_poll_is_woken_by_new_work(op: AsyncClient) -> None:
    me = op.with_token((await op.register(["research"]))["token"])
    waiting = asyncio.create_task(me.request_work(wait=10))
    await asyncio.sleep(0.1)  # let the long-poll park (the test passes either way)
    t0 = time.monotonic()
    await op.add_task("research", id="late")
    got = await asyncio.wait_for(waiting, 5)
    assert got is not None and got["task"]["id"] == "late"
    assert time.monotonic() - t0 < 2


async def test_error_mapping(op: AsyncClient) -> None:
    quiet = op.with_token((await op.register(["build"], id="q", heartbeat_interval=0.2))["token"])
    alive = op.with_token((await op.register(["build"], id="a"))["token"])
    await op.add_task("build", id="job")
    first = (await quiet.claim("job"))["lease"]
    second = await alive.request_work(wait=10)
    assert second is not None
    with pytest.raises(errors.LeaseLost):
        await quiet.complete("job", first["fencing_token"], "late")
    with pytest.raises(errors.NotFound):
        await op.get_task("missing")
    with pytest.raises(errors.ValidationFailed) as bad:
        await op.add_task("build", priority=0)
    assert isinstance(bad.value, errors.InvalidInput) and bad.value.status == 422
    with pytest.raises(errors.InvalidInput):
        await quiet.request_work(wait=61)  # past the server's max_wait
    with pytest.raises(errors.StaleVersion):
        await op.put_knowledge("k", 1, expected_version=3)


async def test_knowledge_round_trip(op: AsyncClient) -> None:
    entry = await op.put_knowledge("team/plan", {"steps": 3}, tags=["plan"])
    assert entry["version"] == 1
    assert (await op.get_knowledge("team/plan"))["content"] == {"steps": 3}
    assert [e["topic"] for e in await op.list_knowledge("plan")] == ["team/plan"]
    assert (await op.delete_knowledge("team/plan", expected_version=1))["deleted"] is True
    assert await op.list_knowledge() == []


async def test_sessions_interrupt_cancel(op: AsyncClient) -> None:
    me = op.with_token((await op.register(["build"], id="w1"))["token"])
    assert [s["id"] for s in await op.sessions()] == ["w1"]
    assert (await op.session("w1"))["status"] == "idle"
    await op.interrupt("maintenance")
    assert (await me.heartbeat())["directives"]["interrupt"] is not None
    await op.lift_interrupt()
    await op.add_task("build", id="c1")
    assert (await op.cancel("c1", "changed my mind"))["status"] == "cancelled"
    assert (await op.drain("w1"))["status"] == "draining"
    assert (await me.leave("w1"))["status"] == "offline"
