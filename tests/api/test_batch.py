"""Fewer round trips per task (issue 16), over real HTTP on both stores and both policies:
`GET /work/request?max=N` claims up to N tasks in one step, `POST /work/complete` takes a
batch of outcomes and may claim the next task(s) in the same call; phase 1's single calls
answer exactly as before."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from unified_swarm.config import Settings

from ..conftest import LiveServer
from .wire import Wire


@pytest.fixture(params=["learned", "fifo"])
def server(request: pytest.FixtureRequest, store_settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(store_settings.replace(scheduler=request.param)).start()
    yield live
    live.stop()


def _add(op: Wire, n: int, prefix: str = "t") -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    op.ok("POST", "/work", json={"tasks": [{"id": i, "type": "noop"} for i in ids]})
    return ids


def _done(c: dict[str, dict[str, object]]) -> dict[str, object]:
    return {"task_id": c["task"]["id"], "fencing_token": c["lease"]["fencing_token"]}


def test_request_max_claims_up_to_its_room_in_one_call(server: LiveServer) -> None:
    with Wire(server.url, server.token) as op:
        token = op.register("w1", ["noop"], max_concurrent_tasks=3)
        ids = _add(op, 5)
        with Wire(server.url, token) as me:
            got = me.ok("GET", "/work/request", params={"max": 10})["claimed"]
            assert len(got) == 3  # its max_concurrent_tasks, not the 10 asked
            claimed = [c["task"]["id"] for c in got]
            assert len(set(claimed)) == 3 and set(claimed) <= set(ids)
            assert all(c["lease"]["session_id"] == "w1" and c["lease"]["fencing_token"] == 1
                       for c in got)
            assert me.call("GET", "/work/request", params={"max": 2}).status_code == 409
        held = op.ok("GET", "/work", params={"status": "in_progress"})["tasks"]
        assert sorted(t["id"] for t in held) == sorted(claimed)


def test_request_max_waits_for_the_first_and_answers_204_without_work(
        server: LiveServer) -> None:
    with Wire(server.url, server.token) as op:
        token = op.register("w1", ["noop"], max_concurrent_tasks=4)
        with Wire(server.url, token) as me:
            assert me.call("GET", "/work/request", params={"max": 4}).status_code == 204
            assert me.call("GET", "/work/request",
                           params={"max": 4, "wait": 0.2}).status_code == 204
            _add(op, 1)
            one = me.ok("GET", "/work/request", params={"max": 4, "wait": 5})["claimed"]
            assert [c["task"]["id"] for c in one] == ["t0"]


def test_complete_next_makes_one_request_per_task(server: LiveServer) -> None:
    with Wire(server.url, server.token) as op:
        token = op.register("w1", ["noop"])
        ids = _add(op, 3)
        with Wire(server.url, token) as me:
            cur = me.ok("GET", "/work/request")  # phase 1's shape
            seen = [cur["task"]["id"]]
            for _ in range(len(ids)):
                body = {**_done(cur), "result": {"ok": True}, "next": True}
                rec = me.ok("POST", "/work/complete", json=body)
                assert rec["task"]["status"] == "completed" and rec["duplicate"] is False
                if not rec["claimed"]:
                    break
                (cur,) = rec["claimed"]
                seen.append(cur["task"]["id"])
            assert sorted(seen) == ids
            # the last complete found nothing next: an empty list, and nothing was lost
            assert rec["claimed"] == []
        counts = op.ok("GET", "/swarm/status")
        assert counts["tasks_completed"] == 3


def test_batch_of_outcomes_then_max_and_a_retry_never_acts_twice(server: LiveServer) -> None:
    with Wire(server.url, server.token) as op:
        token = op.register("w1", ["noop"], max_concurrent_tasks=3)
        _add(op, 5)
        with Wire(server.url, token) as me:
            first = me.ok("GET", "/work/request", params={"max": 3})["claimed"]
            outcomes = [{**_done(c), "result": i} for i, c in enumerate(first)]
            batch = me.ok("POST", "/work/complete", json={"outcomes": outcomes, "max": 3})
            assert [r["duplicate"] for r in batch["results"]] == [False] * 3
            assert [r["task"]["result"] for r in batch["results"]] == [0, 1, 2]
            assert len(batch["claimed"]) == 2  # what was left
            # the same batch again (its answer was lost): recorded once, nothing moves
            again = me.ok("POST", "/work/complete", json={"outcomes": outcomes})
            assert [r["duplicate"] for r in again["results"]] == [True] * 3
            assert again["claimed"] == []
            # the same task ids with another result: refused one by one, as single calls are
            other = [{**o, "result": "else"} for o in outcomes]
            mismatch = me.ok("POST", "/work/complete", json={"outcomes": other})
            assert [r["error"]["code"] for r in mismatch["results"]] == ["outcome_mismatch"] * 3
        shown = op.ok("GET", f"/work/{first[0]['task']['id']}")
        assert [h["outcome"] for h in shown["history"]] == ["completed"]
        assert op.ok("GET", "/swarm/status")["tasks_completed"] == 3


def test_one_refused_outcome_does_not_lose_the_others(server: LiveServer) -> None:
    with Wire(server.url, server.token) as op:
        token = op.register("w1", ["noop"], max_concurrent_tasks=2)
        _add(op, 2)
        with Wire(server.url, token) as me:
            a, b = me.ok("GET", "/work/request", params={"max": 2})["claimed"]
            stale = {**_done(b), "fencing_token": 7}
            res = me.ok("POST", "/work/complete", json={"outcomes": [_done(a), stale]})
            assert res["results"][0]["task"]["status"] == "completed"
            assert set(res["results"][1]) == {"error"}
            assert res["results"][1]["error"]["code"] in ("lease_lost", "forbidden")
            unknown = {"task_id": "nope", "fencing_token": 1}
            res = me.ok("POST", "/work/complete", json={"outcomes": [unknown, _done(b)]})
            assert res["results"][0]["error"]["code"] == "not_found"
            assert res["results"][1]["task"]["status"] == "completed"
            # a single complete asking for the next one is refused as a whole, as before,
            # and claims nothing: its caller would never hear of what it claimed
            _add(op, 1, prefix="more")
            r = me.call("POST", "/work/complete", json={**unknown, "next": True})
            assert r.status_code == 404
            r = me.call("POST", "/work/complete", json={**_done(a), "fencing_token": 9,
                                                        "next": True})
            assert r.status_code in (403, 409)
            # nor does a batch whose every outcome was refused
            res = me.ok("POST", "/work/complete", json={"outcomes": [unknown], "max": 2})
            assert res["claimed"] == [] and res["results"][0]["error"]["code"] == "not_found"
        (more,) = op.ok("GET", "/work", params={"status": "ready"})["tasks"]
        assert more["id"] == "more0" and more["attempts"] == 0


def test_phase_one_calls_answer_exactly_as_before(server: LiveServer) -> None:
    with Wire(server.url, server.token) as op:
        token = op.register("w1", ["noop"])
        _add(op, 1)
        with Wire(server.url, token) as me:
            got = me.ok("GET", "/work/request", params={"wait": 1})
            assert set(got) == {"task", "lease"}
            rec = me.ok("POST", "/work/complete", json={**_done(got), "result": None})
            assert set(rec) == {"task", "duplicate"}


@pytest.mark.parametrize(("method", "path", "kw"), [
    ("GET", "/work/request", {"params": {"max": 0}}),
    ("GET", "/work/request", {"params": {"max": 1001}}),
    ("GET", "/work/request", {"params": {"max": "two"}}),
    ("POST", "/work/complete", {"json": {"outcomes": []}}),
    ("POST", "/work/complete", {"json": {"outcomes": [{"task_id": "a"}]}}),
    ("POST", "/work/complete", {"json": {"task_id": "a", "fencing_token": 1, "max": 0}}),
    ("POST", "/work/complete", {"json": {"task_id": "a", "fencing_token": 1, "next": 1}}),
    ("POST", "/work/complete", {"json": {"outcomes": [{"task_id": "a", "fencing_token": 1}],
                                         "max": 1001}}),
])
def test_bad_batches_are_refused_and_change_nothing(sqlite_server: LiveServer, method: str,
                                                     path: str, kw: dict[str, object]) -> None:
    with Wire(sqlite_server.url, sqlite_server.token) as op:
        token = op.register("w1", ["noop"])
        _add(op, 1)
        with Wire(sqlite_server.url, token) as me:
            r = me.call(method, path, **kw)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == "validation_error"
        assert op.ok("GET", "/work/t0")["task"]["status"] == "ready"
