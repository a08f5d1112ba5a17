"""What a claimed task carries for its holder: `context` = {"dependencies": {id: result},
"knowledge": {topic: content} for the topics it names in `context_topics`, "notes": [the
handoff notes of earlier attempts]} (DESIGN "Context for every task").

Read after the claim from the store (a snapshot: a dependency's result never changes once
it completed; a knowledge topic may move on, and then the holder reads it again itself).
The whole is capped at `max_context_bytes` of JSON: what does not fit is replaced by a
marker saying how big it was, and `context.truncated` lists every cut, so an agent never
works from a silently shortened picture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..jsonutil import dumps
from ..models import JSON, Task
from ..store.base import Store

#: the JSON a marker takes at most, kept free of the budget for each cut entry
MARKER_BYTES = 160


async def build(store: Store, task: Task, max_bytes: int,
                notes: list[JSON] | None = None) -> dict[str, JSON]:
    """The task's context from the store, capped at `max_bytes`; `notes` when the caller
    read them already (a claim does, in its own step)."""
    deps: dict[str, JSON] = {}
    for dep in task.dependencies:
        found = await store.get_task(dep)
        deps[dep] = None if found is None else found.result
    knowledge: dict[str, JSON] = {}
    for topic in task.context_topics:
        entry = await store.get_knowledge(topic)
        if entry is not None:
            knowledge[topic] = entry.content
    if notes is None:
        notes = await store.notes(task.id)
    return capped({"dependencies": deps, "knowledge": knowledge, "notes": notes}, max_bytes)


def size(value: JSON) -> int:
    return len(dumps(value))


def marker(nbytes: int) -> dict[str, JSON]:
    """What stands in for an entry that did not fit."""
    return {"truncated": True, "bytes": nbytes}


def _entries(ctx: dict[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(path, container, key) of every entry, in the order they keep their place: the
    notes (a previous holder's handoff), then dependencies' results, then knowledge."""
    for n in range(len(ctx["notes"])):
        yield f"notes/{n}", ctx["notes"], n
    for dep in list(ctx["dependencies"]):
        yield f"dependencies/{dep}", ctx["dependencies"], dep
    for topic in list(ctx["knowledge"]):
        yield f"knowledge/{topic}", ctx["knowledge"], topic


def capped(ctx: dict[str, Any], max_bytes: int) -> dict[str, JSON]:
    """`ctx` itself when it fits; else each entry is kept whole while the budget allows and
    replaced by a marker otherwise, and `truncated` says the limit and what was cut."""
    if size(ctx) <= max_bytes:
        return ctx
    entries = list(_entries(ctx))
    budget = max_bytes - MARKER_BYTES - MARKER_BYTES * len(entries)
    cut: list[str] = []
    for path, box, key in entries:
        nbytes = size(box[key])
        if nbytes <= budget:
            budget -= nbytes
        else:
            box[key] = marker(nbytes)
            cut.append(path)
    ctx["truncated"] = {"limit_bytes": max_bytes, "cut": cut}
    return ctx
