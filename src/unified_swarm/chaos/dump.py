"""The final state twice: as the server answers it over HTTP (what any client, and the
checker, sees), and straight from the store through the Store protocol (the same code for
SQLite and Redis). `same_state` holds the two to each other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..client import Client, RetryPolicy
from ..config import Settings
from ..errors import NotFound, Unavailable
from ..jsonutil import digest
from ..store import make_store
from ..store.base import Store
from .checker import Dump, Result

PAGE = 1000
#: reading every task's history over HTTP: calls in flight at once
READERS = 8
PATIENT = RetryPolicy(attempts=30, backoff=0.1, max_backoff=1.0, budget=60.0)


def dump_store(store_url: str, prefix: str, data_dir: Path) -> Dump:
    settings = Settings(store=store_url, redis_prefix=prefix, data_dir=data_dir,
                        token="dump-only")
    return asyncio.run(_dump(make_store(settings)))


T = TypeVar("T")


async def patient(read: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """`read(*args, **kwargs)`, a read of the final state, tried again while the store is too
    slow to answer in its short timeouts (a loaded host): reads change nothing, so repeating
    them is safe."""
    tries = 60
    for n in range(1, tries + 1):
        try:
            return await read(*args, **kwargs)
        except Unavailable:
            if n == tries:
                raise
            await asyncio.sleep(min(1.0, 0.1 * n))
    raise AssertionError("unreachable")


async def _dump(store: Store) -> Dump:
    await patient(store.open)
    try:
        tasks, history = {}, {}
        cursor: str | None = None
        while True:
            page, cursor = await patient(store.list_tasks, limit=PAGE, cursor=cursor)
            for t in page:
                tasks[t.id] = t.wire()
                history[t.id] = [a.wire() for a in await patient(store.history, t.id)]
            if cursor is None:
                break
        seqs: list[int] = []
        while True:
            events = await patient(store.events_after, seqs[-1] if seqs else 0, PAGE)
            if not events:
                break
            seqs.extend(e.seq for e in events)
        knowledge = await _knowledge(store)
        held = await patient(store.get_interrupt)
        return Dump(tasks, history, knowledge, seqs,
                    interrupt=None if held is None else held.wire())
    finally:
        await store.close()


async def _knowledge(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every version of every live topic (a missing version shows as `None`)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in await patient(store.list_knowledge):
        versions: list[dict[str, Any]] = []
        for v in range(1, entry.version + 1):
            got = await patient(store.get_knowledge, entry.topic, v)
            versions.append(got.wire() if got is not None else {"version": None})
        out[entry.topic] = versions
    return out


def dump_http(url: str, token: str) -> Dump:
    """Every task with its history, and every knowledge version, as the server answers
    them (`GET /work`, `GET /work/{id}`, `GET /knowledge/{topic}?version=N`)."""
    with Client(url, token, retry=PATIENT, timeout=30, on_call=_NoJournal()) as c:
        ids = [t["id"] for t in c.iter_tasks(page_size=500)]
        with ThreadPoolExecutor(READERS) as pool:
            details = list(pool.map(c.get_task, ids))
        tasks = {d["task"]["id"]: dict(d["task"]) for d in details}
        history = {d["task"]["id"]: [dict(a) for a in d["history"]] for d in details}
        knowledge: dict[str, list[dict[str, Any]]] = {}
        for entry in c.list_knowledge():
            knowledge[entry["topic"]] = [_version(c, entry["topic"], v)
                                         for v in range(1, entry["version"] + 1)]
    return Dump(tasks, history, knowledge)


def _version(c: Client, topic: str, version: int) -> dict[str, Any]:
    try:
        return dict(c.get_knowledge(topic, version))
    except NotFound:
        return {"version": None}


class _NoJournal:
    """Reads prove nothing: keep them out of the journal even where one is configured."""

    def begin(self, call: object, token: str | None) -> None:
        return None

    def end(self, handle: object, outcome: str, value: object) -> None:
        return None


TASK_FIELDS = ("status", "attempts", "fencing_token", "dependencies", "completed_at")
ATTEMPT_FIELDS = ("fencing_token", "session_id", "outcome", "started_at", "ended_at",
                  "lease_expires_at")


def _task_view(task: dict[str, Any] | None, attempts: list[dict[str, Any]]) -> Any:
    if task is None:
        return None
    return ([task.get(k) for k in TASK_FIELDS], digest(task.get("result")),
            [[a.get(k) for k in ATTEMPT_FIELDS] for a in attempts])


def same_state(server: Dump, store: Dump) -> Result:
    """The server answers exactly what the store holds: every task, attempt and knowledge
    version, field for field."""
    bad = []
    for tid in sorted(server.tasks.keys() | store.tasks.keys()):
        answered = _task_view(server.tasks.get(tid), server.history.get(tid, []))
        held = _task_view(store.tasks.get(tid), store.history.get(tid, []))
        if answered != held:
            bad.append(f"{tid}: the server answers {answered}, the store holds {held}")
    versions = 0
    for topic in sorted(server.knowledge.keys() | store.knowledge.keys()):
        answered_k = [(v.get("version"), digest(v.get("content")))
                      for v in server.knowledge.get(topic, [])]
        held_k = [(v.get("version"), digest(v.get("content")))
                  for v in store.knowledge.get(topic, [])]
        versions += len(held_k)
        if answered_k != held_k:
            bad.append(f"knowledge {topic}: the server and the store differ")
    return Result("server answers what the store holds", len(store.tasks) + versions, bad)
