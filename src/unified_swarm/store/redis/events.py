"""Hearing every committed event of the swarm, from every replica, exactly once.

Each write script appends its events to the log (P:events) and then publishes the last
seq on the swarm's channel. Pub/sub is only a doorbell: on every ring, and once a second
anyway, the reader re-reads the log after the last seq it delivered, so a lost message
(a reconnect, a slow subscriber dropped by Redis) delays an event by at most a second and
never loses it. Events of this process's own writes come back in the script's reply and
are delivered at once when they are next in line; a gap (another replica wrote in
between) is filled from the log first. Listeners see each event once, in seq order.

A ring of this process's own write usually arrives together with the write's reply: the
reader lets a couple of loop turns pass, and reads the log only if what the ring (or a
gap) announced is still not delivered, instead of one read of the log per write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from redis.asyncio import Redis

from ...errors import SwarmError
from ...models import Event, EventListener
from .connection import UNAVAILABLE_ERRORS

log = logging.getLogger("unified_swarm.store.redis")

Fetch = Callable[[int, int], Awaitable[list[Event]]]
#: the longest an event can wait when a pub/sub message was lost
POLL = 1.0
PAGE = 1000
#: pages read per wake-up before yielding to other work (the rest follows at once)
MAX_PAGES = 50
#: own events held back behind a gap, at most (more are dropped and read from the log)
MAX_PENDING = 10_000
#: loop turns the reader lets pass before it reads the log for a ring or a gap: the reply
#: of this process's own write, read off another connection at the same moment, usually
#: delivers what the ring announced, and then nothing is left to read
SETTLE_TURNS = 2
#: "read the log whatever was delivered" (a timer, a resubscription, an error)
ANYWAY = 1 << 62


class EventPump:
    """Delivers the events of one swarm to this process's listeners, in order, once."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._listeners: list[EventListener] = []
        self._seen = 0
        self._pending: dict[int, Event] = {}
        self._wake = asyncio.Event()
        #: the last seq a ring or a gap says exists (ANYWAY: read the log regardless)
        self._want = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    @property
    def seen(self) -> int:
        """The last seq delivered to the listeners."""
        return self._seen

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def start(self, client: Redis, channel: str, last_seq: int) -> None:
        """Deliver everything after `last_seq` (the log's end when the store opened)."""
        self._seen = last_seq
        self._tasks = [
            asyncio.create_task(self._subscribe(client, channel), name="swarm-redis-pubsub"),
            asyncio.create_task(self._read(), name="swarm-redis-events"),
        ]

    async def stop(self) -> None:
        # The flag, not only cancel(): a cancellation that lands inside redis-py can come
        # out as a timeout error, which the loops would take for an outage and retry.
        self._closed = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        self._tasks = []

    def deliver(self, events: Sequence[Event]) -> None:
        """Hand over what is next in line; hold the rest until the gap before it is read."""
        for ev in events:
            if ev.seq > self._seen:
                self._pending[ev.seq] = ev
        batch: list[Event] = []
        while self._seen + 1 in self._pending:
            batch.append(self._pending.pop(self._seen + 1))
            self._seen += 1
        if len(self._pending) > MAX_PENDING:  # the log has them all: read them from there
            self._pending.clear()
            self._ring(ANYWAY)
        if self._pending:
            self._ring(max(self._pending))
        if batch:
            for listener in self._listeners:
                try:
                    listener(batch)
                except Exception:  # one broken listener must not starve the others
                    log.exception("an event listener failed")

    async def _subscribe(self, client: Redis, channel: str) -> None:
        """Ring the reader on every message, and every POLL seconds regardless."""
        backoff = 0.05
        while not self._closed:
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(channel)
                self._ring(ANYWAY)  # whatever was written while we were not subscribed
                backoff = 0.05
                while not self._closed:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=POLL)
                    if msg is None:
                        self._ring(ANYWAY)
                    elif (seq := _seq(msg.get("data"))) > self._seen:
                        self._ring(seq)  # (our own writes were delivered from the reply)
            except UNAVAILABLE_ERRORS as exc:
                _raise_if_cancelled()
                log.debug("event subscription lost (%s); resubscribing", exc)
            finally:
                with contextlib.suppress(*UNAVAILABLE_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            self._ring(ANYWAY)  # poll the log while the subscription is down
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, POLL)

    def _ring(self, seq: int) -> None:
        """Ask the reader to bring delivery up to `seq` (ANYWAY: to read the log)."""
        self._want = max(self._want, seq)
        self._wake.set()

    async def _settled(self) -> bool:
        """Whether the log must be read now: a few loop turns first, for a reply in flight
        to deliver what was asked (an own write's ring, a gap it fills)."""
        for _ in range(SETTLE_TURNS):
            if self._want <= self._seen and not self._pending:
                break
            await asyncio.sleep(0)
        want, self._want = self._want, 0
        return want > self._seen or bool(self._pending)

    async def _read(self) -> None:
        failing = False
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                break
            if not await self._settled():
                continue
            try:
                for _ in range(MAX_PAGES):
                    page = await self._fetch(self._seen, PAGE)
                    self.deliver(page)
                    if len(page) < PAGE:
                        break
                else:
                    self._ring(ANYWAY)
                if failing:
                    log.info("the event log is readable again")
                failing = False
            except SwarmError as exc:
                _raise_if_cancelled()
                if self._closed:
                    break
                if not failing:
                    log.warning("cannot read the event log, retrying: %s", exc)
                failing = True
                await asyncio.sleep(0.25)
                self._ring(ANYWAY)


def _raise_if_cancelled() -> None:
    """A cancellation redis-py turned into a timeout is still one: stop, do not retry.

    Without this, a task cancelled by its loop's shutdown (a store never closed, say after
    a failed test) would read the error as an outage and retry for ever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _seq(data: object) -> int:
    try:
        return int(str(data))
    except ValueError:
        return 1 << 62  # not ours to judge: read the log
