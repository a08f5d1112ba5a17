"""Split and merge over real HTTP, on both stores: the wire shape of POST /work/{id}/split,
the parent completing once from its subtasks, the refusals."""

from __future__ import annotations

from typing import Any

from tests.api.wire import Wire
from tests.conftest import LiveServer


def _holder(live: LiveServer, sid: str = "w1") -> Wire:
    with Wire(live.url, live.token) as op:
        token = op.register(sid, [], max_concurrent_tasks=20)
    return Wire(live.url, token)


def _claim(w: Wire, tid: str) -> dict[str, Any]:
    got: dict[str, Any] = w.ok("POST", "/work/claim", json={"task_id": tid})
    return got


def test_split_then_merge_over_http(live_server: LiveServer) -> None:
    with Wire(live_server.url, live_server.token) as op, _holder(live_server) as w:
        op.ok("POST", "/work", json={"id": "big", "type": "build", "estimated_hours": 20})
        claimed = _claim(w, "big")
        assert claimed["task"]["split_suggested"] is True
        token = claimed["lease"]["fencing_token"]
        body = {"fencing_token": token, "merge": "list",
                "subtasks": [{"id": "part-2", "type": "build", "dependencies": ["part-1"]},
                             {"id": "part-1", "type": "build"}]}
        r = w.call("POST", "/work/big/split", json=body)
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["task"]["status"] == "waiting" and out["task"]["assigned_to"] is None
        assert out["task"]["lease_expires_at"] is None
        assert [t["id"] for t in out["subtasks"]] == ["part-2", "part-1"]
        assert {t["parent_id"] for t in out["subtasks"]} == {"big"}
        again = w.call("POST", "/work/big/split", json=body)  # a retry: the same answer
        assert again.status_code == 201 and again.json()["duplicate"] is True
        assert [t["id"] for t in again.json()["subtasks"]] == ["part-2", "part-1"]
        other = w.call("POST", "/work/big/split", json={**body, "merge": "object"})
        assert other.status_code == 409
        late = w.call("POST", "/work/complete", json={"task_id": "big", "fencing_token": token})
        assert late.status_code == 409
        history = op.ok("GET", "/work/big")["history"]
        assert [a["outcome"] for a in history] == ["split"]
        for tid, result in (("part-1", "first"), ("part-2", {"second": True})):
            c = _claim(w, tid)
            assert c["task"]["split_suggested"] is False
            if tid == "part-2":  # its dependency's result comes with it
                assert c["task"]["context"]["dependencies"] == {"part-1": "first"}
            w.ok("POST", "/work/complete", json={
                "task_id": tid, "fencing_token": c["lease"]["fencing_token"], "result": result})
        parent = op.ok("GET", "/work/big")["task"]
        assert parent["status"] == "completed"
        assert parent["result"] == [{"second": True}, "first"]


def test_split_with_a_merge_task_over_http(live_server: LiveServer) -> None:
    with Wire(live_server.url, live_server.token) as op, _holder(live_server) as w:
        op.ok("POST", "/work", json={"id": "p", "type": "research"})
        token = _claim(w, "p")["lease"]["fencing_token"]
        out = w.ok("POST", "/work/p/split", json={
            "fencing_token": token, "merge": {"task": {"type": "research", "id": "p-merge",
                                                       "title": "merge"}},
            "subtasks": [{"id": "a", "type": "research"}, {"id": "b", "type": "research"}]})
        assert out["subtasks"][-1]["id"] == "p-merge"
        assert out["subtasks"][-1]["dependencies"] == ["a", "b"]
        for tid in ("a", "b"):
            c = _claim(w, tid)
            w.ok("POST", "/work/complete", json={
                "task_id": tid, "fencing_token": c["lease"]["fencing_token"], "result": tid * 2})
        m = _claim(w, "p-merge")
        assert m["task"]["context"]["dependencies"] == {"a": "aa", "b": "bb"}
        w.ok("POST", "/work/complete", json={
            "task_id": "p-merge", "fencing_token": m["lease"]["fencing_token"],
            "result": {"merged": "aabb"}})
        assert op.ok("GET", "/work/p")["task"]["result"] == {"merged": "aabb"}


def test_split_refusals_change_nothing(live_server: LiveServer) -> None:
    with Wire(live_server.url, live_server.token) as op, _holder(live_server) as w, \
            _holder(live_server, "w2") as other:
        op.ok("POST", "/work", json={"id": "p", "type": "build"})
        token = _claim(w, "p")["lease"]["fencing_token"]
        sub = [{"id": "s", "type": "build"}]
        cases = [
            (other, {"fencing_token": token, "subtasks": sub}, (403, 409)),  # not the holder
            (w, {"fencing_token": token + 1, "subtasks": sub}, (409,)),  # stale token
            (w, {"fencing_token": token, "subtasks": []}, (400, 422)),
            (w, {"fencing_token": token, "subtasks": sub, "merge": "sum"}, (400, 422)),
            (w, {"fencing_token": token, "subtasks": [
                {"id": "s", "type": "build", "dependencies": ["p"]}]}, (400,)),
            (op, {"fencing_token": token, "subtasks": sub}, (401, 403)),  # operator: no
        ]
        for caller, body, statuses in cases:
            r = caller.call("POST", "/work/p/split", json=body)
            assert r.status_code in statuses, (body, r.status_code, r.text)
        assert w.call("POST", "/work/nope/split",
                      json={"fencing_token": 1, "subtasks": sub}).status_code == 404
        assert op.ok("GET", "/work/p")["task"]["status"] == "in_progress"
        assert op.call("GET", "/work/s").status_code == 404


def test_cancelling_a_split_parent_over_http_leaves_nothing_runnable(
        live_server: LiveServer) -> None:
    with Wire(live_server.url, live_server.token) as op, _holder(live_server) as w:
        op.ok("POST", "/work", json={"id": "p", "type": "build"})
        token = _claim(w, "p")["lease"]["fencing_token"]
        w.ok("POST", "/work/p/split", json={"fencing_token": token, "subtasks": [
            {"id": "a", "type": "build"}, {"id": "b", "type": "build"}]})
        a = _claim(w, "a")
        op.ok("POST", "/work/p/cancel", json={"reason": "changed plans"})
        statuses = {t["id"]: t["status"] for t in op.ok("GET", "/work")["tasks"]}
        assert statuses == {"p": "cancelled", "a": "cancelled", "b": "cancelled"}
        late = w.call("POST", "/work/complete", json={
            "task_id": "a", "fencing_token": a["lease"]["fencing_token"], "result": 1})
        assert late.status_code == 409
        assert w.call("GET", "/work/request").status_code == 204
