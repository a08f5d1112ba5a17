"""WS /swarm/realtime over real HTTP (uvicorn on a loopback port) with the `websockets`
client: resume with no gap and no duplicate while events keep coming, type filters, and
every way a connection is refused."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import LiveServer
from unified_swarm.api.realtime import CLOSE_AFTER_AHEAD

TIMEOUT = 10.0


def ws_url(server: LiveServer, query: str = "") -> str:
    base = server.url.replace("http://", "ws://") + "/swarm/realtime"
    return f"{base}?{query}" if query else base


@contextlib.asynccontextmanager
async def stream(server: LiveServer, query: str, **kw: Any) -> AsyncIterator[ClientConnection]:
    sep = "&" if query else ""
    async with connect(ws_url(server, f"{query}{sep}token={server.token}"),
                       open_timeout=TIMEOUT, **kw) as ws:
        yield ws


async def recv(ws: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return event


class Driver:
    """Makes events over the REST API: register one session, then add/claim/complete."""

    def __init__(self, server: LiveServer) -> None:
        self.http = httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT,
                                      headers={"Authorization": f"Bearer {server.token}"})
        self.session_token = ""

    async def __aenter__(self) -> Driver:
        r = await self.http.post("/session/register", json={"id": "w", "capabilities": ["build"]})
        r.raise_for_status()
        self.session_token = r.json()["token"]
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def cycle(self, i: int) -> None:
        """Three events: task.added, task.claimed, task.completed."""
        (await self.http.post("/work", json={"id": f"t{i}", "type": "build"})).raise_for_status()
        auth = {"Authorization": f"Bearer {self.session_token}"}
        r = await self.http.post("/work/claim", json={"task_id": f"t{i}"}, headers=auth)
        r.raise_for_status()
        token = r.json()["lease"]["fencing_token"]
        r = await self.http.post("/work/complete", headers=auth, json={
            "task_id": f"t{i}", "fencing_token": token, "result": {"i": i}})
        r.raise_for_status()

    async def last_seq(self) -> int:
        r = await self.http.get("/swarm/status")
        seq: int = r.json()["last_event_seq"]
        return seq


async def test_resume_has_no_gap_and_no_duplicate(live_server: LiveServer) -> None:
    """Events keep coming while the client reads, hangs up, and resumes twice."""
    async with Driver(live_server) as driver:
        async def produce() -> None:
            for i in range(40):
                await driver.cycle(i)

        producer = asyncio.create_task(produce())
        seqs: list[int] = []
        async with stream(live_server, "after=0") as ws:
            while len(seqs) < 25:
                seqs.append((await recv(ws))["seq"])
        await asyncio.sleep(0.05)  # events pile up while nobody listens
        async with stream(live_server, f"after={seqs[-1]}") as ws:
            for _ in range(25):
                seqs.append((await recv(ws))["seq"])
        await asyncio.wait_for(producer, 60)
        last = await driver.last_seq()
        async with stream(live_server, f"after={seqs[-1]}") as ws:
            while seqs[-1] < last:
                seqs.append((await recv(ws))["seq"])
    assert last >= 121  # 1 join + 40 x 3
    assert seqs == list(range(1, last + 1))


async def test_live_only_stream_then_resume(sqlite_server: LiveServer) -> None:
    async with Driver(sqlite_server) as driver:
        await driver.cycle(0)
        async with stream(sqlite_server, "") as ws:
            await asyncio.sleep(0.05)
            await driver.cycle(1)
            first = [(await recv(ws)) for _ in range(3)]
        assert [e["type"] for e in first] == ["task.added", "task.claimed", "task.completed"]
        assert [e["seq"] for e in first] == [5, 6, 7]
        assert first[0]["data"]["task_id"] == "t1" and isinstance(first[0]["at"], str)


async def test_type_filter_by_prefix_and_full_type(sqlite_server: LiveServer) -> None:
    async with Driver(sqlite_server) as driver:
        for i in range(3):
            await driver.cycle(i)
        async with stream(sqlite_server, "after=0&types=task.completed,session") as ws:
            got = [await recv(ws) for _ in range(4)]
        assert [e["type"] for e in got] == ["session.joined"] + ["task.completed"] * 3
        assert [e["seq"] for e in got] == [1, 4, 7, 10]
        async with stream(sqlite_server, "after=0&types=task") as ws:
            got = [await recv(ws) for _ in range(9)]
        assert all(e["type"].startswith("task.") for e in got)
        assert [e["seq"] for e in got] == list(range(2, 11))


async def refused(url: str, **kw: Any) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, open_timeout=TIMEOUT, **kw):
            pass
    status: int = info.value.response.status_code
    return status


async def test_refused_without_a_good_operator_token(sqlite_server: LiveServer) -> None:
    assert await refused(ws_url(sqlite_server)) == 401
    assert await refused(ws_url(sqlite_server, "token=wrong")) == 401
    assert await refused(ws_url(sqlite_server), additional_headers={
        "Authorization": "Bearer wrong"}) == 401
    async with Driver(sqlite_server) as driver:
        session_token = driver.session_token
    assert await refused(ws_url(sqlite_server, f"token={session_token}")) == 403


async def test_refused_from_a_foreign_origin(sqlite_server: LiveServer) -> None:
    url = ws_url(sqlite_server, f"token={sqlite_server.token}")
    assert await refused(url, origin="https://evil.example") == 403
    assert await refused(url, origin="null") == 403
    for origin in (sqlite_server.url, "http://localhost:5173"):
        async with connect(url, origin=origin, open_timeout=TIMEOUT):  # type: ignore[arg-type]
            pass


async def test_refused_for_a_foreign_host(sqlite_server: LiveServer) -> None:
    url = ws_url(sqlite_server, f"token={sqlite_server.token}")
    with pytest.raises(InvalidStatus):
        async with connect(url, additional_headers={"Host": "evil.example"},
                           open_timeout=TIMEOUT):
            pass


async def test_token_as_header_or_subprotocol(sqlite_server: LiveServer) -> None:
    async with Driver(sqlite_server):
        pass
    url = ws_url(sqlite_server, "after=0")
    async with connect(url, additional_headers={"Authorization": f"Bearer {sqlite_server.token}"},
                       open_timeout=TIMEOUT) as ws:
        assert (await recv(ws))["type"] == "session.joined"
    protocols: Any = ["swarm", f"bearer.{sqlite_server.token}"]
    async with connect(url, subprotocols=protocols, open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol == "swarm"  # the token is never echoed back
        assert (await recv(ws))["seq"] == 1
    assert await refused(url, subprotocols=[f"bearer.{sqlite_server.token}"]) == 400


async def test_bad_after_is_refused_and_an_after_past_the_log_closes(
        sqlite_server: LiveServer) -> None:
    assert await refused(ws_url(sqlite_server, f"after=-1&token={sqlite_server.token}")) == 400
    assert await refused(ws_url(sqlite_server, f"after=x&token={sqlite_server.token}")) == 400
    async with Driver(sqlite_server), stream(sqlite_server, "after=50") as ws:
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd is not None and info.value.rcvd.code == CLOSE_AFTER_AHEAD


def wait_until(check: Callable[[], bool]) -> None:
    """Poll state owned by the server thread (no event to wait on across threads)."""
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


async def test_streams_close_cleanly_and_are_forgotten(sqlite_server: LiveServer) -> None:
    hub = sqlite_server.app.state.hub
    async with stream(sqlite_server, ""), stream(sqlite_server, "after=0"):
        await asyncio.to_thread(wait_until, lambda: hub.subscribers == 2)
    await asyncio.to_thread(wait_until, lambda: hub.subscribers == 0)
