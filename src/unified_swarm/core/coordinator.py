"""The coordination loop of one replica: the leader lease, the reaper and the matcher.

Event-driven, not a polling loop (DESIGN): it sleeps until the next deadline the store
knows of, or until an event brings one closer, then reaps everything due in bounded batches
and offers work to sessions idle past `idle_threshold`. Only the replica holding the leader
lease runs it (core/leader.py); on SQLite there is one, always leading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from ..config import Settings
from ..errors import Contended, NotClaimable, SwarmError
from ..models import Clock, Event, Session, Task
from ..store.base import Store
from .leader import LeaderLease

log = logging.getLogger("unified_swarm.orchestrator")
#: a hair past a deadline, so the lease is due when the reaper looks
PAST_DUE = 0.005


class Offering(Protocol):
    """What the matcher needs of a scheduler (core/scheduling.py, core/learned.py)."""

    async def offer(self, session: Session, clock: Clock, deadline: float) -> Task | None: ...


class Coordinator:
    """Reaper and matcher over one store; `tick` is one pass, `start` runs the loop."""

    def __init__(self, store: Store, settings: Settings, clock: Clock, scheduler: Offering,
                 interrupted: Callable[[], bool]) -> None:
        self.store, self.settings, self.clock = store, settings, clock
        self.scheduler = scheduler
        self.interrupted = interrupted
        #: replicas sharing a store elect the one that runs the coordination loop
        self.lease = LeaderLease(store, settings.replica_id)
        self._poke = asyncio.Event()
        self._target: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        await self.lease.keep()
        self._task = asyncio.create_task(self._coordinate(), name="swarm-coordinator")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.lease.resign()

    def on_events(self, events: Sequence[Event]) -> None:
        """A store listener: a new lease, offer or session brings the next deadline closer."""
        for ev in events:
            d = ev.data
            if ev.type == "task.assigned":
                self._deadline_at(d["deadline"])
            elif ev.type == "task.claimed":
                self._deadline_at(d["expires_at"])
            elif ev.type == "session.joined":
                self._deadline_at(ev.at + self.settings.lease_ttl(d["heartbeat_interval"]))

    def _deadline_at(self, deadline: float) -> None:
        if self._target is None or deadline < self._target:
            self._target = deadline
            self._poke.set()

    async def tick(self, now: float) -> float | None:
        """One pass at `now`: reap everything due, then offer work to sessions idle past
        `idle_threshold`. Returns the next deadline. Tests call this directly with a
        hand-moved clock (the loop's deterministic drain mode)."""
        while True:
            reaped = await self.store.reap(now, self.settings.reap_batch)
            if reaped:
                log.info("reaped: %d requeued, %d failed, %d sessions offline",
                         len(reaped.requeued), len(reaped.failed), len(reaped.offline))
            if not reaped.more:
                break
        await self.match(now)
        return await self.store.next_deadline()

    async def match(self, now: float) -> None:
        """Push work to sessions that sat idle past idle_threshold without asking for it
        (a session that long-polls takes ready work itself and is never idle that long)."""
        if self.interrupted():
            return
        # long-idle sessions first: there rarely are any, and counting tasks scans them all
        idle = await self.store.idle_sessions(now, self.settings.idle_threshold)
        if not idle or not (await self.store.counts()).tasks.get("ready"):
            return
        deadline = now + self.settings.task_claim_timeout
        for s in idle:
            try:
                offered = await self.scheduler.offer(s, lambda: now, deadline)
            except (NotClaimable, Contended):  # it cannot take work now, or lost every race
                continue
            if offered is not None:
                log.info("offered %s to idle session %s", offered.id, s.id)

    async def _coordinate(self) -> None:
        """Sleep until the next deadline (or a poke), then tick. Never a fixed poll."""
        match_period = max(self.settings.idle_threshold / 4, 0.05)
        while not self._stopping:
            self._poke.clear()
            delay = match_period
            if await self.lease.keep():
                try:
                    nxt = await self.tick(self.clock())
                    self._target = nxt
                    if nxt is not None:
                        delay = min(max(nxt - self.clock(), 0.0) + PAST_DUE, match_period)
                except SwarmError as exc:
                    log.warning("coordination pass failed, retrying in 1 s: %s", exc)
                    delay = 1.0
            if self.lease.renew_every is not None:  # come round in time to renew the lease
                delay = min(delay, self.lease.renew_every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), delay)
