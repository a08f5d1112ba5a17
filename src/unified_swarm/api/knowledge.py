"""Shared knowledge: versioned topics, compare-and-set writes, full history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from ..core.limits import TOPIC_PATTERN
from .deps import Caller, Keyed, Orch, SwarmRoute
from .replies import COMMON, EntriesReply, EntryReply, errors
from .responses import JSONResp
from .schemas import KnowledgeIn

router = APIRouter(route_class=SwarmRoute, tags=["knowledge"], responses=errors(*COMMON))
Version = Annotated[int | None, Query(ge=1, le=2**62)]
#: checked by core on write (400); written here so the OpenAPI says what a topic may be
Topic = Annotated[str, Path(json_schema_extra={"pattern": TOPIC_PATTERN})]


@router.get("/knowledge", response_model=EntriesReply)
async def list_knowledge(orch: Orch, _: Caller, tag: str | None = None) -> JSONResp:
    entries = await orch.list_knowledge(tag)
    return JSONResp({"entries": [e.wire() for e in entries]})


@router.get("/knowledge/{topic:path}", response_model=EntryReply, responses=errors(404))
async def get_knowledge(topic: Topic, orch: Orch, _: Caller, version: Version = None) -> JSONResp:
    return JSONResp({"entry": (await orch.get_knowledge(topic, version)).wire()})


@router.put("/knowledge/{topic:path}", response_model=EntryReply, responses=errors(409))
async def put_knowledge(topic: Topic, body: KnowledgeIn, orch: Orch, caller: Caller,
                        idem: Keyed) -> JSONResp:
    entry = await orch.put_knowledge(topic, body.content, list(body.tags),
                                     body.expected_version, caller, idem)
    return JSONResp({"entry": entry.wire()})


@router.delete("/knowledge/{topic:path}", response_model=EntryReply,
                responses=errors(404, 409))
async def delete_knowledge(topic: Topic, orch: Orch, caller: Caller,
                           expected_version: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                           ) -> JSONResp:
    return JSONResp({"entry": (await orch.delete_knowledge(topic, expected_version,
                                                           caller)).wire()})
