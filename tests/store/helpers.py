"""Small builders shared by the store tests."""

from __future__ import annotations

from unified_swarm.core.orchestrator import hash_token
from unified_swarm.core.rules import TaskSpec
from unified_swarm.models import Session, SessionStatus
from unified_swarm.store.base import Store

from ..conftest import T0


def session(sid: str, caps: list[str] | None = None, *, interval: float = 10.0,
            max_tasks: int = 1) -> Session:
    return Session(id=sid, name=sid, capabilities=caps if caps is not None else ["build"],
                   status=SessionStatus.IDLE, max_concurrent_tasks=max_tasks,
                   heartbeat_interval=interval, last_heartbeat=T0, registered_at=T0)


async def join(store: Store, sid: str, caps: list[str] | None = None, *, now: float = T0,
               interval: float = 10.0, max_tasks: int = 1) -> Session:
    return await store.register_session(session(sid, caps, interval=interval,
                                                max_tasks=max_tasks), hash_token(sid), now)


def spec(tid: str, type_: str = "build", **kw: object) -> TaskSpec:
    return TaskSpec(type=type_, id=tid, **kw)  # type: ignore[arg-type]
