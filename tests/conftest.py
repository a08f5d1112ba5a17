"""Shared fixtures: real stores (a SQLite file, a redis-server on a free loopback port:
unified_swarm.procs, the same process module the campaign, the demo and the benchmarks use).

The Redis tests are skipped when `redis-server` is missing locally and fail when `CI` is set,
so CI can never go green by skipping them.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from unified_swarm.config import Settings
from unified_swarm.core.orchestrator import Orchestrator
from unified_swarm.procs import RedisServer, free_port
from unified_swarm.store.base import Store

T0 = 1_800_000_000.0  # a fixed "now" for clock-free tests


def _need_redis() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing and CI is set: .ci/run must install it")
        pytest.skip("redis-server is not installed")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    _need_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may kill, pause, restart or reconfigure."""
    _need_redis()
    server = RedisServer(tmp_path / "private-redis").start()
    yield server
    server.kill()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "swarm", token="operator-token", rate_limit=0)


def make_settings_for(kind: str, base: Settings, request: pytest.FixtureRequest) -> Settings:
    if kind == "sqlite":
        return base
    server: RedisServer = request.getfixturevalue("redis_server")
    return base.replace(store=server.url, redis_prefix=f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Settings naming a fresh store of each backend."""
    return make_settings_for(request.param, settings, request)


@pytest.fixture
async def store(store_settings: Settings) -> AsyncIterator[Store]:
    from unified_swarm.store import make_store

    s = make_store(store_settings)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


class LiveServer:
    """A real uvicorn serving `create_app(settings)` on a free loopback port, in a thread."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from unified_swarm.app import create_app

        self.settings = settings.replace(port=free_port())
        self.app = create_app(self.settings)
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self.token = self.settings.token or ""
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.settings.port,
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def start(self) -> LiveServer:
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(15)

    @property
    def orchestrator(self) -> Orchestrator:
        orch: Orchestrator = self.app.state.orchestrator
        return orch


@pytest.fixture
def live_server(store_settings: Settings) -> Iterator[LiveServer]:
    """A real HTTP server on each store backend (operator token: `live_server.token`)."""
    server = LiveServer(store_settings).start()
    yield server
    server.stop()


@pytest.fixture
def sqlite_server(settings: Settings) -> Iterator[LiveServer]:
    """A real HTTP server on the SQLite store only."""
    server = LiveServer(settings).start()
    yield server
    server.stop()
