"""The pure half of the SDK: request building, error mapping, backoff arithmetic."""

from __future__ import annotations

import pytest

from unified_swarm import errors
from unified_swarm.client import RetryPolicy, base


def test_errors_map_back_by_code_then_status() -> None:
    body = b'{"error": {"code": "lease_lost", "message": "token 3 is stale"}}'
    exc = base.error_from(409, {}, body)
    assert type(exc) is errors.LeaseLost and exc.message == "token 3 is stale"
    assert type(base.error_from(409, {}, b'{"error": {"code": "new_kind", "message": "m"}}')
                ) is errors.Conflict
    proxy = base.error_from(503, {"retry-after": "7"}, b"<html>bad gateway</html>")
    assert type(proxy) is errors.Unavailable and proxy.retry_after == 7.0
    assert "bad gateway" in proxy.message
    degraded = base.error_from(503, {}, b'{"status": "degraded", "error": "store down"}')
    assert degraded.message == "store down"
    assert type(base.error_from(418, {}, b"")) is errors.SwarmError


def test_retry_after_as_seconds_or_http_date() -> None:
    assert base.parse_retry_after("2") == 2.0
    assert base.parse_retry_after(None) is None and base.parse_retry_after("soon") is None
    at = base.parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0)
    assert at == 10.0


def test_backoff_grows_is_capped_and_respects_the_budget() -> None:
    p = RetryPolicy(attempts=6, backoff=0.5, multiplier=2, max_backoff=2, budget=10, jitter=0)
    assert [p.pause(n, None, 0.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 2.0, 2.0, None]
    assert p.pause(1, 3.0, 0.0) == 3.0  # Retry-After lengthens the pause
    assert p.pause(1, 30.0, 0.0) is None  # ... but never past the budget
    assert p.pause(2, None, 9.5) is None
    jittered = RetryPolicy(backoff=1, jitter=0.2)
    assert jittered.pause(1, None, 0, rand=0.0) == pytest.approx(0.8)
    assert jittered.pause(1, None, 0, rand=0.99) == pytest.approx(1.196)
    with pytest.raises(errors.InvalidInput):
        RetryPolicy(attempts=0)


def test_long_poll_read_timeout_exceeds_wait() -> None:
    args = base.request_args(base.request_work(45), "tok", timeout=5)
    assert args["timeout"].read > 45 and args["timeout"].connect == 5
    assert args["headers"]["authorization"] == "Bearer tok"
    assert args["params"] == {"wait": 45}
    assert "authorization" not in base.request_args(base.healthz(), "tok", 5)["headers"]


def test_bodies_and_paths() -> None:
    args = base.request_args(base.put_knowledge("a b/c", {"x": 1}, None, ["t"]), None, 5)
    assert args["url"] == "/knowledge/a%20b/c" and args["method"] == "PUT"
    assert args["content"] == b'{"content":{"x":1},"tags":["t"]}'
    assert base.request_args(base.get_task("a/b"), None, 5)["url"] == "/work/a%2Fb"
    assert "content" not in base.request_args(base.cancel("x", None), None, 5)
    assert base.request_args(base.complete("x", 1, None), None, 5)["content"] == (
        b'{"task_id":"x","fencing_token":1,"result":null}')
    task = base.task_in("build", id="t", priority=None, dependencies=("a",))
    assert task == {"type": "build", "id": "t", "dependencies": ["a"]}
    with pytest.raises(errors.InvalidInput):
        base.get_task("")
    for wait in (-1, float("nan"), 1e308):
        with pytest.raises(errors.InvalidInput):
            base.request_work(wait)
    with pytest.raises(errors.InvalidInput):
        base.encode({"x": float("inf")})
