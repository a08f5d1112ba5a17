"""GET /swarm/scaling and the operator's pin, over real HTTP, with a pool whose spawner is
`none` (what a cluster scaled by KEDA runs): the JSON has the shape KEDA's metrics-api
scaler reads (`valueLocation: pools.<name>.desired`, an integer JSON number), every
decision carries its inputs, and bad calls are clear 4xx that change nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from unified_swarm.config import Settings

from .helpers import write_pools


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    pools = write_pools(tmp_path / "pools.toml", {
        "build": {"capabilities": ["build"], "min": 1, "max": 4, "spawner": "none",
                  "interval": 0.2},
        "any": {"min": 0, "max": 2, "spawner": "none", "interval": 0.2}})
    live = LiveServer(settings.replace(pools=pools)).start()
    yield live
    live.stop()


def http(server: LiveServer, token: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10, headers={
        "Authorization": f"Bearer {token or server.token}"})


def gjson(doc: Any, path: str) -> Any:
    """KEDA's valueLocation for a plain dotted path (GJSON's simplest form)."""
    for part in path.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def keda_value(body: dict[str, Any], pool: str) -> int:
    """What KEDA's metrics-api scaler would read: an integral unquoted JSON number."""
    value = gjson(body, f"pools.{pool}.desired")
    assert isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value


def wait_decided(c: httpx.Client, pool: str, check: Any = bool) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        body: dict[str, Any] = c.get("/swarm/scaling").json()
        p = body["pools"][pool]
        if p["decided_at"] is not None and check(p):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_scaling_reads_like_keda_wants(server: LiveServer) -> None:
    with http(server) as c:
        body = wait_decided(c, "build")
        assert body["leader"] is True and set(body["pools"]) == {"build", "any"}
        assert keda_value(body, "build") == 1  # min, with nothing to do
        assert keda_value(body, "any") == 0
        # a pool session registered by hand counts for its pool; it takes one task
        r = c.post("/session/register", json={"id": "b1", "capabilities": ["build"],
                                               "metadata": {"pool": "build"}})
        assert r.status_code == 201
        session = {"Authorization": f"Bearer {r.json()['token']}"}
        c.post("/work", json={"tasks": [{"type": "build"} for _ in range(50)]})
        assert c.get("/work/request", headers=session).status_code == 200
        body = wait_decided(c, "build", lambda p: p["desired"] == 4)
        build = body["pools"]["build"]
        assert keda_value(body, "build") == 4
        assert build["ready"] == 49 and build["sessions"] == {
            "idle": 0, "busy": 1, "draining": 0, "starting": 0}
        assert build["current"] == 1 and "49 ready" in build["reason"]
        assert "max 4" in build["limited_by"]
        last = build["decisions"][-1]
        assert last["observed"] == {"ready": 49, "idle": 0, "busy": 1, "starting": 0,
                                    "work_s": None, "cost_per_hour": None}
        assert (last["current"], last["recommended"], last["desired"]) == (1, 10, 4)
        assert build["spawner"] == "none"


def test_pin_and_lift(server: LiveServer) -> None:
    with http(server) as c:
        wait_decided(c, "build")
        r = c.post("/swarm/pools/build/scale", json={"desired": 3})
        assert r.status_code == 200, r.text
        pool = r.json()["pool"]
        assert pool["desired"] == 3 and pool["pinned"] == 3 and "pinned" in pool["reason"]
        r = c.post("/swarm/pools/build/scale", json={"desired": None})
        assert r.status_code == 200 and r.json()["pool"]["pinned"] is None
        assert r.json()["pool"]["desired"] == 1


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/swarm/pools/build/scale", {"desired": 5}, 400),      # past max 4
    ("/swarm/pools/any/scale", {"desired": -1}, 422),
    ("/swarm/pools/build/scale", {"desired": "3"}, 422),    # strict types
    ("/swarm/pools/build/scale", {}, 422),                  # desired is required
    ("/swarm/pools/nope/scale", {"desired": 1}, 404),
])
def test_bad_pins_change_nothing(server: LiveServer, path: str, body: dict[str, Any],
                                 status: int) -> None:
    with http(server) as c:
        wait_decided(c, "build")
        r = c.post(path, json=body)
        assert r.status_code == status, r.text
        assert set(r.json()["error"]) == {"code", "message"}
        assert c.get("/swarm/scaling").json()["pools"]["build"]["pinned"] is None


def test_only_the_operator(server: LiveServer) -> None:
    with http(server) as c:
        token = c.post("/session/register", json={"capabilities": []}).json()["token"]
    with http(server, token) as c:
        assert c.get("/swarm/scaling").status_code == 403
        assert c.post("/swarm/pools/build/scale", json={"desired": 2}).status_code == 403
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/swarm/scaling").status_code == 401


def test_without_pools(sqlite_server: LiveServer) -> None:
    with http(sqlite_server) as c:
        body = c.get("/swarm/scaling").json()
        assert body["pools"] == {} and body["leader"] is True
        r = c.post("/swarm/pools/build/scale", json={"desired": 1})
        assert r.status_code == 404 and "--pools" in r.json()["error"]["message"]
