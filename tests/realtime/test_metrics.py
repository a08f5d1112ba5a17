"""GET /metrics: Prometheus text that parses, gauges from the store, counters that move."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveServer
from tests.dashboard.scene import Swarm
from unified_swarm.config import Settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: LiveServer, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token or server.token}"}
    r = httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(server: LiveServer, check: Callable[[Samples], bool], timeout: float = 5.0
             ) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(server)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_metrics_take_the_operator_token(sqlite_server: LiveServer) -> None:
    url = f"{sqlite_server.url}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    swarm = Swarm(sqlite_server.url, sqlite_server.token)
    swarm.register("s", ["build"])
    r = httpx.get(url, headers={"Authorization": f"Bearer {swarm.tokens['s']}"})
    assert r.status_code == 403
    swarm.close()


def test_public_metrics_need_no_token(settings: Settings) -> None:
    server = LiveServer(settings.replace(public_metrics=True)).start()
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 200
    finally:
        server.stop()


def test_counters_and_histograms_move(sqlite_server: LiveServer) -> None:
    swarm = Swarm(sqlite_server.url, sqlite_server.token)
    before = scrape(sqlite_server)
    assert value(before, "swarm_task_claims_total") == 0
    swarm.register("s", ["build"])
    swarm.add({"id": "a", "type": "build"}, {"id": "b", "type": "build", "max_attempts": 1},
              {"id": "c", "type": "build", "dependencies": ["a"]})
    swarm.complete("s", "a", swarm.claim("s", "a"), {"ok": True})
    swarm.fail("s", "b", swarm.claim("s", "b"), "broken")
    after = wait_for(sqlite_server, lambda m: value(m, "swarm_task_failures_total") == 1)
    swarm.close()
    assert value(after, "swarm_task_claims_total") == 2
    assert value(after, "swarm_task_completions_total") == 1
    assert value(after, "swarm_task_failures_total") == 1
    assert value(after, "swarm_task_assignment_latency_seconds_count") == 2
    assert value(after, "swarm_task_duration_seconds_count") == 1
    assert value(after, "swarm_events_total", type="task.added") == 3
    assert value(after, "swarm_events_total", type="task.ready") == 1
    assert value(after, "swarm_tasks", status="completed") == 1
    assert value(after, "swarm_tasks", status="failed") == 1
    assert value(after, "swarm_tasks", status="ready") == 1
    assert value(after, "swarm_sessions", status="idle") == 1
    assert value(after, "swarm_sessions", status="offline") == 0
    assert value(after, "swarm_event_last_seq") >= 9


def test_an_expired_lease_is_counted(sqlite_server: LiveServer) -> None:
    """The holder goes silent: its lease runs out and the task goes back to the queue."""
    swarm = Swarm(sqlite_server.url, sqlite_server.token)
    swarm.register("quiet", ["build"], heartbeat_interval=0.1)
    swarm.add({"id": "x", "type": "build"})
    swarm.claim("quiet", "x")
    # the counter moves in the requeue's step, the gauges with the next count read: wait
    # for both (on a loaded machine they can be a scrape apart)
    got = wait_for(sqlite_server, lambda m: value(m, "swarm_lease_expiries_total") >= 1
                   and value(m, "swarm_tasks", status="ready") >= 1)
    swarm.close()
    assert value(got, "swarm_lease_expiries_total") == 1
    assert value(got, "swarm_tasks", status="ready") == 1
    assert sum(v for (name, _), v in got.items() if name == "swarm_task_requeues_total") == 1


def test_without_prometheus_client_metrics_say_how_to_install(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    server = LiveServer(settings).start()
    try:
        r = httpx.get(f"{server.url}/metrics",
                      headers={"Authorization": f"Bearer {server.token}"})
        assert r.status_code == 501
        assert "pip install 'unified-swarm[metrics]'" in r.json()["error"]["message"]
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        server.stop()
