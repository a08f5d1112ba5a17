"""`GET /work/offer`: the best task offered to a session without a claim, over real HTTP on
both stores, through the SDK (async and sync)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import LiveServer
from unified_swarm.client import AsyncClient, Client
from unified_swarm.config import Settings


@pytest.fixture
def quick_offers(store_settings: Settings) -> Iterator[LiveServer]:
    """A server whose offers lapse after a second (task_claim_timeout), on each store."""
    server = LiveServer(store_settings.replace(task_claim_timeout=1.0)).start()
    yield server
    server.stop()


@pytest.fixture
async def op(quick_offers: LiveServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(quick_offers.url, quick_offers.token) as client:
        yield client


async def joined(op: AsyncClient, sid: str, caps: list[str] | None = None) -> AsyncClient:
    return op.with_token((await op.register(caps or ["build"], id=sid))["token"])


async def test_an_offer_is_not_a_claim_and_the_session_claims_it(op: AsyncClient) -> None:
    s1, s2 = await joined(op, "s1"), await joined(op, "s2")
    assert await s1.offer_work() is None  # nothing ready: 204 at once
    await op.add_tasks([{"id": "low", "type": "build", "priority": 2},
                        {"id": "high", "type": "build", "priority": 9}])
    got = await s1.offer_work()
    assert got is not None and got["task"]["id"] == "high"  # the scheduler's choice
    assert got["offer"]["task_id"] == "high" and got["offer"]["session_id"] == "s1"
    assert got["offer"]["expires_at"] == got["task"]["lease_expires_at"]
    task = (await op.get_task("high"))["task"]
    assert task["status"] == "assigned" and task["assigned_to"] == "s1"
    assert task["fencing_token"] == 0 and (await s1.heartbeat())["held"] == []  # no lease
    again = await s1.offer_work()  # a repeat answers the standing offer, makes no other
    assert again is not None and again["task"]["id"] == "high"
    assert (await op.get_task("low"))["task"]["status"] == "ready"
    other = await s2.offer_work()  # another session is offered the next best
    assert other is not None and other["task"]["id"] == "low"
    claimed = await s1.claim("high")
    assert claimed["lease"]["session_id"] == "s1" and claimed["task"]["status"] == "in_progress"


async def test_an_ignored_offer_goes_to_another_session(op: AsyncClient) -> None:
    s1, s2 = await joined(op, "s1"), await joined(op, "s2")
    await op.add_task("build", id="t")
    first = await s1.offer_work()
    assert first is not None and first["offer"]["session_id"] == "s1"
    t0 = time.monotonic()
    second = await s2.offer_work(wait=20)  # woken when the offer lapses (1 s)
    assert second is not None and second["offer"]["session_id"] == "s2"
    assert time.monotonic() - t0 < 15
    history = (await op.get_task("t"))["history"]
    assert history == []  # offers are not attempts: nothing was claimed


async def test_a_waiting_offer_is_woken_by_new_work(op: AsyncClient) -> None:
    s1 = await joined(op, "s1", ["research"])
    waiting = asyncio.create_task(s1.offer_work(wait=20))
    await asyncio.sleep(0.2)
    await op.add_task("research", id="late")
    got = await asyncio.wait_for(waiting, 15)
    assert got is not None and got["task"]["id"] == "late"
    t0 = time.monotonic()
    assert await (await joined(op, "s2", ["research"])).offer_work(wait=0.3) is None
    assert time.monotonic() - t0 >= 0.29


async def test_a_newer_wait_supersedes_the_older(op: AsyncClient,
                                                 quick_offers: LiveServer) -> None:
    s1 = await joined(op, "s1")
    older = asyncio.create_task(s1.offer_work(wait=30))
    deadline = time.monotonic() + 15
    while not len(quick_offers.orchestrator.waiters):  # the older is parked: then the newer
        assert time.monotonic() < deadline, "the older wait never parked"
        await asyncio.sleep(0.02)
    newer = asyncio.create_task(s1.offer_work(wait=30))
    t0 = time.monotonic()
    assert await asyncio.wait_for(older, 15) is None  # 204 at once, not after 30 s
    assert time.monotonic() - t0 < 10
    await op.add_task("build", id="t")
    got = await asyncio.wait_for(newer, 15)
    assert got is not None and got["task"]["id"] == "t"


async def test_a_session_at_its_limit_is_refused(op: AsyncClient) -> None:
    from unified_swarm.errors import NotClaimable

    s1 = await joined(op, "s1")
    await op.add_tasks([{"id": "a", "type": "build"}, {"id": "b", "type": "build"}])
    assert await s1.request_work() is not None
    with pytest.raises(NotClaimable):
        await s1.offer_work()


def test_the_sync_client_offers_too(quick_offers: LiveServer) -> None:
    with Client(quick_offers.url, quick_offers.token) as op:
        me = op.with_token(op.register(["build"], id="sync")["token"])
        assert me.offer_work() is None
        op.add_task("build", id="t")
        got = me.offer_work(wait=1)
        assert got is not None and got["offer"] == {
            "task_id": "t", "session_id": "sync", "expires_at": got["task"]["lease_expires_at"]}
