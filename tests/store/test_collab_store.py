"""Collaboration in the Store contract (both backends): handoff notes, split and merge,
the cascade of a split parent's end. Time is passed in, never slept."""

from __future__ import annotations

import pytest

from unified_swarm.errors import NotFound
from unified_swarm.models import note
from unified_swarm.store.base import Store

from ..conftest import T0
from .helpers import add_tasks, spec


async def test_notes_are_kept_per_task_in_order(store: Store) -> None:
    await add_tasks(store, [spec("a"), spec("b")], T0)
    assert await store.notes("a") == []
    await store.add_note("a", note("release", "half done", T0 + 1, "w1"), T0 + 1)
    await store.add_note("a", note("answer", "use v2", T0 + 2), T0 + 2)
    got = await store.notes("a")
    assert [n["text"] for n in got] == ["half done", "use v2"]
    assert got[0]["kind"] == "release" and got[0]["session_id"] == "w1"
    assert await store.notes("b") == []
    with pytest.raises(NotFound):
        await store.add_note("nope", note("release", "x", T0), T0)
    assert await store.notes("nope") == []
