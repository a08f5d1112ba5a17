"""What agents spend, over real HTTP on both stores: usage sent with progress, complete and
fail is kept on the attempt and summed per session, task type and swarm (GET /work/{id},
GET /session/{id}, /swarm/status, /metrics); bad usage is a clear 4xx that records nothing;
a rate-limited session shows it until its next normal report."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import LiveServer
from .wire import Wire

RUN = {"cost_usd": 0.0125, "input_tokens": 1200, "output_tokens": 340,
       "cache_creation_input_tokens": 50, "cache_read_input_tokens": 900, "num_turns": 3}


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[LiveServer]:
    yield live_server


def claim(me: Wire) -> tuple[str, int]:
    got = me.ok("GET", "/work/request")
    return got["task"]["id"], got["lease"]["fencing_token"]


def metrics(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{server.url}/metrics", timeout=10,
                     headers={"authorization": f"Bearer {server.token}"}).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_usage_is_kept_on_the_attempt_and_summed(server: LiveServer) -> None:
    with Wire(server.url, server.token) as op:
        token = op.register("w1", [])
        op.ok("POST", "/work", json={"tasks": [{"id": "a", "type": "review"},
                                               {"id": "b", "type": "build"}]})
        with Wire(server.url, token) as me:
            tid, fence = claim(me)
            me.ok("POST", "/work/progress", json={
                "task_id": tid, "fencing_token": fence, "progress": 0.5,
                "usage": {"cost_usd": 0.01, "input_tokens": 1000}})
            done = me.ok("POST", "/work/complete", json={
                "task_id": tid, "fencing_token": fence, "result": "ok", "usage": RUN})
            assert done["duplicate"] is False
            tid2, fence2 = claim(me)
            me.ok("POST", "/work/fail", json={
                "task_id": tid2, "fencing_token": fence2, "error": "budget", "retry": False,
                "usage": {"cost_usd": 0.5, "output_tokens": 10, "num_turns": 1}})
        (attempt,) = op.ok("GET", f"/work/{tid}")["history"]
        assert attempt["usage"] == RUN
        session = op.ok("GET", "/session/w1")["session"]
        assert session["usage"] == {"cost_usd": 0.5125, "input_tokens": 1200,
                                    "output_tokens": 350, "cache_creation_input_tokens": 50,
                                    "cache_read_input_tokens": 900, "num_turns": 4,
                                    "attempts": 2}
        status = op.ok("GET", "/swarm/status")
        assert status["usage"] == session["usage"]
        type_of = {"a": "review", "b": "build"}
        # the costliest type first: the failed attempt's
        assert list(status["usage_by_type"]) == [type_of[tid2], type_of[tid]]
        assert status["usage_by_type"][type_of[tid]]["cost_usd"] == 0.0125
    m = metrics(server)
    assert m[("swarm_agent_cost_usd_total", ())] == pytest.approx(0.5125)
    assert m[("swarm_agent_tokens_total", (("kind", "input"),))] == 1200
    assert m[("swarm_agent_tokens_total", (("kind", "cache_read"),))] == 900
    assert m[("swarm_agent_turns_total", ())] == 4
    assert m[("swarm_agent_usage_attempts_total", ())] == 2


@pytest.mark.parametrize("bad", [
    {"cost_usd": -1}, {"cost_usd": "0.1"}, {"input_tokens": 1.5}, {"num_turns": True},
    {"tokens": 5}, {"output_tokens": 10**13}, [1, 2], "cheap",
])
def test_bad_usage_is_refused_and_records_nothing(server: LiveServer, bad: object) -> None:
    with Wire(server.url, server.token) as op:
        token = op.register("w1", [])
        op.ok("POST", "/work", json={"id": "a", "type": "build"})
        with Wire(server.url, token) as me:
            tid, fence = claim(me)
            for path, extra in (("/work/complete", {"result": 1}),
                                ("/work/fail", {"error": "x"}),
                                ("/work/progress", {"progress": 0.5})):
                r = me.call("POST", path, json={"task_id": tid, "fencing_token": fence,
                                                "usage": bad, **extra})
                assert r.status_code == 422, (path, r.text)
                assert r.json()["error"]["code"] == "validation_error"
                assert "usage" in r.json()["error"]["message"]
            task = op.ok("GET", f"/work/{tid}")
            assert task["task"]["status"] == "in_progress"
            assert task["task"]["progress"]["value"] == 0.0
            assert task["history"][0]["usage"] is None
            assert op.ok("GET", "/session/w1")["session"]["usage"] is None
            assert op.ok("GET", "/swarm/status")["usage"]["attempts"] == 0
            # and the call without usage still works as it always did
            me.ok("POST", "/work/complete", json={"task_id": tid, "fencing_token": fence})
        assert op.ok("GET", "/session/w1")["session"]["usage"] is None


def test_a_batch_of_outcomes_carries_usage_each(server: LiveServer) -> None:
    with Wire(server.url, server.token) as op:
        token = op.register("w1", [], max_concurrent_tasks=2)
        op.ok("POST", "/work", json={"tasks": [{"id": "a", "type": "t"},
                                               {"id": "b", "type": "t"}]})
        with Wire(server.url, token) as me:
            got = me.ok("GET", "/work/request", params={"max": 2})["claimed"]
            outcomes = [{"task_id": c["task"]["id"],
                         "fencing_token": c["lease"]["fencing_token"],
                         "usage": {"cost_usd": 0.25, "num_turns": 1}} for c in got]
            r = me.call("POST", "/work/complete", json={
                "outcomes": [outcomes[0], {**outcomes[1], "usage": {"cost_usd": -2}}]})
            assert r.status_code == 422  # the whole batch is refused: nothing recorded
            assert op.ok("GET", "/swarm/status")["tasks_completed"] == 0
            me.ok("POST", "/work/complete", json={"outcomes": outcomes})
        assert op.ok("GET", "/session/w1")["session"]["usage"]["cost_usd"] == 0.5
        assert op.ok("GET", "/swarm/status")["usage_by_type"]["t"]["attempts"] == 2


def test_rate_limited_until_the_next_normal_report(server: LiveServer) -> None:
    with Wire(server.url, server.token) as op:
        token = op.register("w1", [])
        op.ok("POST", "/work", json={"id": "a", "type": "build"})
        with Wire(server.url, token) as me:
            tid, fence = claim(me)
            base = {"task_id": tid, "fencing_token": fence, "progress": 0.2}
            for bad in ({"retry_in_s": -1}, {"error_status": 42}, {"wait": 3}, 7):
                r = me.call("POST", "/work/progress", json={**base, "rate_limit": bad})
                assert r.status_code == 422, r.text
            assert op.ok("GET", "/session/w1")["session"]["rate_limited"] is None
            me.ok("POST", "/work/progress", json={**base, "message": "waiting on the API",
                                                  "rate_limit": {
                                                      "attempt": 2, "max_retries": 10,
                                                      "retry_in_s": 4, "error_status": 429,
                                                      "error": "rate_limit"}})
            limited = op.ok("GET", "/session/w1")["session"]["rate_limited"]
            assert limited["task_id"] == tid and limited["error_status"] == 429
            assert limited["attempt"] == 2 and limited["retry_in_s"] == 4
            assert limited["at"].endswith("Z") and limited["retry_at"] > limited["at"]
            assert metrics(server)[("swarm_sessions_rate_limited", ())] == 1
            me.ok("POST", "/work/progress", json={**base, "progress": 0.3})
            assert op.ok("GET", "/session/w1")["session"]["rate_limited"] is None
    m = metrics(server)
    assert m[("swarm_sessions_rate_limited", ())] == 0
    assert m[("swarm_rate_limit_waits_total", ())] == 1
