"""The leader lease: which replica runs the coordination loop (DESIGN: a 5 s lease).

Replicas sharing one store (Redis) elect a leader through `store.base.Leadership`; a store
without it (SQLite: one process) leaves its one orchestrator leading. The lease is judged
by the store's clock, and renewed every third of its length. A replica stops leading at
once when a renewal fails (the store did not answer, or another replica holds the lease)
and, by its own monotonic clock, when the lease it last renewed has run out. A leader
that was paused past its lease is fenced by the store (its coordinator writes are
refused), so two replicas never coordinate on the strength of the same lease.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time

from ..errors import SwarmError
from ..store.base import Leadership, Store

log = logging.getLogger("unified_swarm.orchestrator")
LEADER_TTL = 5.0


class LeaderLease:
    """This replica's side of the leader election."""

    def __init__(self, store: Store, replica_id: str, ttl: float = LEADER_TTL) -> None:
        self.elect: Leadership | None = store if isinstance(store, Leadership) else None
        #: unique per orchestrator, even for two in one process with one replica_id
        self.holder = f"{replica_id}/{secrets.token_hex(4)}"
        self.ttl = ttl
        #: the leader token of the lease held now (grows with every change of hands)
        self.token: int | None = None
        self._leading = self.elect is None
        self._until = 0.0
        self._tried = -float("inf")

    @property
    def renew_every(self) -> float | None:
        """How often the coordination loop must come round to keep the lease."""
        return None if self.elect is None else self.ttl / 3

    @property
    def leading(self) -> bool:
        """True while this replica holds an unexpired lease (always, without elections)."""
        if self._leading and self.elect is not None and time.monotonic() >= self._until:
            self._lose("the lease ran out before it was renewed")
        return self._leading

    async def keep(self) -> bool:
        """Take or renew the lease once a third of it has passed; True while leading."""
        if self.elect is None:
            return True
        started = time.monotonic()
        if started < self._tried + self.ttl / 3:
            return self.leading
        self._tried = started
        try:
            token = await self.elect.try_lead(self.holder, self.ttl)
        except SwarmError as exc:
            self._lose(f"the store did not answer: {exc.message}")
            return False
        if token is None:
            self._lose("another replica holds the lease")
        elif time.monotonic() < started + self.ttl:  # an answer later than that is stale
            if not self._leading or token != self.token:
                log.info("leading the swarm (leader token %d)", token)
            self._leading, self.token, self._until = True, token, started + self.ttl
        return self._leading

    async def resign(self) -> None:
        """Give the lease up at once (a clean shutdown), so another replica takes over."""
        if self.elect is not None and self.token is not None:
            with contextlib.suppress(SwarmError):
                await self.elect.resign(self.holder)
        self._lose("resigned", logging.INFO)

    def _lose(self, why: str, level: int = logging.WARNING) -> None:
        if self._leading and self.elect is not None:
            log.log(level, "stopped leading the swarm: %s", why)
        self._leading = self._leading and self.elect is None
        self.token = None
