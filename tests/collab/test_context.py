"""The context a claimed task carries: its dependencies' results, the knowledge topics it
names, the handoff notes of earlier attempts; capped with a marker, never cut silently."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from unified_swarm.config import Settings
from unified_swarm.core import context
from unified_swarm.core.orchestrator import Orchestrator, SessionSpec
from unified_swarm.errors import InvalidInput
from unified_swarm.jsonutil import dumps
from unified_swarm.models import Session, TaskSpec, note
from unified_swarm.store.base import Store

from ..conftest import T0


@pytest.fixture
async def orch(store: Store, store_settings: Settings) -> AsyncIterator[Orchestrator]:
    o = Orchestrator(store, store_settings.replace(max_context_bytes=4096), "op",
                     lambda: T0)
    await o.start(run_loop=False)
    yield o
    await o.stop()


async def _join(o: Orchestrator, sid: str) -> Session:
    s, _ = await o.register(SessionSpec(capabilities=[], id=sid, max_concurrent_tasks=10))
    return s


async def test_claims_carry_dependencies_knowledge_and_notes(orch: Orchestrator) -> None:
    w = await _join(orch, "w1")
    me = await orch.authenticate("op")
    await orch.put_knowledge("style", {"indent": 4}, [], None, me)
    await orch.add_tasks([
        TaskSpec(type="build", id="dep"),
        TaskSpec(type="build", id="t", dependencies=["dep"],
                 context_topics=["style", "missing"])])
    first = await orch.claim(w, "dep")
    assert first.task.context == {"dependencies": {}, "knowledge": {}, "notes": []}
    await orch.complete(w, "dep", first.lease.fencing_token, {"built": "lib.so"})
    await orch.store.add_note("t", note("release", "tried gcc, use clang", T0, "w0"), T0)
    got = await orch.request_work(w, 0)
    assert got is not None and got.task.id == "t"
    ctx = got.task.context
    assert ctx is not None and "truncated" not in ctx
    assert ctx["dependencies"] == {"dep": {"built": "lib.so"}}
    assert ctx["knowledge"] == {"style": {"indent": 4}}  # a topic not there is left out
    assert [n["text"] for n in ctx["notes"]] == ["tried gcc, use clang"]
    assert got.task.wire()["context"] == ctx
    task, _ = await orch.get_task("t")  # GET /work/{id} shows it too
    assert task.context == ctx


async def test_context_over_the_cap_is_cut_with_a_marker(orch: Orchestrator) -> None:
    w = await _join(orch, "w1")
    me = await orch.authenticate("op")
    await orch.put_knowledge("huge", "x" * 10_000, [], None, me)
    await orch.put_knowledge("small", "ok", [], None, me)
    await orch.add_tasks([TaskSpec(type="build", id="t", context_topics=["huge", "small"])])
    got = await orch.claim(w, "t")
    ctx = got.task.context
    assert ctx is not None
    assert ctx["truncated"] == {"limit_bytes": 4096, "cut": ["knowledge/huge"]}
    assert ctx["knowledge"]["huge"] == {"truncated": True, "bytes": len(dumps("x" * 10_000))}
    assert ctx["knowledge"]["small"] == "ok"
    assert len(dumps(ctx)) <= 4096


def test_capped_keeps_what_fits_and_names_every_cut() -> None:
    ctx = {"dependencies": {"a": "y" * 50, "b": "z" * 500}, "knowledge": {},
           "notes": [{"text": "n" * 400}, "short"]}
    out = context.capped(ctx, 900)
    assert out["truncated"]["cut"] == ["notes/0", "dependencies/b"]
    assert out["notes"][1] == "short" and out["dependencies"]["a"] == "y" * 50
    assert out["dependencies"]["b"]["truncated"] is True
    small: dict[str, object] = {"dependencies": {}, "knowledge": {}, "notes": []}
    assert context.capped(dict(small), 100) == small


async def test_context_topics_are_checked(orch: Orchestrator) -> None:
    with pytest.raises(InvalidInput):
        await orch.add_tasks([TaskSpec(type="build", context_topics=["bad\x00topic"])])
