"""The SQLite engine's group commit, driven directly: steps that wait while the writer is
busy are committed together, each in its own savepoint, so one failing step rolls back
alone and the rest of its group commits; listeners hear only committed events, once."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from unified_swarm.errors import NotFound, Unavailable
from unified_swarm.models import Event
from unified_swarm.store.sqlite.engine import Engine, WriteFn


def init(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")


class Committed:
    """The on_commit callback: the events of each group, as the writer hands them over."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []

    def __call__(self, events: list[Event]) -> None:
        self.groups.append([e.seq for e in events])


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[Engine, Committed]]:
    heard = Committed()
    eng = Engine(tmp_path / "engine.db", heard)
    await asyncio.to_thread(eng.start, init)
    yield eng, heard
    await asyncio.to_thread(eng.stop)


def put(key: str, value: int) -> WriteFn[int]:
    """A step writing one row and emitting one event (its seq is the value)."""
    def step(conn: sqlite3.Connection, ev: list[Event]) -> int:
        conn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (key, value))
        ev.append(Event(value, "put", 0.0, {"k": key}))
        return value
    return step


def failing(key: str, exc: BaseException) -> WriteFn[int]:
    """A step that writes, emits, then raises: none of it may survive."""
    def step(conn: sqlite3.Connection, ev: list[Event]) -> int:
        conn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (key, -1))
        ev.append(Event(-1, "put", 0.0, {"k": key}))
        raise exc
    return step


async def rows(eng: Engine) -> dict[str, int]:
    return await eng.read(lambda conn: {r[0]: r[1] for r in conn.execute("SELECT k, v FROM kv")})


async def queued_behind_a_busy_writer(eng: Engine, steps: list[WriteFn[int]]
                                      ) -> list[int | BaseException]:
    """Hold the writer in a first step while `steps` queue up, so they form one group."""
    entered, release = threading.Event(), threading.Event()

    def blocker(conn: sqlite3.Connection, ev: list[Event]) -> int:
        entered.set()
        release.wait(10)
        return 0

    first = asyncio.ensure_future(eng.write(blocker))
    await asyncio.to_thread(entered.wait, 10)
    rest = [asyncio.ensure_future(eng.write(s)) for s in steps]
    await asyncio.sleep(0.05)  # every one is queued before the writer looks again
    release.set()
    await first
    return list(await asyncio.gather(*rest, return_exceptions=True))


async def test_waiting_steps_commit_as_one_group(engine: tuple[Engine, Committed]) -> None:
    eng, heard = engine
    results = await queued_behind_a_busy_writer(eng, [put(f"k{n}", n) for n in range(1, 51)])
    assert results == list(range(1, 51))
    assert heard.groups == [list(range(1, 51))]  # one commit for the fifty
    assert await rows(eng) == {f"k{n}": n for n in range(1, 51)}


@pytest.mark.parametrize("exc", [NotFound("no such thing"), ValueError("a bug in one step")])
async def test_one_failing_step_does_not_fail_its_group(engine: tuple[Engine, Committed],
                                                        exc: BaseException) -> None:
    eng, heard = engine
    steps = [put("a", 1), failing("bad", exc), put("b", 2)]
    results = await queued_behind_a_busy_writer(eng, steps)
    assert results[0] == 1 and results[2] == 2
    assert results[1] is exc  # its caller hears its own error, unchanged
    assert await rows(eng) == {"a": 1, "b": 2}  # its write was rolled back alone
    assert heard.groups == [[1, 2]]  # its event was never delivered


async def test_steps_of_a_group_see_each_other_in_order(
        engine: tuple[Engine, Committed]) -> None:
    """Isolation inside a group: a step sees what the steps before it wrote, and a later
    step's failure does not undo an earlier step's write (its savepoint was released)."""
    eng, _ = engine

    def bump(conn: sqlite3.Connection, ev: list[Event]) -> int:
        conn.execute("UPDATE kv SET v = v + 1 WHERE k = 'a'")
        value: int = conn.execute("SELECT v FROM kv WHERE k = 'a'").fetchone()[0]
        return value

    steps = [put("a", 1), bump, failing("c", ValueError("a bug after its write")), bump]
    results = await queued_behind_a_busy_writer(eng, steps)
    assert results[0] == 1 and results[1] == 2 and results[3] == 3
    assert isinstance(results[2], ValueError)
    assert await rows(eng) == {"a": 3}


async def test_a_connection_failure_fails_the_whole_group(
        engine: tuple[Engine, Committed]) -> None:
    """An SQLite error in a step means the connection itself is in trouble: nothing of the
    group is written and every caller hears 503 (Unavailable), which it may retry."""
    eng, heard = engine

    def broken(conn: sqlite3.Connection, ev: list[Event]) -> int:
        conn.execute("SELECT * FROM no_such_table")
        return 0

    results = await queued_behind_a_busy_writer(eng, [put("a", 1), broken, put("b", 2)])
    assert all(isinstance(r, Unavailable) for r in results)
    assert await rows(eng) == {}
    assert heard.groups == []
    assert await eng.write(put("c", 3)) == 3  # the writer carries on with the next group
