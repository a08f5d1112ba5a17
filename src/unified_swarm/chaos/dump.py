"""Read everything a store holds into a checker `Dump`, through the Store protocol, so the
same code dumps SQLite and Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..config import Settings
from ..store import make_store
from ..store.base import Store
from .checker import Dump

PAGE = 1000


def dump_store(store_url: str, prefix: str, data_dir: Path) -> Dump:
    settings = Settings(store=store_url, redis_prefix=prefix, data_dir=data_dir,
                        token="dump-only")
    return asyncio.run(_dump(make_store(settings)))


async def _dump(store: Store) -> Dump:
    await store.open()
    try:
        tasks, history = {}, {}
        cursor: str | None = None
        while True:
            page, cursor = await store.list_tasks(limit=PAGE, cursor=cursor)
            for t in page:
                tasks[t.id] = t.wire()
                history[t.id] = [a.wire() for a in await store.history(t.id)]
            if cursor is None:
                break
        seqs: list[int] = []
        while True:
            events = await store.events_after(seqs[-1] if seqs else 0, PAGE)
            if not events:
                break
            seqs.extend(e.seq for e in events)
        knowledge = await _knowledge(store)
        return Dump(tasks, history, knowledge, seqs)
    finally:
        await store.close()


async def _knowledge(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every version of every live topic (a missing version shows as `None`)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in await store.list_knowledge():
        versions: list[dict[str, Any]] = []
        for v in range(1, entry.version + 1):
            got = await store.get_knowledge(entry.topic, v)
            versions.append(got.wire() if got is not None else {"version": None})
        out[entry.topic] = versions
    return out
