"""`swarm worker` as real processes against a real server: crashes, pauses, signals,
directives, concurrency, and what a run leaves readable. Workers whose lease must run out
heart-beat every 0.5 s (leases of 1.5 s), the others every second. Every wait polls the
API or a worker's log, with a deadline."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer
from unified_swarm.client import Client
from unified_swarm.worker import PythonExecutor, Worker, WorkerConfig

from .conftest import (
    FAST_BEAT,
    Workers,
    held_by,
    session_or_none,
    status_is,
    swarm_command,
    wait_for,
)

#: the shell executor runs tests/worker/task.sh (sleep input.seconds, log, print JSON)
TASK = ("--command", "sh tests/worker/task.sh")


def effects(tmp_path: Path) -> list[tuple[str, int, str]]:
    """Attempts that really ran to their end: (task, fencing token, worker)."""
    path = tmp_path / "effects.log"
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(r[0], int(r[1]), r[2]) for r in rows]


def outcomes(op: Client, task_id: str) -> list[tuple[str, str | None]]:
    return [(a["session_id"], a["outcome"]) for a in op.get_task(task_id)["history"]]


@pytest.mark.slow
def test_a_killed_workers_task_is_finished_by_another_exactly_once(
        op: Client, workers: Workers, tmp_path: Path) -> None:
    op.add_task("build", id="k1", input={"seconds": 1.0})
    wa = workers.start("wa", *TASK, beat=FAST_BEAT)
    wait_for(lambda: held_by(op, "k1", "wa"), "wa to claim k1")
    wa.signal_group(signal.SIGKILL)
    assert wa.wait() == -signal.SIGKILL
    workers.start("wb", *TASK)
    done = wait_for(lambda: status_is(op, "k1", "completed"), "k1 to complete", within=20)
    assert outcomes(op, "k1") == [("wa", "expired"), ("wb", "completed")]
    assert done["task"]["result"] == {"by": "wb", "token": 2, "task": "k1"}
    # wb's attempt ran once; wa's orphaned child may finish too (a SIGKILLed worker cannot
    # stop it), but nothing of it is recorded: the fencing token decides
    assert [e for e in effects(tmp_path) if e[2] == "wb"] == [("k1", 2, "wb")]


@pytest.mark.slow
def test_sigterm_drains_finishes_the_task_and_leaves(op: Client, workers: Workers) -> None:
    op.add_tasks([{"type": "build", "id": "d1", "input": {"seconds": 1.0}},
                  {"type": "build", "id": "d2", "input": {"seconds": 0}}])
    wd = workers.start("wd", *TASK)
    wait_for(lambda: held_by(op, "d1", "wd"), "wd to claim d1")
    wd.send_signal(signal.SIGTERM)
    assert wd.wait() == 0
    assert op.get_task("d1")["task"]["result"]["by"] == "wd"
    assert outcomes(op, "d1") == [("wd", "completed")]
    assert op.get_task("d2")["task"]["status"] == "ready"  # a draining worker takes nothing
    assert op.session("wd")["status"] == "offline"
    log = wd.log()
    assert "draining (SIGTERM" in log and "deregistered session wd" in log


@pytest.mark.slow
def test_a_second_signal_gives_the_task_back(op: Client, workers: Workers) -> None:
    op.add_task("build", id="g1", input={"seconds": 30})
    wg = workers.start("wg", *TASK)
    wait_for(lambda: held_by(op, "g1", "wg"), "wg to claim g1")
    wg.send_signal(signal.SIGINT)
    wg.wait_log("draining (SIGINT")
    wg.send_signal(signal.SIGINT)
    assert wg.wait(10) == 130
    detail = op.get_task("g1")
    assert detail["task"]["status"] == "ready" and detail["task"]["attempts"] == 1
    (attempt,) = detail["history"]
    assert attempt["outcome"] == "failed" and "given back by wg" in (attempt["error"] or "")
    assert op.session("wg")["status"] == "offline"


@pytest.mark.slow
def test_a_paused_workers_late_result_is_refused(op: Client, workers: Workers,
                                                 tmp_path: Path) -> None:
    op.add_task("build", id="p1", input={"seconds": 1.5})
    wa = workers.start("wa", *TASK, capabilities="build,special", beat=FAST_BEAT)
    wait_for(lambda: held_by(op, "p1", "wa"), "wa to claim p1")
    wa.signal_group(signal.SIGSTOP)  # its task's child runs on in its own group
    try:
        workers.start("wb", *TASK)
        wait_for(lambda: status_is(op, "p1", "completed"), "wb to complete p1", within=20)
    finally:
        wa.signal_group(signal.SIGCONT)
    wa.wait_log("complete of p1 refused by the server (409 lease_lost")
    detail = op.get_task("p1")
    assert detail["task"]["result"] == {"by": "wb", "token": 2, "task": "p1"}
    assert outcomes(op, "p1") == [("wa", "expired"), ("wb", "completed")]
    assert sorted(effects(tmp_path)) == [("p1", 1, "wa"), ("p1", 2, "wb")]  # both ran
    # and wa carries on: it is back online and takes work only it can do
    op.add_task("special", id="p2", input={"seconds": 0})
    after = wait_for(lambda: status_is(op, "p2", "completed"), "wa to complete p2")
    assert after["task"]["result"]["by"] == "wa"
    assert wa.proc.poll() is None


@pytest.mark.slow
def test_a_pause_shorter_than_the_lease_keeps_it(op: Client, workers: Workers) -> None:
    op.add_task("build", id="s1", input={"seconds": 1.5})
    ws = workers.start("ws", *TASK, beat=FAST_BEAT)
    wait_for(lambda: held_by(op, "s1", "ws"), "ws to claim s1")
    ws.signal_group(signal.SIGSTOP)
    time.sleep(FAST_BEAT)  # the fault: a pause of one heartbeat interval, a third of a lease
    ws.signal_group(signal.SIGCONT)
    wait_for(lambda: status_is(op, "s1", "completed"), "s1 to complete")
    assert outcomes(op, "s1") == [("ws", "completed")]


@pytest.mark.slow
def test_the_drain_directive_is_obeyed(op: Client, workers: Workers) -> None:
    op.add_task("build", id="r1", input={"seconds": 1.0})
    wr = workers.start("wr", *TASK)
    wait_for(lambda: held_by(op, "r1", "wr"), "wr to claim r1")
    op.drain("wr")
    assert wr.wait() == 0
    assert outcomes(op, "r1") == [("wr", "completed")]
    assert op.session("wr")["status"] == "offline"
    assert "the orchestrator asked this session to drain" in wr.log()


@pytest.mark.slow
def test_the_interrupt_directive_is_obeyed_until_lifted(op: Client, workers: Workers) -> None:
    op.interrupt("maintenance window")
    wi = workers.start("wi", *TASK)
    wi.wait_log("interrupted by the operator (maintenance window): taking no new work")
    op.add_task("build", id="i1", input={"seconds": 0})
    seen: set[str | None] = set()

    def two_more_beats() -> bool:
        seen.add(op.session("wi")["last_heartbeat"])  # registered: it logged the interrupt
        return len(seen) >= 3

    wait_for(two_more_beats, "two more heartbeats of wi")
    assert op.get_task("i1")["task"]["status"] == "ready"
    op.lift_interrupt()
    wait_for(lambda: status_is(op, "i1", "completed"), "wi to complete i1")
    wi.wait_log("interrupt lifted: taking work again")


@pytest.mark.slow
def test_max_concurrent_tasks_runs_them_at_once(op: Client, workers: Workers) -> None:
    op.add_tasks([{"type": "build", "id": f"c{i}", "input": {"seconds": 1.0}}
                  for i in range(3)])
    workers.start("wc", *TASK, "--max-tasks", "3")
    def running_three() -> bool:
        session = session_or_none(op, "wc")
        return session is not None and len(session["current_tasks"]) == 3

    wait_for(running_three, "wc to run 3 at once")
    wait_for(lambda: all(status_is(op, t, "completed") for t in ("c0", "c1", "c2")),
             "c0, c1 and c2 to complete")


@pytest.mark.slow
def test_a_failing_then_succeeding_task_is_readable_everywhere(
        op: Client, workers: Workers, sqlite_server: LiveServer) -> None:
    op.add_task("build", id="o1", title="flaky", max_attempts=3,
                input={"seconds": 0, "fail_first": True})
    wo = workers.start("wo", *TASK, "--burst")
    assert wo.wait(20) == 0  # burst: the queue is empty, so it drains and leaves
    assert "burst mode: the queue is empty" in wo.log()

    # the API
    raw = httpx.get(f"{sqlite_server.url}/work/o1",
                    headers={"authorization": f"Bearer {sqlite_server.token}"}).json()
    task, history = raw["task"], raw["history"]
    assert task["status"] == "completed" and task["attempts"] == 2
    assert task["result"] == {"by": "wo", "token": 2, "task": "o1"}
    assert [(h["attempt"], h["outcome"]) for h in history] == [(1, "failed"), (2, "completed")]
    assert history[0]["error"] == "exit status 7: first attempt of o1 fails on purpose"
    assert all(h["session_id"] == "wo" and h["duration"] is not None for h in history)
    # the SDK
    assert op.get_task("o1") == raw
    # `swarm task show`
    shown = subprocess.run(
        [*swarm_command(), "task", "show", "o1", "--json", "--url", sqlite_server.url,
         "--token", sqlite_server.token], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == raw


@pytest.mark.slow
def test_an_executor_blocking_the_event_loop_does_not_starve_the_heartbeat(
        op: Client, workers: Workers) -> None:
    op.add_task("build", id="b1", input={"seconds": 3})  # two leases' worth
    wb = workers.start("wb", "--executor", "python", "--function",
                       "tests.worker.funcs:block_the_loop", beat=FAST_BEAT)
    done = wait_for(lambda: status_is(op, "b1", "completed"), "b1 to complete")
    assert outcomes(op, "b1") == [("wb", "completed")]  # never expired meanwhile
    assert done["task"]["result"] == {"blocked_for": 3}
    assert wb.proc.poll() is None


class LoseFirstClaim(httpx.AsyncHTTPTransport):
    """Drops the answer to the first request that claimed a task: the server made the
    claim, the worker never hears of it (a timeout or a dropped connection in real life).
    With `retries`, the answers to every retry of that request (its Idempotency-Key) are
    dropped too, so the worker never hears of the claim; without, the SDK's retry gets the
    kept answer."""

    def __init__(self, *, retries: bool = True) -> None:
        super().__init__()
        self.dropped: list[str] = []
        self.retries = retries
        self._key: str | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        key = request.headers.get("idempotency-key")
        if request.url.path == "/work/request" and response.status_code == 200 and (
                not self.dropped or (self.retries and key == self._key)):
            body = await response.aread()
            await response.aclose()
            self.dropped.append(json.loads(body)["task"]["id"])
            self._key = key
            raise httpx.ReadError("connection lost (injected by the test)", request=request)
        return response


@pytest.mark.slow
def test_a_lease_the_worker_never_heard_of_is_released(op: Client,
                                                       sqlite_server: LiveServer) -> None:
    op.add_task("build", id="h1", input={"x": 1})
    lossy = LoseFirstClaim()
    config = WorkerConfig(url=sqlite_server.url, token=sqlite_server.token, id="wh",
                          name="wh", capabilities=("build",), heartbeat_interval=0.5, wait=2)
    worker = Worker(config, PythonExecutor.load("tests.worker.funcs:echo"), transport=lossy)
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(asyncio.run(worker.run(handle_signals=False))))
    thread.start()
    try:
        done = wait_for(lambda: status_is(op, "h1", "completed"), "h1 to complete")
    finally:
        wait_for(lambda: worker.session_id, "the worker to register")
        worker.drain_soon("test over")
        thread.join(15)
    assert codes == [0] and set(lossy.dropped) == {"h1"} and len(lossy.dropped) > 1
    first, second = done["history"]
    assert (first["session_id"], first["outcome"]) == ("wh", "failed")
    assert "released by wh" in (first["error"] or "")
    assert (second["session_id"], second["outcome"]) == ("wh", "completed")
    assert done["task"]["result"]["id"] == "h1"


@pytest.mark.slow
def test_a_lost_claim_answer_is_heard_on_the_retry(op: Client,
                                                   sqlite_server: LiveServer) -> None:
    """One answer lost: the SDK's retry carries the same Idempotency-Key and the server
    answers it with the claim it made, so the task runs once under one lease."""
    op.add_task("build", id="h2", input={"x": 1})
    lossy = LoseFirstClaim(retries=False)
    config = WorkerConfig(url=sqlite_server.url, token=sqlite_server.token, id="wk",
                          name="wk", capabilities=("build",), heartbeat_interval=0.5, wait=2)
    worker = Worker(config, PythonExecutor.load("tests.worker.funcs:echo"), transport=lossy)
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(asyncio.run(worker.run(handle_signals=False))))
    thread.start()
    try:
        done = wait_for(lambda: status_is(op, "h2", "completed"), "h2 to complete")
    finally:
        wait_for(lambda: worker.session_id, "the worker to register")
        worker.drain_soon("test over")
        thread.join(15)
    assert codes == [0] and lossy.dropped == ["h2"]
    (only,) = done["history"]
    assert (only["session_id"], only["outcome"], only["fencing_token"]) == ("wk", "completed", 1)
