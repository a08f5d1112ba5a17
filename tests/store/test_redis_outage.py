"""When Redis goes away, every call answers Unavailable within about a second (never a
hang), and when it comes back the store carries on by itself, data and events intact."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from unified_swarm.config import Settings
from unified_swarm.errors import Unavailable
from unified_swarm.procs import RedisServer
from unified_swarm.store.redis import RedisStore

from ..conftest import T0
from .helpers import add_tasks, claim_next, join, spec
from .test_redis_store import Heard, opened

pytestmark = pytest.mark.redis

CALLS: list[Callable[[RedisStore], Awaitable[Any]]] = [
    lambda s: s.ping(),
    lambda s: s.get_task("a"),
    lambda s: add_tasks(s, [spec("b")], T0),
    lambda s: claim_next(s, "w1", T0),
    lambda s: s.reap(T0, 10),
    lambda s: s.events_after(0, 10),
]


def settings_for(server: RedisServer, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "swarm", store=server.url, redis_prefix="outage")


async def all_unavailable(store: RedisStore, within: float) -> None:
    for call in CALLS:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await call(store)
        assert time.monotonic() - started < within


async def test_a_killed_redis_answers_unavailable_at_once(private_redis: RedisServer,
                                                          tmp_path: Path) -> None:
    store = await opened(settings_for(private_redis, tmp_path))
    await join(store, "w1")
    private_redis.kill()
    await all_unavailable(store, within=1.2)
    await store.close()


async def test_a_hung_redis_answers_unavailable_within_a_second(private_redis: RedisServer,
                                                                tmp_path: Path) -> None:
    store = await opened(settings_for(private_redis, tmp_path))
    await join(store, "w1")
    assert private_redis.alive
    private_redis.pause()
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await add_tasks(store, [spec("a")], T0)
        assert time.monotonic() - started < 1.6
    finally:
        private_redis.resume()
    await asyncio.sleep(0.1)
    # the timed-out write may or may not have run, but whole: the task exists with its event
    task = await store.get_task("a")
    events = [e.type for e in await store.events_after(0, 10)]
    assert (task is None) == ("task.added" not in events)
    await store.close()


async def test_the_store_reconnects_when_redis_is_back(private_redis: RedisServer,
                                                       tmp_path: Path) -> None:
    settings = settings_for(private_redis, tmp_path)
    store = await opened(settings)
    heard = Heard()
    store.add_listener(heard)
    await join(store, "w1")
    await add_tasks(store, [spec("a")], T0)
    private_redis.kill()
    with pytest.raises(Unavailable):
        await store.ping()
    private_redis.start()  # same port, same AOF (appendfsync always: nothing was lost)
    async with asyncio.timeout(5):
        while True:
            try:
                await store.ping()
                break
            except Unavailable:
                await asyncio.sleep(0.05)
    task = await store.get_task("a")
    assert task is not None and task.status.value == "ready"
    other = await opened(settings)  # another replica writes; the first one hears it
    await add_tasks(other, [spec("b")], T0 + 1)
    await heard.until(lambda evs: [e.type for e in evs][-1:] == ["task.added"]
                      and evs[-1].data["task_id"] == "b", within=5)
    assert [e.seq for e in heard.events] == list(range(1, len(heard.events) + 1))
    claimed = await claim_next(store, "w1", T0 + 2)
    assert claimed is not None and claimed.task.id == "a"
    await other.close()
    await store.close()


async def test_open_fails_fast_without_redis(tmp_path: Path) -> None:
    from unified_swarm.procs import free_port

    settings = Settings(data_dir=tmp_path, store=f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await RedisStore(settings.store, settings).open()
    assert time.monotonic() - started < 1.2


async def test_a_full_redis_answers_unavailable_and_writes_nothing(
        private_redis: RedisServer, tmp_path: Path) -> None:
    from redis.asyncio import Redis

    store = await opened(settings_for(private_redis, tmp_path))
    await join(store, "w1")
    client = Redis.from_url(private_redis.url)
    await client.config_set("maxmemory", "1")  # noeviction: Redis refuses writes
    try:
        with pytest.raises(Unavailable, match="maxmemory"):
            await add_tasks(store, [spec("a")], T0)
    finally:
        await client.config_set("maxmemory", "0")
        await client.aclose()
    assert await store.get_task("a") is None
    assert (await store.counts()).last_seq == 1
    await add_tasks(store, [spec("a")], T0)
    await store.close()
