"""A real `swarm worker --executor claude` (the stand-in CLI of fake_claude.py) against a real
server on both stores: what the run spent reaches the attempt and the session's sums, a
failed run's too; a `system/api_retry` shows the worker's session as rate-limited until the
run goes on."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from unified_swarm.client import Client

from .conftest import Workers, status_is, wait_for

FAKE = Path(__file__).resolve().parent / "fake_claude.py"
SPENT: dict[str, float] = {"cost_usd": 0.0123, "input_tokens": 10, "output_tokens": 20,
         "cache_creation_input_tokens": 5, "cache_read_input_tokens": 30, "num_turns": 3}


@pytest.fixture
def claude(tmp_path: Path) -> Path:
    binary = tmp_path / "claude"
    binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    binary.chmod(0o755)
    return binary


@pytest.fixture
def pool(live_server: LiveServer, tmp_path: Path) -> Iterator[Workers]:
    workers = Workers(live_server, tmp_path)
    try:
        yield workers
    finally:
        workers.close()


@pytest.fixture
def op(live_server: LiveServer) -> Iterator[Client]:
    with Client(live_server.url, live_server.token) as client:
        yield client


def test_what_a_run_spent_is_kept_and_summed(op: Client, pool: Workers,
                                             claude: Path) -> None:
    op.add_tasks([{"id": "ok", "type": "build", "input": {"prompt": "Fix it"}},
                  {"id": "also", "type": "build", "input": {"prompt": "Fix that"}}])
    worker = pool.start("w1", "--executor", "claude", "--claude-bin", str(claude), "--burst",
                        env={"FAKE_CLAUDE_MODE": "success"})
    wait_for(lambda: status_is(op, "ok", "completed"), "ok to complete", within=60)
    assert worker.wait(60) == 0
    # two runs of the same figures, summed
    twice = {name: value * 2 for name, value in SPENT.items()}
    (attempt,) = op.get_task("ok")["history"]
    assert attempt["usage"] == SPENT
    session = op.session("w1")
    assert session["usage"] == {**twice, "attempts": 2}
    status = op.status()
    assert status["usage"] == session["usage"]
    assert status["usage_by_type"] == {"build": session["usage"]}


def test_a_failed_run_reports_what_it_spent(op: Client, pool: Workers, claude: Path) -> None:
    op.add_task("build", id="bad", input={"prompt": "x"}, max_attempts=1)
    worker = pool.start("w1", "--executor", "claude", "--claude-bin", str(claude), "--burst",
                        env={"FAKE_CLAUDE_MODE": "error"})
    wait_for(lambda: status_is(op, "bad", "failed"), "bad to fail", within=60)
    assert worker.wait(60) == 0
    (attempt,) = op.get_task("bad")["history"]
    assert attempt["outcome"] == "failed" and attempt["usage"] == SPENT


def test_a_rate_limited_run_shows_on_the_session(op: Client, pool: Workers, claude: Path,
                                                 tmp_path: Path) -> None:
    go = tmp_path / "go"
    op.add_task("build", id="t", input={"prompt": "x"})
    pool.start("w1", "--executor", "claude", "--claude-bin", str(claude), "--burst",
               env={"FAKE_CLAUDE_MODE": "retry_wait", "FAKE_CLAUDE_GO": str(go)})
    limited = wait_for(lambda: op.session("w1").get("rate_limited") if status_is(
        op, "t", "in_progress") else None, "the session to show the rate limit", within=60)
    assert limited["task_id"] == "t" and limited["error_status"] == 429
    assert limited["retry_in_s"] == 4.0 and limited["attempt"] == 1
    assert "waiting on the API" in (op.get_task("t")["task"]["progress"]["message"] or "")
    go.touch()  # the API answers again: the next event clears it
    wait_for(lambda: status_is(op, "t", "completed"), "t to complete", within=60)
    assert op.session("w1").get("rate_limited") is None
