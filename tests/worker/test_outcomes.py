"""The worker never drops a result silently: outcome calls answered 5xx, garbled or not at
all are repeated with the same payload while the lease lasts; a result that could not be
recorded is an error with its task and token, a count, and exit code 3; a lease whose
outcome was sent is never released as a stray. A real server; faults injected into the
worker's own transport (its heartbeat keeps a clean connection of its own)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import LiveServer
from unified_swarm.client import Client
from unified_swarm.worker import PythonExecutor, Worker, WorkerConfig, WorkerExit

from .conftest import status_is, wait_for

#: (request, attempt n of this path) -> a response to answer instead of forwarding, the
#: string "forward-then-garble" (forward, then answer 200 with a body that is not JSON),
#: or None (forward)
Fault = Callable[[httpx.Request, int], "httpx.Response | str | None"]


class FaultyOutcomes(httpx.AsyncHTTPTransport):
    def __init__(self, fault: Fault) -> None:
        super().__init__()
        self.fault = fault
        self.bodies: dict[str, list[bytes]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in ("/work/complete", "/work/fail"):
            sent = self.bodies.setdefault(path, [])
            sent.append(request.content)
            injected = self.fault(request, len(sent))
            if isinstance(injected, httpx.Response):
                return injected
            if injected == "forward-then-garble":
                response = await super().handle_async_request(request)
                await response.aread()
                return httpx.Response(200, content=b"<html>proxy says hi</html>")
        return await super().handle_async_request(request)


def answer(status: int) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": "internal", "message": "injected"}})


class Running:
    """One Worker on a thread of its own; `code` once it has exited."""

    def __init__(self, worker: Worker) -> None:
        self.worker, self.codes = worker, list[int]()
        self.thread = threading.Thread(
            target=lambda: self.codes.append(asyncio.run(worker.run(handle_signals=False))))

    def stop(self) -> int:
        wait_for(lambda: self.worker.session_id, "the worker to register")
        self.worker.drain_soon("test over")
        self.thread.join(20)
        assert self.codes, "the worker did not exit"
        return self.codes[0]


@pytest.fixture
def run_worker(sqlite_server: LiveServer) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(fault: Fault, **config: object) -> Running:
        cfg = WorkerConfig(url=sqlite_server.url, token=sqlite_server.token, id="wo",
                           name="wo", capabilities=("build",), heartbeat_interval=0.5, wait=1,
                           **config)  # type: ignore[arg-type]
        transport = FaultyOutcomes(fault)
        worker = Worker(cfg, PythonExecutor.load("tests.worker.funcs:echo"),
                        transport=transport)
        running = Running(worker)
        running.transport = transport  # type: ignore[attr-defined]
        started.append(running)
        running.thread.start()
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.worker.drain_soon("teardown")
            running.thread.join(20)


def test_a_500_and_a_garbled_answer_are_retried_with_the_same_payload(
        op: Client, run_worker: Callable[..., Running]) -> None:
    op.add_task("build", id="r1", input={"n": 1})

    def fault(request: httpx.Request, n: int) -> httpx.Response | str | None:
        script: dict[int, httpx.Response | str] = {1: answer(500), 2: answer(502),
                                                    3: "forward-then-garble"}
        return script.get(n)

    running = run_worker(fault)
    done = wait_for(lambda: status_is(op, "r1", "completed"), "r1 to complete")
    assert running.stop() == WorkerExit.OK
    sent = running.transport.bodies["/work/complete"]  # type: ignore[attr-defined]
    # the same outcome every time (a batching worker also asks for the next task, `max`,
    # while it takes work: not once it drains)
    outcomes = {json.dumps({k: v for k, v in json.loads(b).items() if k != "max"})
                for b in sent}
    assert len(sent) == 4 and len(outcomes) == 1  # the 4th: a duplicate, answered 200
    assert [(a["outcome"], a["fencing_token"]) for a in done["history"]] == [("completed", 1)]
    assert running.worker.stats.completed == 1 and running.worker.stats.unrecorded == 0


def test_an_outcome_that_cannot_land_is_an_error_a_count_and_exit_3(
        op: Client, run_worker: Callable[..., Running],
        caplog: pytest.LogCaptureFixture) -> None:
    """Complete keeps answering 503; the lease stays held (the heartbeat renews it), so the
    worker keeps trying until the operator cancels the task: then the result is lost, and
    the worker says so. The lease was never released as a stray meanwhile."""
    op.add_task("build", id="r2")
    running = run_worker(lambda request, n: answer(503))
    wait_for(lambda: len(running.transport.bodies.get("/work/complete", [])) >= 3,  # type: ignore[attr-defined]
             "complete to be tried thrice")
    detail = op.get_task("r2")
    assert detail["task"]["status"] == "in_progress"  # held: not released as a stray
    op.cancel("r2", "test: the lease must end")
    with caplog.at_level(logging.ERROR, "unified_swarm.worker"):
        wait_for(lambda: running.worker.stats.unrecorded, "the worker to give the result up")
        assert running.stop() == WorkerExit.UNRECORDED
    assert any("complete of r2 (token 1) could not be recorded" in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)
    history = op.get_task("r2")["history"]
    assert [a["outcome"] for a in history] == ["released"]  # the cancel, nothing else


def test_after_the_whole_budget_a_held_lease_is_given_back(
        op: Client, run_worker: Callable[..., Running]) -> None:
    op.add_task("build", id="r3")
    running = run_worker(lambda request, n: answer(500), record_budget=2.0)
    wait_for(lambda: status_is(op, "r3", "in_progress"), "r3 to be claimed")

    def given_back() -> list[dict[str, object]]:
        # the worker may claim r3 again at once: read the first attempt, whatever followed
        history = op.get_task("r3")["history"]
        return [dict(a) for a in history[:1] if a["outcome"] is not None]

    (attempt,) = wait_for(given_back, "r3 to be given back", within=20)
    assert running.stop() == WorkerExit.UNRECORDED
    assert attempt["outcome"] == "failed"
    assert "could not be recorded within the record budget" in str(attempt["error"] or "")
