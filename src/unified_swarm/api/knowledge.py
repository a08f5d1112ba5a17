"""Shared knowledge: versioned topics, compare-and-set writes, full history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from .deps import Caller, Orch, SwarmRoute, check_size
from .responses import JSONResp
from .schemas import KnowledgeIn

router = APIRouter(route_class=SwarmRoute, tags=["knowledge"])
Version = Annotated[int | None, Query(ge=1, le=2**62)]


@router.get("/knowledge")
async def list_knowledge(orch: Orch, _: Caller, tag: str | None = None) -> JSONResp:
    entries = await orch.store.list_knowledge(tag)
    return JSONResp({"entries": [e.wire() for e in entries]})


@router.get("/knowledge/{topic:path}")
async def get_knowledge(topic: str, orch: Orch, _: Caller, version: Version = None) -> JSONResp:
    return JSONResp({"entry": (await orch.get_knowledge(topic, version)).wire()})


@router.put("/knowledge/{topic:path}")
async def put_knowledge(topic: str, body: KnowledgeIn, orch: Orch, caller: Caller) -> JSONResp:
    check_size(body.content, orch.settings.max_input_bytes, "knowledge content")
    entry = await orch.put_knowledge(topic, body.content, list(body.tags),
                                     body.expected_version, caller)
    return JSONResp({"entry": entry.wire()})


@router.delete("/knowledge/{topic:path}")
async def delete_knowledge(topic: str, orch: Orch, caller: Caller,
                           expected_version: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                           ) -> JSONResp:
    return JSONResp({"entry": (await orch.delete_knowledge(topic, expected_version,
                                                           caller)).wire()})
