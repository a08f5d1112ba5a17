"""Choosing a task costs O(capabilities x log n), not a scan: a claim against 100k ready
tasks runs the same Redis commands as a claim against a handful. Measured in commands
(Redis counts the ones scripts run in INFO commandstats), never in wall time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from unified_swarm.config import Settings
from unified_swarm.procs import RedisServer
from unified_swarm.store.redis import RedisStore

from ..conftest import T0
from .helpers import add_tasks, claim_next, join, spec
from .test_redis_store import opened

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: connection set-up and the measurement itself, not the call's work
SETUP = ("info", "client", "hello", "select", "auth")
CAPS = ["build", "research", "marketing", "architect"]


async def command_counts(client: Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def work_of(client: Redis, call: object) -> dict[str, int]:
    """The commands one store call made Redis run (the INFO calls themselves left out)."""
    before = await command_counts(client)
    await call  # type: ignore[misc]
    after = await command_counts(client)
    return {k: n - before.get(k, 0) for k, n in after.items()
            if n != before.get(k, 0) and not k.startswith(SETUP)}


async def fill(store: RedisStore, n: int, start: int = 0) -> None:
    for first in range(start, start + n, 1000):
        await add_tasks(store, [
            spec(f"t{i}", CAPS[i % len(CAPS)], priority=1 + i % 9)
            for i in range(first, min(first + 1000, start + n))], T0)


@pytest.fixture
async def client(private_redis: RedisServer) -> AsyncIterator[Redis]:
    c = Redis.from_url(private_redis.url, decode_responses=True)
    yield c
    await c.aclose()


@pytest.fixture
async def store(private_redis: RedisServer, tmp_path: Path) -> AsyncIterator[RedisStore]:
    s = await opened(Settings(data_dir=tmp_path / "swarm", store=private_redis.url,
                              redis_prefix="scale"))
    yield s
    await s.close()


async def test_claim_work_does_not_grow_with_the_queue(store: RedisStore,
                                                       client: Redis) -> None:
    for sid in ("w1", "w2"):
        await join(store, sid, ["build", "research"])
    for sid in ("any1", "any2"):
        await join(store, sid, [])
    await fill(store, 40)
    await store._pump.stop()  # no event reads in between: count the claims alone
    small = await work_of(client, claim_next(store, "w1", T0))
    small_any = await work_of(client, claim_next(store, "any1", T0))
    await fill(store, 100_000, start=40)
    assert (await store.counts()).tasks["ready"] > 100_000 - 10
    large = await work_of(client, claim_next(store, "w2", T0))
    large_any = await work_of(client, claim_next(store, "any2", T0))
    assert large == small, "a claim ran other commands with a long queue"
    assert large_any == small_any
    assert sum(large.values()) < 80
    assert large.get("zrange", 0) <= 2 + 2  # one head per capability (+ the held set)
    # and the heads are right: priority 9 first (i % 9 == 8), then the oldest
    w2 = await store.get_session("w2")
    any2 = await store.get_session("any2")
    assert w2 is not None and any2 is not None
    assert w2.current_tasks == ["t44"] and any2.current_tasks == ["t26"]
