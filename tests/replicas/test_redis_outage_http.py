"""Redis going away under a running server: 503 with Retry-After within a second (token
checks included, never 401 or 500), the coordination loop stands down, and everything
carries on by itself once Redis is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from unified_swarm.config import Settings
from unified_swarm.procs import RedisServer

from ..conftest import LiveServer
from .test_replicas import call, register, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def server(private_redis: RedisServer, settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(settings.replace(store=private_redis.url, redis_prefix="outage"))
    live.orchestrator.lease.ttl = 1.0
    live.start()
    yield live
    live.stop()


def test_503_while_redis_is_down_then_back_by_itself(server: LiveServer,
                                                     private_redis: RedisServer) -> None:
    token = register(server, "w1")
    assert call(server, "POST", "/work", json={"id": "a", "type": "build"}).status_code == 201
    wait_until(lambda: server.orchestrator.leader, within=3)
    private_redis.kill()
    for method, path, who in [("GET", "/work/a", None), ("POST", "/session/heartbeat", token),
                              ("GET", "/work/request", token), ("GET", "/swarm/status", None)]:
        started = time.monotonic()
        r = call(server, method, path, who)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.headers.get("Retry-After") and r.json()["error"]["code"] == "unavailable"
        assert time.monotonic() - started < 1.5
    health = httpx.get(server.url + "/healthz", timeout=5)
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    wait_until(lambda: not server.orchestrator.leader, within=2)  # stands down at once
    private_redis.start()  # same port and AOF
    wait_until(lambda: call(server, "GET", "/work/a").status_code == 200, within=5)
    got = call(server, "GET", "/work/request", token)
    assert got.status_code == 200 and got.json()["task"]["id"] == "a"
    wait_until(lambda: server.orchestrator.leader, within=3)
    assert httpx.get(server.url + "/healthz", timeout=5).json()["leader"] is True
