"""The worker's round trips (issue 16): it asks for every free slot in one request
(`GET /work/request?max=N`) and claims the next task in the call that completes the last one
(`POST /work/complete` with `max`), so a busy worker makes about one request per task; a
lost answer to such a complete never records twice and never strands the task it claimed.
A real server; the worker in a thread, with a transport that counts (or drops) calls."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections import Counter

import httpx

from tests.conftest import LiveServer
from unified_swarm.client import Client
from unified_swarm.worker import PythonExecutor, Worker, WorkerConfig

from .conftest import status_is, wait_for


class Counting(httpx.AsyncHTTPTransport):
    """Counts the worker's calls by path; drops the answer to the first complete that
    claimed a next task when `drop_next` (the server acted, the worker never heard)."""

    def __init__(self, drop_next: bool = False) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.batch_sizes: list[int] = []
        self.drop_next = drop_next
        self.dropped: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls[path] += 1
        if path == "/work/request" and "max" in request.url.params:
            self.batch_sizes.append(int(request.url.params["max"]))
        response = await super().handle_async_request(request)
        if path == "/work/complete" and self.drop_next and not self.dropped \
                and response.status_code == 200:
            body = json.loads(await response.aread())
            await response.aclose()
            if body.get("claimed"):
                self.dropped.append(body["claimed"][0]["task"]["id"])
                raise httpx.ReadError("connection lost (injected by the test)",
                                      request=request)
            return httpx.Response(200, json=body)
        return response


def _run(server: LiveServer, transport: Counting, slots: int) -> tuple[Worker, threading.Thread]:
    config = WorkerConfig(url=server.url, token=server.token, id="wb", name="wb",
                          capabilities=("build",), heartbeat_interval=0.5, wait=1,
                          max_concurrent_tasks=slots, batch=True)
    worker = Worker(config, PythonExecutor.load("tests.worker.funcs:echo"),
                    transport=transport)
    thread = threading.Thread(target=lambda: asyncio.run(worker.run(handle_signals=False)))
    thread.start()
    return worker, thread


def _stop(worker: Worker, thread: threading.Thread) -> None:
    wait_for(lambda: worker.session_id, "the worker to register")
    worker.drain_soon("test over")
    thread.join(20)
    assert not thread.is_alive()


def test_a_busy_worker_makes_about_one_request_per_task(
        op: Client, sqlite_server: LiveServer) -> None:
    ids = [f"b{i}" for i in range(12)]
    op.add_tasks([{"id": i, "type": "build"} for i in ids])
    counting = Counting()
    worker, thread = _run(sqlite_server, counting, slots=4)
    try:
        for tid in ids:
            wait_for(functools.partial(status_is, op, tid, "completed"), f"{tid} to complete")
    finally:
        _stop(worker, thread)
    assert counting.calls["/work/complete"] == len(ids)  # no outcome sent twice
    assert counting.batch_sizes and counting.batch_sizes[0] == 4  # every free slot at once
    # 12 tasks: 1 batch of 4 claims, 8 next tasks claimed by completes, and a few asks
    # that found the queue empty at the end (phase 1: 12 requests and 12 completes)
    assert counting.calls["/work/request"] <= 6, counting.calls
    assert worker.stats.completed == len(ids) and worker.stats.unrecorded == 0
    for tid in ids:
        history = op.get_task(tid)["history"]
        assert [a["outcome"] for a in history] == ["completed"]


def test_a_lost_answer_to_complete_and_next_acts_once_and_strands_nothing(
        op: Client, sqlite_server: LiveServer) -> None:
    op.add_tasks([{"id": f"n{i}", "type": "build"} for i in range(3)])
    lossy = Counting(drop_next=True)
    worker, thread = _run(sqlite_server, lossy, slots=1)
    try:
        for i in range(3):
            wait_for(functools.partial(status_is, op, f"n{i}", "completed"),
                     f"n{i} to complete", within=30)
    finally:
        _stop(worker, thread)
    (stray,) = lossy.dropped
    history = op.get_task(stray)["history"]
    # the claim whose answer was lost was released by the heartbeat (a stray), then run
    assert [a["outcome"] for a in history] == ["failed", "completed"], history
    assert "released by wb" in (history[0]["error"] or "")
    assert all(a["outcome"] in ("failed", "completed") for a in history)
    for i in range(3):
        done = [a for a in op.get_task(f"n{i}")["history"] if a["outcome"] == "completed"]
        assert len(done) == 1  # the repeated complete was a duplicate, never a second run
    assert worker.stats.unrecorded == 0
