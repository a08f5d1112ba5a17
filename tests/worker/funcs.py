"""Callables for the python executor's tests (`tests.worker.funcs:NAME`)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from unified_swarm.worker import TaskContext, TaskFailed


def echo(task: dict[str, Any]) -> dict[str, Any]:
    return {"id": task["id"], "input": task["input"], "pid": os.getpid()}


async def async_echo(task: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    ctx.progress(0.5, "halfway")
    await asyncio.sleep(0)
    return {"id": task["id"], "token": ctx.fencing_token, "session": ctx.session_id}


def boom(task: dict[str, Any]) -> None:
    raise ValueError(f"bad input for {task['id']}")


def refuse(task: dict[str, Any]) -> None:
    raise TaskFailed("not worth retrying", retry=False)


def not_json(task: dict[str, Any]) -> object:
    return object()


def slow(task: dict[str, Any]) -> None:
    time.sleep(float(task["input"]["seconds"]))


def flaky(task: dict[str, Any]) -> dict[str, Any]:
    """Fails the first time it sees a task, succeeds afterwards (a marker file per task)."""
    marker = Path(task["input"]["dir"]) / f"{task['id']}.seen"
    if not marker.exists():
        marker.touch()
        raise RuntimeError("first attempt fails on purpose")
    return {"ok": True}


NOT_CALLABLE = 42


async def block_the_loop(task: dict[str, Any]) -> dict[str, Any]:
    """A badly behaved async executor: it blocks the worker's event loop outright."""
    time.sleep(float(task["input"]["seconds"]))  # noqa: ASYNC251  (that is the point)  # noqa: ASYNC251  (the point)
    return {"blocked_for": task["input"]["seconds"]}


def split_big(task: dict[str, Any], context: dict[str, Any]) -> Any:
    """A "plan" task splits into two parts and a merge; a part returns its id; the merge
    returns what its context holds (every part's result)."""
    from unified_swarm.worker import SplitInto

    if task["type"] == "plan":
        return SplitInto([{"id": f"{task['id']}-a", "type": "build"},
                          {"id": f"{task['id']}-b", "type": "build",
                           "dependencies": [f"{task['id']}-a"]}],
                         merge={"task": {"type": "build", "id": f"{task['id']}-merge"}})
    if task["id"].endswith("-merge"):
        return {"merged": context["dependencies"]}
    return {"part": task["id"], "after": sorted(context["dependencies"])}


def context_seen(task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"context": context, "same": context == task.get("context")}
