"""The fast lane (api/fastlane.py) over real HTTP on both stores: a busy worker's well-formed
calls are served by the lane, never reaching the framework; every malformed one falls
through to the framework with its body intact, gets the routes' own 4xx, and changes
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from unified_swarm.api.fastlane import FallThrough, FastLane, request_query
from unified_swarm.api.guard import Receive, Scope, Send

from ..conftest import LiveServer
from .wire import Wire


class Counted:
    """The framework behind the lane, counting the calls that reach it."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


def _lane(app: Any) -> FastLane:
    while not isinstance(app, FastLane):
        app = app.app
    return app


@pytest.fixture
def lane(live_server: LiveServer) -> Iterator[tuple[LiveServer, Counted]]:
    with Wire(live_server.url, None) as anyone:
        anyone.ok("GET", "/healthz")  # the middleware stack is built by the first call
    fast = _lane(live_server.app.middleware_stack)
    behind = Counted(fast.app)
    fast.app = behind
    yield live_server, behind


@pytest.mark.parametrize(("query", "expected"), [
    (b"", (0.0, None)),
    (b"wait=5", (5.0, None)),
    (b"wait=0.25&max=4", (0.25, 4)),
    (b"max=1000", (0.0, 1000)),
])
def test_the_lane_reads_plain_queries(query: bytes, expected: tuple[float, int | None]) -> None:
    assert request_query(query) == expected


@pytest.mark.parametrize("query", [
    b"wait=-1", b"wait=1e3", b"wait=", b"wait", b"wait=1%2E5", b"wait=nan", b"max=0",
    b"max=1001", b"max=2.0", b"max=4&max=4", b"wait=1&wait=2", b"stauts=ready", b"&", b"max=+4",
])
def test_anything_else_is_left_to_the_route(query: bytes) -> None:
    with pytest.raises(FallThrough):
        request_query(query)


def _done(c: dict[str, Any]) -> dict[str, Any]:
    return {"task_id": c["task"]["id"], "fencing_token": c["lease"]["fencing_token"]}


def test_well_formed_calls_never_reach_the_framework(
        lane: tuple[LiveServer, Counted]) -> None:
    server, behind = lane
    with Wire(server.url, server.token) as op:
        token = op.register("w1", ["noop"], max_concurrent_tasks=2)
        seen = behind.calls
        op.ok("POST", "/work", json={"tasks": [{"id": f"t{i}", "type": "noop"}
                                               for i in range(4)]})
        key = {"idempotency-key": "submit-once"}
        (added,) = op.ok("POST", "/work", json={"id": "t4", "type": "noop"},
                         headers=key)["tasks"]
        again = op.call("POST", "/work", json={"id": "t4", "type": "noop"}, headers=key)
        assert again.status_code == 201 and again.json()["tasks"] == [added]  # kept, once
        with Wire(server.url, token) as me:
            one = me.ok("GET", "/work/request")
            rec = me.ok("POST", "/work/complete", json={**_done(one), "result": 1})
            assert rec["task"]["status"] == "completed" and rec["duplicate"] is False
            two = me.ok("GET", "/work/request", params={"max": 2, "wait": 1})["claimed"]
            rec = me.ok("POST", "/work/complete", json={
                "outcomes": [_done(c) for c in two], "max": 1},
                headers={"content-type": "application/json; charset=utf-8"})
            assert [r["task"]["status"] for r in rec["results"]] == ["completed"] * 2
            (last,) = rec["claimed"]
            rec = me.ok("POST", "/work/complete", json={**_done(last), "next": True})
            assert len(rec["claimed"]) == 1
            retry = me.ok("POST", "/work/complete", json=_done(last))
            assert retry["duplicate"] is True
            beat = me.ok("POST", "/session/heartbeat")
            assert [h["task_id"] for h in beat["held"]] == [rec["claimed"][0]["task"]["id"]]
            beat = me.ok("POST", "/session/heartbeat", json={"status": "busy"})
            assert beat["session"]["id"] == "w1" and beat["directives"]["drain"] is False
        assert behind.calls == seen
        statuses = sorted(t["status"] for t in op.ok("GET", "/work")["tasks"])
        assert statuses == ["completed"] * 4 + ["in_progress"]


def test_errors_of_the_call_are_answered_by_the_lane_as_the_app_does(
        lane: tuple[LiveServer, Counted]) -> None:
    server, behind = lane
    seen = behind.calls
    with Wire(server.url, "not-a-token") as stranger:
        r = stranger.call("GET", "/work/request")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = stranger.call("POST", "/work", json={"id": "t", "type": "noop"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = stranger.call("POST", "/work/complete", json={"task_id": "t", "fencing_token": 1})
        assert r.status_code == 401
    with Wire(server.url, server.token) as op:  # the operator holds no lease
        r = op.call("GET", "/work/request")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        r = op.call("POST", "/work", json={"id": "t", "type": "noop"},
                    headers={"idempotency-key": "k" * 256})
        assert r.status_code == 400 and "Idempotency" in r.json()["error"]["message"]
        token = op.register("w1", ["noop"])
        with Wire(server.url, token) as me:
            me.ok("POST", "/work", json={"id": "taken", "type": "noop"})  # a session may
            r = me.call("POST", "/work", json={"tasks": [{"id": "new", "type": "noop"},
                                                         {"id": "taken", "type": "noop"}]})
            assert r.status_code == 409 and r.json()["error"]["code"] == "already_exists"
            assert "'taken'" in r.json()["error"]["message"]
            r = me.call("POST", "/work/complete", json={"task_id": "nope", "fencing_token": 1})
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            r = me.call("GET", "/work/request", headers={"idempotency-key": "k" * 256})
            assert r.status_code == 400 and "Idempotency" in r.json()["error"]["message"]
    assert behind.calls == seen + 1  # the register call only


def test_a_keyed_request_for_work_is_answered_once(lane: tuple[LiveServer, Counted]) -> None:
    """The key every SDK request for work carries: a retry gets the first answer, the
    same lease, and no second claim; the lane serves it all."""
    server, behind = lane
    with Wire(server.url, server.token) as op:
        token = op.register("w1", ["noop"], max_concurrent_tasks=2)
        op.ok("POST", "/work", json={"tasks": [{"id": "a", "type": "noop"},
                                               {"id": "b", "type": "noop"}]})
        seen = behind.calls
        with Wire(server.url, token) as me:
            key = {"idempotency-key": "retry-me"}
            first = me.ok("GET", "/work/request", params={"wait": 1}, headers=key)
            again = me.ok("GET", "/work/request", params={"wait": 1}, headers=key)
            assert again["lease"] == first["lease"] and again["task"]["id"] == first["task"]["id"]
        assert behind.calls == seen
        ready = op.ok("GET", "/work", params={"status": "ready"})["tasks"]
        assert len(ready) == 1  # one claim, not two
        seen = behind.calls
        twice = op.call("GET", "/work/request",  # a key sent twice: the framework's call
                        headers=[("idempotency-key", "x"), ("idempotency-key", "y")])
        assert twice.status_code in (400, 403) and behind.calls == seen + 1


MALFORMED: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("GET", "/work/request?wait=-1", {}, 422, "validation_error"),
    ("GET", "/work/request?max=0", {}, 422, "validation_error"),
    ("GET", "/work/request?stauts=ready", {}, 400, "unknown query parameter"),
    ("GET", "/work/request?max=2&max=3", {}, 400, "more than once"),
    ("POST", "/work/complete", {"content": b"{not json"}, 422, "malformed JSON"),
    ("POST", "/work/complete", {"content": b'{"task_id": "t0", "fencing_token": '
                                b'123456789012345678901234}'}, 422, "64 bits"),
    ("POST", "/work/complete", {"json": {"task_id": "t0"}}, 422, "fencing_token"),
    ("POST", "/work/complete", {"json": {"task_id": "t0", "fencing_token": "1"}}, 422,
     "fencing_token"),
    ("POST", "/work/complete", {"json": {"outcomes": []}}, 422, "outcomes"),
    ("POST", "/work/complete?next=1", {"json": {"task_id": "t0", "fencing_token": 1}}, 400,
     "unknown query parameter"),
    ("POST", "/session/heartbeat", {"json": {"status": "asleep"}}, 422, "status"),
    ("POST", "/session/heartbeat", {"content": b"[1"}, 422, "malformed JSON"),
    ("POST", "/session/heartbeat?x=1", {}, 400, "unknown query parameter"),
    ("POST", "/work", {"content": b"{not json"}, 422, "malformed JSON"),
    ("POST", "/work", {"json": {"tasks": []}}, 422, "tasks"),
    ("POST", "/work", {"json": {"id": "t1", "type": "noop", "priority": 99}}, 422,
     "priority"),
    ("POST", "/work", {"json": [{"id": "t1", "type": "noop"}]}, 422, "validation_error"),
    ("POST", "/work", {"content": b'{"id": "t1", "type": "noop", "input": '
                       b'123456789012345678901234}'}, 422, "64 bits"),
    ("POST", "/work?wait=1", {"json": {"id": "t1", "type": "noop"}}, 400,
     "unknown query parameter"),
    ("POST", "/work", {"json": {"id": "t1", "type": "noop"},
                       "headers": {"content-type": "text/plain"}}, 422, "valid dictionary"),
]


@pytest.mark.parametrize(("method", "path", "kw", "status", "says"), MALFORMED)
def test_malformed_calls_fall_through_to_the_routes_answer(
        lane: tuple[LiveServer, Counted], method: str, path: str, kw: dict[str, Any],
        status: int, says: str) -> None:
    server, behind = lane
    with Wire(server.url, server.token) as op:
        token = op.register("w1", ["noop"])
        op.ok("POST", "/work", json={"id": "t0", "type": "noop"})
        with Wire(server.url, token) as me:
            held = me.ok("GET", "/work/request")
            assert held["lease"]["fencing_token"] == 1
            seen = behind.calls
            headers = {"content-type": "application/json", **kw.get("headers", {})}
            r = me.call(method, path, headers=headers,
                        **{k: v for k, v in kw.items() if k != "headers"})
            assert behind.calls == seen + 1, "served by the lane"
            assert r.status_code == status, r.text
            assert says in r.text
        (task,) = op.ok("GET", "/work")["tasks"]
        assert task["status"] == "in_progress" and task["attempts"] == 1  # nothing changed
