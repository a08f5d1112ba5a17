"""Bad input gets a clear 4xx with the JSON error shape, and changes nothing.

Every case runs against a swarm with state in it (sessions, a held lease, knowledge); a
digest of everything readable is taken before and after each request and must not move.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from unified_swarm.config import Settings

from .wire import Wire

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """w1 holds task 'held' (token 1); w2 is idle; 'dep' waits on 'held'; knowledge at v1.

    One server for the module: every case must leave it unchanged, which is what they check.
    """
    settings = Settings(data_dir=tmp_path_factory.mktemp("bad-input"), token="operator-token",
                        rate_limit=0)
    sqlite_server = LiveServer(settings).start()
    with Wire(sqlite_server.url, sqlite_server.token) as op:
        w1 = op.register("w1", ["build"])
        w2 = op.register("w2", ["build"])
        op.ok("POST", "/work", json={"tasks": [
            {"id": "held", "type": "build", "priority": 10},
            {"id": "dep", "type": "build", "dependencies": ["held"]},
            {"id": "other", "type": "research"}]})
        with Wire(sqlite_server.url, w1) as me:
            assert me.ok("GET", "/work/request")["task"]["id"] == "held"
        op.ok("PUT", "/knowledge/plan", json={"content": {"v": 1}})
    yield {"server": sqlite_server, "op": sqlite_server.token, "w1": w1, "w2": w2}
    sqlite_server.stop()


def digest(url: str, token: str) -> str:
    with Wire(url, token) as op:
        state = [op.ok("GET", "/work", params={"limit": 1000}), op.ok("GET", "/sessions"),
                 op.ok("GET", "/knowledge"), op.ok("GET", "/swarm/status")]
        for tid in ("held", "dep", "other"):
            state.append(op.ok("GET", f"/work/{tid}"))
    for s in state[1]["sessions"]:
        s.pop("last_heartbeat")  # liveness, not state
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = [value]
    return value


TASK = {"type": "build"}
# (who, method, path, body or raw bytes, extra kwargs, expected status)
CASES: list[tuple[str, str, str, Any, dict[str, Any], int]] = [
    # tasks
    ("op", "POST", "/work", {**TASK, "priority": 0}, {}, 422),
    ("op", "POST", "/work", {**TASK, "priority": 11}, {}, 422),
    ("op", "POST", "/work", {**TASK, "priority": "5"}, {}, 422),
    ("op", "POST", "/work", {**TASK, "priority": 5.5}, {}, 422),
    ("op", "POST", "/work", {**TASK, "critical": "yes"}, {}, 422),
    ("op", "POST", "/work", {"title": "no type"}, {}, 422),
    ("op", "POST", "/work", {"type": ""}, {}, 422),
    ("op", "POST", "/work", {**TASK, "id": "has space"}, {}, 400),
    ("op", "POST", "/work", {**TASK, "id": "x" * 200}, {}, 422),
    ("op", "POST", "/work", {**TASK, "dependencies": ["ghost"]}, {}, 400),
    ("op", "POST", "/work", {**TASK, "dependencies": "held"}, {}, 422),
    ("op", "POST", "/work", {**TASK, "id": "me", "dependencies": ["me"]}, {}, 400),
    ("op", "POST", "/work", {"tasks": [{**TASK, "id": "a", "dependencies": ["b"]},
                                       {**TASK, "id": "b", "dependencies": ["a"]}]}, {}, 400),
    ("op", "POST", "/work", {"tasks": [{**TASK, "id": "a"}, {**TASK, "id": "a"}]}, {}, 409),
    ("op", "POST", "/work", {"tasks": [{**TASK, "id": "new"}, {**TASK, "id": "held"}]}, {}, 409),
    ("op", "POST", "/work", {"tasks": [{**TASK, "id": "new"}, {**TASK, "priority": 99}]}, {}, 422),
    ("op", "POST", "/work", {"tasks": []}, {}, 422),
    ("op", "POST", "/work", {"tasks": [TASK] * 1001}, {}, 400),
    ("op", "POST", "/work", {**TASK, "max_attempts": 0}, {}, 422),
    ("op", "POST", "/work", {**TASK, "estimated_hours": -1}, {}, 422),
    ("op", "POST", "/work", {**TASK, "input": "x" * (MiB + 10)}, {}, 413),
    ("op", "POST", "/work", {**TASK, "input": deep(100)}, {}, 400),
    ("op", "POST", "/work", b'{"type": "build", "input": NaN}', {}, 422),
    ("op", "POST", "/work", b'{"type": "build",', {}, 422),
    ("op", "POST", "/work", b'{"type": "build", "title": "\\ud800"}', {}, 422),
    ("op", "POST", "/work", b"[]", {}, 422),
    ("op", "POST", "/work", b"", {}, 422),
    ("op", "POST", "/work/held/cancel", {"reason": 5}, {}, 422),
    ("op", "POST", "/work/ghost/cancel", {}, {}, 404),
    ("op", "GET", "/work", None, {"params": {"limit": 0}}, 422),
    ("op", "GET", "/work", None, {"params": {"limit": 5000}}, 422),
    ("op", "GET", "/work", None, {"params": {"status": "bogus"}}, 422),
    ("op", "GET", "/work", None, {"params": {"cursor": "garbage"}}, 400),
    ("op", "GET", "/work/ghost", None, {}, 404),
    # sessions
    ("op", "POST", "/session/register", {"capabilities": "build"}, {}, 422),
    ("op", "POST", "/session/register", {}, {}, 422),
    ("op", "POST", "/session/register", {"capabilities": ["build"], "heartbeat_interval": 0},
     {}, 422),
    ("op", "POST", "/session/register", {"capabilities": ["build"], "max_concurrent_tasks": 0},
     {}, 422),
    ("op", "POST", "/session/register", {"capabilities": ["bad cap!"]}, {}, 400),
    ("op", "POST", "/session/register", {"capabilities": ["build"], "id": "w1"}, {}, 409),
    ("op", "POST", "/session/register", {"capabilities": ["build"], "id": "a b"}, {}, 400),
    ("op", "POST", "/session/ghost/drain", None, {}, 404),
    ("op", "GET", "/session/ghost", None, {}, 404),
    ("w1", "POST", "/session/heartbeat", {"status": "asleep"}, {}, 422),
    # outcomes
    ("w1", "POST", "/work/complete", {"task_id": "held"}, {}, 422),
    ("w1", "POST", "/work/complete", {"task_id": "held", "fencing_token": "1"}, {}, 422),
    ("w1", "POST", "/work/complete", {"task_id": "held", "fencing_token": 2}, {}, 409),
    ("w1", "POST", "/work/complete", {"task_id": "held", "fencing_token": 2**70}, {}, 422),
    ("w1", "POST", "/work/complete", {"task_id": "held", "fencing_token": -1}, {}, 422),
    ("w1", "POST", "/work/complete", {"task_id": "ghost", "fencing_token": 1}, {}, 404),
    ("w1", "POST", "/work/complete", {"task_id": "held", "fencing_token": 1,
                                      "result": "x" * (MiB + 10)}, {}, 413),
    ("w2", "POST", "/work/complete", {"task_id": "held", "fencing_token": 1}, {}, 403),
    ("w2", "POST", "/work/fail", {"task_id": "held", "fencing_token": 1, "error": "x"}, {}, 403),
    ("w2", "POST", "/work/progress", {"task_id": "held", "fencing_token": 1, "progress": 0.5},
     {}, 403),
    ("w1", "POST", "/work/progress", {"task_id": "held", "fencing_token": 1, "progress": 1.5},
     {}, 422),
    ("w1", "POST", "/work/fail", {"task_id": "held", "fencing_token": 1}, {}, 422),
    ("w2", "POST", "/work/claim", {"task_id": "held"}, {}, 409),
    ("w2", "POST", "/work/claim", {"task_id": "dep"}, {}, 409),
    ("w2", "POST", "/work/claim", {"task_id": "other"}, {}, 409),
    ("w2", "POST", "/work/claim", {"task_id": "ghost"}, {}, 404),
    ("w1", "GET", "/work/request", None, {"params": {"wait": 100}}, 400),
    ("w1", "GET", "/work/request", None, {"params": {"wait": -1}}, 422),
    ("w1", "GET", "/work/request", None, {}, 409),  # at max_concurrent_tasks
    # knowledge
    ("op", "PUT", "/knowledge/plan", {"content": 2, "expected_version": 0}, {}, 409),
    ("op", "PUT", "/knowledge/plan", {"content": 2, "expected_version": -1}, {}, 422),
    ("op", "PUT", "/knowledge/plan", {"expected_version": 1}, {}, 422),
    ("op", "PUT", "/knowledge/plan", {"content": 2, "tags": "x"}, {}, 422),
    ("op", "GET", "/knowledge/plan", None, {"params": {"version": 9}}, 404),
    ("op", "GET", "/knowledge/plan", None, {"params": {"version": 0}}, 422),
    ("op", "DELETE", "/knowledge/plan", None, {"params": {"expected_version": 5}}, 409),
    ("op", "DELETE", "/knowledge/ghost", None, {}, 404),
    # auth and roles
    ("none", "GET", "/swarm/status", None, {}, 401),
    ("bad", "GET", "/swarm/status", None, {}, 401),
    ("none", "POST", "/work", TASK, {}, 401),
    ("w1", "POST", "/session/register", {"capabilities": ["build"]}, {}, 403),
    ("w1", "POST", "/work/held/cancel", {}, {}, 403),
    ("w1", "POST", "/swarm/interrupt", {"reason": "x"}, {}, 403),
    ("w1", "POST", "/session/w2/drain", None, {}, 403),
    ("w1", "DELETE", "/session/w2", None, {}, 403),
    ("op", "GET", "/work/request", None, {}, 403),
    ("op", "POST", "/work/complete", {"task_id": "held", "fencing_token": 1}, {}, 403),
    ("op", "POST", "/session/heartbeat", {}, {}, 403),
    # the surface itself
    ("op", "GET", "/no/such/route", None, {}, 404),
    ("op", "PATCH", "/work", None, {}, 405),
    ("op", "GET", "/work?stauts=ready", None, {}, 400),  # misspelt: never ignored
    ("op", "GET", "/work?limit=5&limit=500", None, {}, 400),  # which one did it mean?
    ("op", "POST", "/work", TASK, {"headers": {"host": "evil.example"}}, 400),
    ("op", "POST", "/work", b"x" * (17 * MiB), {}, 413),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "kw", "status"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_refused_and_changes_nothing(
    swarm: dict[str, Any], who: str, method: str, path: str, body: Any, kw: dict[str, Any],
    status: int,
) -> None:
    server: LiveServer = swarm["server"]
    token = {"none": None, "bad": "not-a-token"}.get(who, swarm.get(who))
    before = digest(server.url, server.token)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    if isinstance(body, bytes):
        headers["content-type"] = "application/json"
        r = httpx.request(method, server.url + path, content=body, headers=headers, timeout=30,
                          **kw)
    else:
        r = httpx.request(method, server.url + path, json=body, headers=headers, timeout=30,
                          **kw)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message"} and error["message"]
    assert digest(server.url, server.token) == before
