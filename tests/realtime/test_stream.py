"""The replay/live seam of the event stream, driven by hand: a scripted store whose reads
can race with commits, a hub, and a sink that records what a client would receive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from unified_swarm.api import realtime
from unified_swarm.api.events_hub import EventHub
from unified_swarm.api.realtime import (
    CLOSE_GOING_AWAY,
    CLOSE_TOO_SLOW,
    Stream,
    TypeFilter,
    origin_allowed,
)
from unified_swarm.errors import InvalidInput
from unified_swarm.jsonutil import loads
from unified_swarm.models import Event, EventListener

TYPES = ("task.added", "task.claimed", "task.completed", "session.joined")


def ev(seq: int) -> Event:
    return Event(seq, TYPES[seq % len(TYPES)], 1_800_000_000.0 + seq, {"n": seq})


class ScriptedStore:
    """Only what the stream uses: `events_after`, and `add_listener` for the hub. A hook
    may run inside each read, to commit events in the middle of a replay."""

    def __init__(self, upto: int = 0) -> None:
        self.events = [ev(i) for i in range(1, upto + 1)]
        self.listeners: list[EventListener] = []
        self.on_read: Callable[[int], None] | None = None
        self.after_read: Callable[[int], None] | None = None
        self.reads = 0

    def add_listener(self, listener: EventListener) -> None:
        self.listeners.append(listener)

    def commit(self, *seqs: int, publish: Sequence[int] | None = None) -> None:
        """Append events; tell listeners about `publish` (default: all of them)."""
        self.events += [ev(s) for s in seqs]
        heard = [ev(s) for s in (seqs if publish is None else publish)]
        for listener in self.listeners:
            listener(heard)

    async def events_after(self, seq: int, limit: int) -> list[Event]:
        self.reads += 1
        if self.on_read is not None:
            self.on_read(self.reads)
        await asyncio.sleep(0)
        found = [e for e in self.events if e.seq > seq][:limit]
        if self.after_read is not None:
            self.after_read(self.reads)
        return found


class Sink:
    """Collects sent frames; `gate` (when set) holds every send until released."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.types: list[str] = []
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    async def send(self, text: str) -> None:
        if self.gate is not None:
            await self.gate.wait()
        data = loads(text)
        self.seqs.append(data["seq"])
        self.types.append(data["type"])
        self.arrived.set()

    async def until(self, seq: int) -> None:
        async with asyncio.timeout(5):
            while not self.seqs or self.seqs[-1] < seq:
                self.arrived.clear()
                await self.arrived.wait()


def setup(upto: int, after: int | None = 0, types: str | None = None,
          buffer: int = 100) -> tuple[ScriptedStore, EventHub, Stream, Sink]:
    store = ScriptedStore(upto)
    hub = EventHub(store, buffer=buffer)
    sink = Sink()
    stream = Stream(store, hub.subscribe(), sink.send, TypeFilter(types),
                    after)
    return store, hub, stream, sink


async def finish(hub: EventHub, task: asyncio.Task[tuple[int, str]]) -> tuple[int, str]:
    hub.close()
    async with asyncio.timeout(5):
        return await task


@pytest.mark.parametrize("when", ["before the read", "after the read"])
async def test_seam_has_no_gap_and_no_duplicate(when: str) -> None:
    """Events committed during the replay arrive from the listener, and from the store
    too when the read saw them; each is sent once, in order, and nothing is lost."""
    store, hub, stream, sink = setup(5)
    hook = lambda n: store.commit(6, 7) if n == 1 else None  # noqa: E731
    if when == "before the read":
        store.on_read = hook
    else:
        store.after_read = hook
    task = asyncio.create_task(stream.run())
    await sink.until(7)
    store.commit(8)
    await sink.until(8)
    assert await finish(hub, task) == (CLOSE_GOING_AWAY, "server shutting down")
    assert sink.seqs == list(range(1, 9))


async def test_resume_replays_only_what_follows() -> None:
    store, hub, stream, sink = setup(10, after=6)
    task = asyncio.create_task(stream.run())
    await sink.until(10)
    store.commit(11)
    await sink.until(11)
    await finish(hub, task)
    assert sink.seqs == [7, 8, 9, 10, 11]


async def test_live_only_starts_at_the_first_event_heard() -> None:
    store, hub, stream, sink = setup(4, after=None)
    task = asyncio.create_task(stream.run())
    await asyncio.sleep(0)
    store.commit(5, 6)
    await sink.until(6)
    await finish(hub, task)
    assert sink.seqs == [5, 6]
    assert store.reads == 0


async def test_a_hole_in_live_events_is_filled_from_the_store() -> None:
    """A listener that skipped (a Redis reconnect) must not make the client skip."""
    store, hub, stream, sink = setup(3)
    task = asyncio.create_task(stream.run())
    await sink.until(3)
    store.commit(4, 5, 6, publish=[6])
    await sink.until(6)
    await finish(hub, task)
    assert sink.seqs == [1, 2, 3, 4, 5, 6]


async def test_overflow_during_replay_catches_up_from_the_store(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realtime, "PAGE", 4)
    store, hub, stream, sink = setup(10, buffer=3)
    nxt = iter(range(11, 40))

    def busy(n: int) -> None:  # every read races with five commits: the buffer overflows
        if n <= 4:
            for _ in range(5):
                store.commit(next(nxt))

    store.on_read = busy
    task = asyncio.create_task(stream.run())
    await sink.until(30)
    store.commit(31)
    await sink.until(31)
    assert (await finish(hub, task))[0] == CLOSE_GOING_AWAY
    assert sink.seqs == list(range(1, 32))


async def test_a_slow_client_is_closed_with_the_seq_to_resume_from() -> None:
    store, _, stream, sink = setup(2, buffer=3)
    task = asyncio.create_task(stream.run())
    await sink.until(2)
    sink.gate = asyncio.Event()  # the client stops reading
    store.commit(3)
    await asyncio.sleep(0.01)  # the stream now waits in send(3)
    for seq in range(4, 12):
        store.commit(seq)
    sink.gate.set()
    async with asyncio.timeout(5):
        code, reason = await task
    assert code == CLOSE_TOO_SLOW
    assert sink.seqs == list(range(1, len(sink.seqs) + 1))
    assert reason == f"too slow: resume with after={sink.seqs[-1]}"
    # what it missed is all in the store: resuming from there has no gap
    rest = await store.events_after(sink.seqs[-1], 100)
    assert [e.seq for e in rest] == list(range(sink.seqs[-1] + 1, 12))


async def test_filtered_events_still_advance_the_position() -> None:
    store, hub, stream, sink = setup(8, types="task.completed")
    task = asyncio.create_task(stream.run())
    await sink.until(6)
    reads = store.reads
    store.commit(9, 10)
    store.commit(11, 12, 13, 14)
    await sink.until(14)
    await finish(hub, task)
    assert sink.seqs == [2, 6, 10, 14]
    assert set(sink.types) == {"task.completed"}
    assert store.reads == reads  # no false "gap" made it read the store again


def test_type_filter_matches_full_types_and_dotted_prefixes() -> None:
    f = TypeFilter("task, session.joined,")
    assert f("task.added") and f("task.claimed") and f("session.joined")
    assert not f("session.left") and not f("tasks.x") and not f("knowledge.updated")
    assert TypeFilter(None)("anything") and TypeFilter("")("anything")
    assert TypeFilter("task.")("task.added")
    with pytest.raises(InvalidInput):
        TypeFilter(",".join(f"t{i}" for i in range(40)))


@pytest.mark.parametrize(("origin", "host", "ok"), [
    (None, "127.0.0.1:8600", True),
    ("http://127.0.0.1:8600", "127.0.0.1:8600", True),
    ("http://localhost:5173", "127.0.0.1:8600", True),
    ("http://[::1]:8600", "127.0.0.1:8600", True),
    ("https://swarm.example:8443", "swarm.example:8443", True),
    ("https://evil.example", "127.0.0.1:8600", False),
    ("http://127.0.0.1.evil.example", "127.0.0.1:8600", False),
    ("null", "127.0.0.1:8600", False),
    ("file://", "127.0.0.1:8600", False),
])
def test_origin_allow_list(origin: str | None, host: str, ok: bool) -> None:
    assert origin_allowed(origin, host) is ok


async def test_hub_survives_a_broken_tap_and_forgets_unsubscribed() -> None:
    store = ScriptedStore()
    hub = EventHub(store)
    heard: list[int] = []

    def broken(_: Sequence[Event]) -> None:
        raise RuntimeError("boom")

    hub.tap(broken)
    hub.tap(lambda events: heard.extend(e.seq for e in events))
    sub = hub.subscribe()
    store.commit(1)
    assert heard == [1] and [e.seq for e in sub.drain()] == [1]
    hub.unsubscribe(sub)
    store.commit(2)
    assert sub.drain() == [] and hub.subscribers == 0
