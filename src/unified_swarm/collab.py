"""Split and merge rules for every store: how a split parent's result is merged from its
subtasks' results, and how a subtask that can no longer complete is named in its parent's
error.

Like `lifecycle.py`, these run INSIDE a store's atomic step (the step that completes the
last subtask completes the parent), so they live below `store/` and `core/` alike. The
SQLite store calls them; the Redis store's Lua (lua/collab.lua) builds the same JSON text
from the stored results without decoding them. Which subtasks a split makes and whether a
split is allowed are decided above, in core/collab.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from .models import JSON

#: the merge strategies a split may ask for: results in subtask order, {subtask id: result},
#: or the result of a merge task that depends on every subtask
LIST, OBJECT, TASK = "list", "object", "task"
STRATEGIES = (LIST, OBJECT, TASK)


def merged(strategy: str, results: Sequence[tuple[str, JSON]], merge_task: str | None) -> JSON:
    """The parent's result once every child completed. `results` are (child id, result)
    in the order the holder gave the subtasks, the merge task (strategy `task`) last."""
    if strategy == TASK:
        return dict(results)[str(merge_task)]
    if strategy == OBJECT:
        return dict(results)
    return [result for _, result in results]


def subtask_error(subtask_id: str, status: str, error: str | None) -> str:
    """A parent's error when one of its subtasks can no longer complete: names it."""
    return f"subtask {subtask_id!r} {status}" + (f": {error}" if error else "")
