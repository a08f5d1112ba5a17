"""Small builders shared by the store tests, and the use-cases the contract drives through
core: claiming the best task, offering one, adding a planned batch. They are what the
Orchestrator does (core/scheduling.py, core/planning.py) over a store's primitives, so the
contract checks the primitives and the one choice written above them together."""

from __future__ import annotations

from collections.abc import Sequence
from weakref import WeakKeyDictionary

from unified_swarm.config import Settings
from unified_swarm.core import planning
from unified_swarm.core.scheduling import Scheduler
from unified_swarm.errors import NotFound
from unified_swarm.models import Claimed, Clock, Session, SessionStatus, Task, TaskSpec
from unified_swarm.store.base import Store
from unified_swarm.tokens import hash_token

from ..conftest import T0

#: one scheduler per store, as an orchestrator has: concurrent claims share it
_SCHEDULERS: WeakKeyDictionary[Store, Scheduler] = WeakKeyDictionary()
SETTINGS = Settings()


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


def at(now: float) -> Clock:
    """A clock stopped at `now` (tests move time by hand)."""
    return lambda: now


def scheduler(store: Store) -> Scheduler:
    if store not in _SCHEDULERS:
        _SCHEDULERS[store] = Scheduler(store)
    return _SCHEDULERS[store]


async def _session(store: Store, sid: str) -> Session:
    s = await store.get_session(sid)
    if s is None:
        raise NotFound(f"session {sid!r} does not exist")
    return s


async def claim_next(store: Store, sid: str, now: float) -> Claimed | None:
    """The best task for the session, claimed: an offer to it first, then priority, age."""
    return await scheduler(store).claim(await _session(store, sid), at(now))


async def offer_next(store: Store, sid: str, now: float, deadline: float) -> Task | None:
    """The best ready task for the session, offered to it until `deadline` (the matcher)."""
    return await scheduler(store).offer(await _session(store, sid), at(now), deadline)


async def add_tasks(store: Store, specs: Sequence[TaskSpec], now: float,
                    settings: Settings = SETTINGS) -> list[Task]:
    """A batch planned against the store and inserted if what its plan read still holds."""
    return await planning.add_tasks(store, specs, at(now), settings)
