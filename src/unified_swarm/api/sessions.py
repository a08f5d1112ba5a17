"""Sessions: join, heartbeat (with directives), leave, drain, the registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from ..core.orchestrator import SessionSpec
from ..errors import Forbidden
from ..models import SessionStatus
from .deps import Caller, Holder, Keyed, Operator, Orch, SessionCaller, SwarmRoute
from .replies import COMMON, HeartbeatOut, Registered, SessionReply, SessionsReply, errors
from .responses import JSONResp
from .schemas import HeartbeatIn, IdPath, RegisterIn

router = APIRouter(route_class=SwarmRoute, tags=["sessions"], responses=errors(*COMMON))
#: ids may hold "/" (core.limits.ID_RE), so they take a path converter to stay addressable
ONE = "/session/{session_id:path}"


@router.post("/session/register", status_code=201, response_model=Registered,
             responses=errors(403, 409))
async def register(body: RegisterIn, orch: Orch, _: Operator, idem: Keyed) -> JSONResp:
    session, token = await orch.register(SessionSpec(
        capabilities=body.capabilities, id=body.id, name=body.name,
        max_concurrent_tasks=body.max_concurrent_tasks,
        heartbeat_interval=body.heartbeat_interval, metadata=body.metadata), idem)
    return JSONResp({"session": session.wire(), "token": token}, status_code=201)


@router.post("/session/heartbeat", response_model=HeartbeatOut, responses=errors(403, 404))
async def heartbeat(orch: Orch, session: SessionCaller,
                    body: Annotated[HeartbeatIn | None, Body()] = None) -> JSONResp:
    return await serve_heartbeat(body, Holder(orch, session))


async def serve_heartbeat(body: HeartbeatIn | None, call: Holder) -> JSONResp:
    """POST /session/heartbeat once its body is checked (the route, and the fast lane)."""
    beat, directives = await call.orch.heartbeat(call.session.id,
                                                 body.status if body else None)
    return JSONResp({
        "session": beat.session.wire(),
        "held": [lease.wire() for lease in beat.held],
        "directives": {
            "assignments": [t.wire() for t in directives.assignments],
            "interrupt": directives.interrupt.wire() if directives.interrupt else None,
            "drain": directives.drain,
            "preempt": [{"task_id": tid, "grace_s": round(grace, 3)}
                        for tid, grace in directives.preempt],
        },
    })


@router.delete(ONE, response_model=SessionReply, responses=errors(403, 404))
async def leave(session_id: IdPath, orch: Orch, caller: Caller) -> JSONResp:
    if caller.role != "operator" and caller.session_id != session_id:
        raise Forbidden("a session can only remove itself")
    return JSONResp({"session": (await orch.leave(session_id)).wire()})


@router.post(ONE + "/drain", response_model=SessionReply, responses=errors(403, 404, 409))
async def drain(session_id: IdPath, orch: Orch, _: Operator) -> JSONResp:
    return JSONResp({"session": (await orch.drain(session_id)).wire()})


@router.get("/sessions", response_model=SessionsReply)
async def list_sessions(orch: Orch, _: Caller, status: SessionStatus | None = None) -> JSONResp:
    sessions = await orch.list_sessions(status)
    return JSONResp({"sessions": [s.wire() for s in sessions]})


@router.get(ONE, response_model=SessionReply, responses=errors(404))
async def get_session(session_id: IdPath, orch: Orch, _: Caller) -> JSONResp:
    return JSONResp({"session": (await orch.get_session(session_id)).wire()})
