"""The event fan-out hub: one store listener per app, one bounded buffer per subscriber.

The store calls `EventHub.publish` with the events of each committed step, in sequence
order, on the event loop (on Redis that includes the events other replicas committed). The
hub never awaits: it appends to each subscriber's buffer and wakes it. A subscriber whose
buffer is full is marked `overflowed` and hears nothing more; its reader decides what to do
(the realtime endpoint catches up from the store, or closes the socket so the client
resumes with `?after=`). So one slow WebSocket can never hold up the store or the others.

Synchronous taps (the Prometheus counters) see every event right after the buffers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from ..models import Event, EventListener

log = logging.getLogger("unified_swarm.events")
Tap = Callable[[Sequence[Event]], None]
#: events one subscriber may have waiting before it counts as too slow
DEFAULT_BUFFER = 10_000


class Subscription:
    """One subscriber's bounded buffer of live events, oldest first."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.overflowed = False
        self.closed = False
        self._events: deque[Event] = deque()
        self._wake = asyncio.Event()

    def push(self, events: Sequence[Event]) -> None:
        if self.overflowed or self.closed:
            return
        if len(self._events) + len(events) > self.maxsize:
            # Keep what is buffered (it is contiguous and still worth sending) but take
            # nothing more: a gap in the middle would be worse than a clean stop.
            self.overflowed = True
        else:
            self._events.extend(events)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    def reset(self) -> None:
        """Forget everything buffered and start listening afresh (after a catch-up)."""
        self._events.clear()
        self.overflowed = False

    def drain(self) -> list[Event]:
        """Everything buffered now, without waiting."""
        out = list(self._events)
        self._events.clear()
        self._wake.clear()
        return out

    async def next_batch(self) -> list[Event]:
        """Wait until something is buffered (or the subscription overflowed or closed)."""
        while not self._events and not self.overflowed and not self.closed:
            await self._wake.wait()
            self._wake.clear()
        return self.drain()


class EventSource(Protocol):
    """Where committed events come from (the Orchestrator, in the app)."""

    def add_listener(self, listener: EventListener) -> None: ...

    async def events_after(self, seq: int, limit: int) -> list[Event]: ...


class EventHub:
    """Fans the swarm's committed events out to subscribers. One per app."""

    def __init__(self, source: EventSource, *, buffer: int = DEFAULT_BUFFER) -> None:
        self.buffer = buffer
        self._subs: set[Subscription] = set()
        self._taps: list[Tap] = []
        self._closed = False
        source.add_listener(self.publish)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self) -> Subscription:
        """A new subscriber; it hears every event published from now on."""
        sub = Subscription(self.buffer)
        if self._closed:
            sub.close()
        else:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def tap(self, fn: Tap) -> None:
        """Call `fn` synchronously with every published batch (it must not block)."""
        self._taps.append(fn)

    def publish(self, events: Sequence[Event]) -> None:
        """The store listener: runs on the event loop, never awaits, never raises."""
        if not events:
            return
        for sub in self._subs:
            sub.push(events)
        for fn in self._taps:
            try:
                fn(events)
            except Exception:  # a broken tap must not stop the stream
                log.exception("event tap %r failed", fn)

    def close(self) -> None:
        """Shutting down: wake every subscriber so its connection can end cleanly."""
        self._closed = True
        for sub in self._subs:
            sub.close()
        self._subs.clear()

    def open(self) -> None:
        self._closed = False
