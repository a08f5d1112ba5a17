"""The Redis store: several hosts, several orchestrator replicas, one swarm.

`SWARM_STORE=redis://host:port/db[?clock=caller|server]`, keys under
`settings.redis_prefix` (keyspace: keys.py). It keeps the SQLite store's observable
behaviour: the same errors, events (same types and data fields), idempotency rules and
transitions.

Atomicity: every operation, reads included, is ONE call of one Lua script (scripts.py,
lua/*.lua), and a script runs alone on the Redis primary. Each script checks everything
it may refuse before its first write, so a refused call writes nothing, and appends its
events to the log in the same step. `insert_batch` writes a batch planned in Python
(core/planning.py) only if none of the statuses its plan read has changed and no id exists
yet, so the batch is checked against exactly the state it is written into. The state
machine's tables reach the scripts as data (scripts.py `rules`).

Clock ("one clock for leases"): by default a script judges time by the `now` it is
given, which is what tests that move time by hand need. An orchestrator running on the
real clock switches its store to Redis TIME (`use_store_clock`, see core/orchestrator.py),
and `?clock=server` does the same for any user of the URL: then every lease, deadline and
timestamp comes from Redis TIME inside the script (a deadline passed in is shifted by the
difference), never behind the latest time a write recorded (P:clock). Replicas whose
clocks disagree then agree, and timestamps follow the order in which steps commit, which
callers' clocks cannot give: two replicas' `now`s reach Redis in any order. The leader
lease is always judged by Redis (PX expiry).

Epoch: the first open writes a random epoch into P:meta and this host's data directory
(`<data_dir>/redis-epoch-<prefix>`). An open refuses when Redis has no epoch (emptied,
replaced) but this host saw one, or has another one; every script refuses to run when
the epoch is not the one this process opened (Unavailable, 503, nothing written). So an
emptied Redis never hands out fencing tokens from zero again behind live workers' backs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from ... import lifecycle, models
from ...config import Settings
from ...errors import InvalidInput, Unavailable
from ...jsonutil import digest, dumps, loads
from ...models import (
    JSON,
    USAGE_TYPES,
    Attempt,
    Candidate,
    Claimed,
    Counts,
    Event,
    EventListener,
    Heartbeat,
    Idem,
    Interrupt,
    KnowledgeEntry,
    Quarantine,
    Reaped,
    Recorded,
    Replay,
    Session,
    Split,
    Task,
    TaskStatus,
)
from ...stats import PairStats
from .. import records, replay
from ..base import EVENT_TYPE_RE, cursor_seq
from ..replay import LostReplies
from . import codec
from .codec import num, opt
from .connection import (
    UNAVAILABLE_ERRORS,
    as_store_error,
    check_durability,
    epoch_file,
    epoch_refusal,
    known_epoch,
    make_client,
    parse_url,
    remember_epoch,
)
from .events import EventPump
from .keys import Keys
from .scripts import refusal, source

SCHEMA_VERSION = 1
#: tasks one list_tasks call looks at before it answers with a cursor
LIST_BUDGET = 20_000
#: the idempotency arguments of a call without a key
NO_IDEM = ("",)


class RedisStore:
    """Implements `store.base.Store` (and `store.base.Leadership`) on one Redis primary."""

    kind = "redis"

    def __init__(self, url: str, settings: Settings) -> None:
        self.settings = settings
        self.target = parse_url(url)
        self.keys = Keys(settings.redis_prefix, self.target.db)
        self._client: Redis | None = None
        self._script: AsyncScript | None = None
        self._epoch = ""
        self._fence = ""  # "holder\ntoken" while this process believes it leads
        self._clock = self.target.clock
        self._pump = EventPump(self.events_after)
        #: a test fault: replies lost after their script ran (store/replay.py)
        self.faults = LostReplies()

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        client = make_client(self.target)
        try:
            await client.ping()
            await check_durability(client, self.target, self.settings.redis_allow_unsafe)
            self._client, self._script = client, client.register_script(source())
            await self._open_epoch()
            last = (await self.counts()).last_seq
        except BaseException as exc:
            self._client = self._script = None
            await client.aclose(close_connection_pool=True)
            if isinstance(exc, UNAVAILABLE_ERRORS):
                raise as_store_error(exc, self.target.shown) from exc
            raise
        self._pump.start(client, self.keys.channel, last)

    async def _open_epoch(self) -> None:
        path = epoch_file(self.settings.data_dir, self.keys.prefix)
        known = known_epoch(path)
        epoch, schema = await self._call("init", uuid.uuid4().hex, str(SCHEMA_VERSION),
                                         "1" if known is None else "0")
        if epoch is None or (known is not None and known != epoch):
            assert known is not None
            raise epoch_refusal(self.target, self.keys.prefix, path, known, epoch)
        if int(schema) > SCHEMA_VERSION:
            raise InvalidInput(f"redis holds schema {schema}, newer than this version of "
                               f"unified-swarm understands ({SCHEMA_VERSION})")
        self._epoch = epoch
        if known is None:
            remember_epoch(path, epoch)

    async def close(self) -> None:
        await self._pump.stop()
        client, self._client, self._script = self._client, None, None
        if client is not None:
            await client.aclose(close_connection_pool=True)

    def add_listener(self, listener: EventListener) -> None:
        self._pump.add_listener(listener)

    def use_store_clock(self) -> None:
        """Judge time by Redis TIME from now on (store.base.StoreClock)."""
        self._clock = "s"

    async def _call(self, op: str, *args: str, now: float | None = None) -> list[Any]:
        """Run one operation of the script; deliver its events; raise its refusal."""
        return (await self._run(op, NO_IDEM, args, now))[0]

    async def _keyed(self, op: str, idem: Idem | None, args: Sequence[str], now: float,
                     extra: str = "") -> tuple[list[Any], str | None]:
        """Run an operation that may carry an Idempotency-Key (lua/keyed.lua): the payload,
        and the `extra` kept with it when the answer is a kept one (else None)."""
        keyed = NO_IDEM if idem is None else (idem.id, idem.fingerprint, num(idem.ttl), extra)
        result = await self._run(op, keyed, args, now)
        if self.faults.armed:
            self.faults.after(op)
        return result

    async def recall(self, idem: Idem, now: float) -> Replay | None:
        reply = await self._call("recall", idem.id, now=now)
        if not reply[0]:
            return None
        fingerprint, kind, extra, raw = reply
        replay.check(idem, fingerprint)
        return _answer(kind, loads(raw), extra)

    async def keep(self, kind: str, idem: Idem, answer: Replay, now: float) -> Replay:
        # the answer travels as the key's "extra" (lua/keyed.lua, OPS.keep), its kind as
        # the operation a recall reports
        keyed = (idem.id, idem.fingerprint, num(idem.ttl), replay.encode(kind, answer))
        _, kept = await self._run("keep", keyed, [kind], now)
        if self.faults.armed:
            self.faults.after(kind)
        return answer if kept is None else replay.decode(kind, kept)

    async def _run(self, op: str, keyed: Sequence[str], args: Sequence[str],
                   now: float | None) -> tuple[list[Any], str | None]:
        if self._script is None:
            raise Unavailable("the redis store is not open", retry_after=1.0)
        argv = [op, self.keys.prefix, self._epoch, self._clock, self._fence,
                self.keys.channel, num(self.settings.lease_factor),
                "" if now is None else num(now), *keyed, *args]
        try:
            reply: list[Any] = await self._script(args=argv)
        except UNAVAILABLE_ERRORS as exc:
            raise as_store_error(exc, self.target.shown) from exc
        status, events, *payload = reply
        if status == "=":  # the answer kept under this call's Idempotency-Key
            extra, raw = payload
            return loads(raw), extra
        if events:
            self._pump.deliver([codec.event_from(e) for e in events])
        if status == "!":
            code, *rest = payload
            if code == "epoch":
                raise Unavailable(
                    f"the swarm's data in redis at {self.target.shown} (prefix "
                    f"{self.keys.prefix!r}) was emptied or replaced while this process ran "
                    f"(epoch {self._epoch} expected, found {rest[0] or 'none'}): refusing "
                    f"every call rather than issuing fencing tokens again", retry_after=5.0)
            raise refusal(code, rest)
        return payload, None

    async def ping(self) -> None:
        await self._call("ping")

    # -- sessions ------------------------------------------------------------------------

    async def register_session(self, session: Session, token_hash: str, now: float,
                               idem: Idem | None = None) -> Session:
        s = session
        reply, _ = await self._keyed(
            "register", idem, (s.id, s.name, dumps(s.capabilities), str(s.max_concurrent_tasks),
                               num(s.heartbeat_interval), dumps(s.metadata), token_hash), now)
        return codec.session_from(reply[0])

    async def session_by_token(self, token_hash: str) -> Session | None:
        reply = await self._call("session_by_token", token_hash)
        return None if not reply[0] else codec.session_from(reply[0])

    async def get_session(self, session_id: str) -> Session | None:
        reply = await self._call("get_session", session_id)
        return None if not reply[0] else codec.session_from(reply[0])

    async def list_sessions(self) -> list[Session]:
        reply = await self._call("list_sessions")
        return [codec.session_from(r) for r in reply[0]]

    async def heartbeat(self, session_id: str, now: float, status: str | None) -> Heartbeat:
        session, held, at, notes = await self._call("heartbeat", session_id, opt(status),
                                                    now=now)
        tasks = [codec.task_from(f) for f in held]
        return Heartbeat(
            session=codec.session_from(session),
            held=[codec.held_lease(t, n) for t, n in zip(tasks, notes, strict=True)
                  if t.status in lifecycle.PAUSED or (
                      t.status == TaskStatus.IN_PROGRESS and t.lease_expires_at is not None
                      and t.lease_expires_at > float(at))],
            assignments=[t for t in tasks if t.status == TaskStatus.ASSIGNED],
        )

    async def leave_session(self, session_id: str, now: float, reason: str) -> Session:
        reply = await self._call("leave", session_id, reason, now=now)
        return codec.session_from(reply[0])

    async def set_draining(self, session_id: str, now: float) -> Session:
        reply = await self._call("set_draining", session_id, now=now)
        return codec.session_from(reply[0])

    async def idle_sessions(self, now: float, idle_for: float) -> list[Session]:
        reply = await self._call("idle_sessions", num(idle_for), now=now)
        return [codec.session_from(r) for r in reply[0]]

    # -- tasks ---------------------------------------------------------------------------

    async def task_statuses(self, task_ids: Sequence[str]) -> dict[str, TaskStatus]:
        found: dict[str, TaskStatus] = {}
        for i in range(0, len(task_ids), 1000):
            chunk = list(task_ids[i:i + 1000])
            reply = await self._call("statuses", *chunk)
            found.update({tid: TaskStatus(st) for tid, st in zip(chunk, reply[0], strict=True)
                          if st})
        return found

    async def insert_batch(self, tasks: Sequence[Task], assumed: Mapping[str, TaskStatus],
                           now: float, idem: Idem | None = None) -> list[Task] | None:
        # the reply holds only seqs and the time: a kept answer needs the tasks too
        extra = "" if idem is None else replay.encode("insert_batch", list(tasks))
        reply, kept = await self._keyed("insert_batch", idem, _batch_args(tasks, assumed),
                                        now, extra)
        if reply[0] == "replan":
            return None
        return _added(list(tasks) if kept is None else replay.tasks_of(kept), reply)

    async def get_task(self, task_id: str) -> Task | None:
        reply = await self._call("get_task", task_id)
        return None if not reply[0] else codec.task_from(reply[0])

    async def list_tasks(
        self, *, status: str | None = None, capability: str | None = None,
        session: str | None = None, limit: int = 100, cursor: str | None = None,
    ) -> tuple[list[Task], str | None]:
        after = cursor_seq(cursor)
        if limit <= 0:
            return [], None
        tasks: list[Task] = []
        # one script looks at LIST_BUDGET tasks at most (a script blocks the server); a
        # selective filter asks again from where it stopped until the page is full or the
        # tasks end, so a page holds what SQLite's does, not a short or empty page whose
        # matches lie further on
        while True:
            found, more, last = await self._call(
                "list_tasks", str(after), str(limit - len(tasks)), opt(status),
                opt(capability), opt(session), str(LIST_BUDGET))
            tasks += [codec.task_from(f) for f in found]
            if len(tasks) > limit:
                return tasks[:limit], str(tasks[limit - 1].seq)
            if not int(more):
                return tasks, None
            if len(tasks) == limit:  # full, and the scan stopped at `last`: go on from there
                return tasks, str(last)
            after = int(last)

    async def history(self, task_id: str) -> list[Attempt]:
        reply = await self._call("history", task_id)
        return [codec.attempt_from(task_id, f) for f in reply[0]]

    async def notes(self, task_id: str) -> list[JSON]:
        reply = await self._call("notes", task_id)
        return [loads(n) for n in reply[0]]

    async def add_note(self, task_id: str, note: dict[str, JSON], now: float) -> None:
        await self._call("add_note", task_id, dumps(note), now=now)

    async def ready_candidates(self, capabilities: Sequence[str],
                               limit: int) -> list[Candidate]:
        reply = await self._call("ready_candidates", str(int(limit)), *capabilities)
        found = [codec.candidate_from(values) for values in reply[0]]
        if len(capabilities) > 1:
            found.sort(key=lambda t: (-t.priority, t.seq))  # the heads of several indexes
        return found

    async def offered_to(self, session_id: str) -> list[Candidate]:
        reply = await self._call("offered_to", session_id)
        return [codec.candidate_from(values) for values in reply[0]]

    async def check_in(self, session_id: str, now: float) -> Session:
        reply = await self._call("check_in", session_id, now=now)
        return codec.session_from(reply[0])

    async def claim(self, session_id: str, task_id: str, now: float,
                    predicted: float | None = None, idem: Idem | None = None) -> Claimed:
        guess = opt(None if predicted is None else num(predicted))
        reply, _ = await self._keyed("claim", idem, (session_id, task_id, guess), now)
        return _claimed(reply[0], reply[1])

    async def claim_many(self, session_id: str, picks: Sequence[tuple[str, float | None]],
                         now: float, idem: Idem | None = None) -> list[Claimed]:
        flat = [arg for tid, predicted in picks
                for arg in (tid, opt(None if predicted is None else num(predicted)))]
        reply, _ = await self._keyed("claim_many", idem, (session_id, *flat), now)
        return _claims(reply[0])

    async def offer(self, session_id: str, task_id: str, now: float,
                    deadline: float) -> Task | None:
        reply = await self._call("offer", session_id, task_id, num(deadline), now=now)
        return None if not reply[0] else codec.task_from(reply[0])

    async def progress(self, session_id: str, task_id: str, token: int, value: float,
                       message: str | None, now: float,
                       usage: Mapping[str, float] | None = None,
                       rate_limit: dict[str, JSON] | None = None) -> Recorded:
        return _recorded(await self._call(
            "progress", session_id, task_id, str(token), num(value), opt(message),
            _opt_json(usage), _opt_json(rate_limit), now=now))

    async def complete(self, session_id: str, task_id: str, token: int, result: JSON,
                       now: float, usage: Mapping[str, float] | None = None) -> Recorded:
        body = None if result is None else dumps(result)
        return _recorded(await self._call("complete", session_id, task_id, str(token),
                                          opt(body), digest(result), _opt_json(usage),
                                          now=now))

    async def fail(self, session_id: str, task_id: str, token: int, error: str, retry: bool,
                   now: float, usage: Mapping[str, float] | None = None) -> Recorded:
        return _recorded(await self._call("fail", session_id, task_id, str(token), error,
                                          "1" if retry else "0", digest([error, retry]),
                                          _opt_json(usage), now=now))

    async def release(self, session_id: str, task_id: str, token: int, note: str | None,
                      now: float) -> Recorded:
        text = None if note is None else dumps(
            models.note("release", note, now, session_id, fencing_token=token))
        reply = await self._call("release", session_id, task_id, str(token), opt(text),
                                 digest(note), now=now)
        return Recorded(codec.task_from(reply[1]), duplicate=reply[0] == "dup")

    async def preempt(self, task_id: str, token: int, deadline: float,
                      now: float) -> Task | None:
        reply = await self._call("preempt", task_id, str(token), num(deadline), now=now)
        return None if not reply[0] else codec.task_from(reply[0])

    async def request_input(self, session_id: str, task_id: str, token: int, question: str,
                            now: float) -> Recorded:
        asked = dumps(models.note("question", question, now, session_id, fencing_token=token))
        reply = await self._call("request_input", session_id, task_id, str(token), question,
                                 asked, now=now)
        return Recorded(codec.task_from(reply[1]), duplicate=reply[0] == "dup")

    async def give_input(self, task_id: str, answer: str, by: str | None, now: float) -> Task:
        told = dumps(models.note("answer", answer, now, None, by=by))
        reply = await self._call("give_input", task_id, answer, told, now=now)
        return codec.task_from(reply[0])

    async def cancel(self, task_id: str, now: float, reason: str) -> Task:
        reply = await self._call("cancel", task_id, reason, now=now)
        return codec.task_from(reply[0])

    async def split(self, session_id: str, task_id: str, token: int, subtasks: Sequence[Task],
                    order: Sequence[str], merge: str, merge_task: str | None,
                    assumed: Mapping[str, TaskStatus], digest: str, now: float) -> Split | None:
        reply = await self._call("split", session_id, task_id, str(token), digest, merge,
                                 opt(merge_task), str(len(order)), *order,
                                 *_batch_args(subtasks, assumed), now=now)
        if reply[0] == "replan":
            return None
        state, parent, children = reply
        return Split(codec.task_from(parent), [codec.task_from(c) for c in children],
                     duplicate=state == "dup")

    async def reap(self, now: float, limit: int) -> Reaped:
        offline, requeued, failed, more = await self._call("reap", str(limit), now=now)
        return Reaped(list(requeued), list(failed), list(offline), bool(more))

    async def next_deadline(self) -> float | None:
        """With the store clock, the deadline is told on this process's clock (by the
        offset just measured), so a replica whose clock is skewed still sleeps until it is
        due instead of spinning or oversleeping; it is a wake-up hint, nothing more."""
        sent = time.time()
        best, store_now = await self._call("next_deadline")
        if best is None:
            return None
        if self._clock != "s":
            return float(best)
        here = (sent + time.time()) / 2  # the middle of the round trip
        return float(best) - (float(store_now) - here)

    # -- knowledge -----------------------------------------------------------------------

    async def put_knowledge(self, topic: str, content: JSON, tags: list[str],
                            expected_version: int | None, updated_by: str | None,
                            now: float, idem: Idem | None = None) -> KnowledgeEntry:
        reply, _ = await self._keyed("put_knowledge", idem, (
            topic, dumps(content), dumps(tags), _opt_int(expected_version), opt(updated_by)), now)
        return codec.entry_from(reply[0])

    async def get_knowledge(self, topic: str, version: int | None = None) -> KnowledgeEntry | None:
        reply = await self._call("get_knowledge", topic, _opt_int(version))
        return None if reply[0] is None else codec.entry_from(reply[0])

    async def list_knowledge(self, tag: str | None = None) -> list[KnowledgeEntry]:
        reply = await self._call("list_knowledge")
        entries = sorted((codec.entry_from(raw) for raw in reply[0]), key=lambda e: e.topic)
        return [e for e in entries if tag is None or tag in e.tags]

    async def delete_knowledge(self, topic: str, expected_version: int | None,
                               updated_by: str | None, now: float) -> KnowledgeEntry:
        reply = await self._call("delete_knowledge", topic, _opt_int(expected_version),
                                 opt(updated_by), now=now)
        return codec.entry_from(reply[0])

    # -- the learned model ---------------------------------------------------------------

    async def all_stats(self) -> list[tuple[str, str, PairStats]]:
        flat = (await self._call("all_stats"))[0]
        out = []
        for key, raw in codec.pairs(flat).items():
            sid, _, cap = key.partition("\t")
            out.append((sid, cap, PairStats.from_mapping(loads(raw))))
        return sorted(out, key=lambda r: (r[0], r[1]))

    async def quarantines(self) -> list[Quarantine]:
        flat = (await self._call("quarantines"))[0]
        out = []
        for key, raw in codec.pairs(flat).items():
            sid, _, cap = key.partition("\t")
            until, _, ejections = raw.partition("\t")
            out.append(Quarantine(sid, cap, float(until), int(ejections)))
        return sorted(out, key=lambda q: (q.session_id, q.capability))

    async def set_quarantine(self, session_id: str, capability: str,
                             record: Quarantine | None, expected: int, now: float) -> bool:
        until = None if record is None else num(record.until)
        ejections = "0" if record is None else str(record.ejections)
        reply = await self._call("set_quarantine", session_id, capability, opt(until),
                                 ejections, str(expected), now=now)
        return bool(reply[0])

    async def set_detected(self, session_id: str, capabilities: list[str],
                           now: float) -> None:
        await self._call("set_detected", session_id, dumps(sorted(capabilities)), now=now)

    # -- the swarm -----------------------------------------------------------------------

    async def set_interrupt(self, interrupt: Interrupt | None, now: float) -> None:
        value = None if interrupt is None else codec.interrupt_json(interrupt)
        reason = None if interrupt is None else interrupt.reason
        task = None if interrupt is None else interrupt.task_id
        await self._call("set_interrupt", opt(value), opt(reason), opt(task), now=now)

    async def get_interrupt(self) -> Interrupt | None:
        return codec.interrupt_from((await self._call("get_interrupt"))[0])

    async def counts(self) -> Counts:
        sessions, tasks, completed, duration, last, swarm, types = await self._call(
            "counts", str(USAGE_TYPES))
        return Counts(
            {k: int(v) for k, v in codec.pairs(sessions).items() if int(v)},
            {k: int(v) for k, v in codec.pairs(tasks).items() if int(v)},
            int(completed or 0), float(duration or 0.0), int(last),
            loads(swarm) if swarm else {},
            {name: loads(sums) for name, sums in codec.pairs(types).items()})

    async def events_after(self, seq: int, limit: int) -> list[Event]:
        reply = await self._call("events_after", str(int(seq)), str(int(limit)))
        return [codec.event_from(raw) for raw in reply[0]]

    # -- autoscaling ---------------------------------------------------------------------

    async def ready_counts(self, capabilities: Sequence[str]) -> dict[str, int]:
        caps = list(dict.fromkeys(capabilities))
        if not caps:
            return {}
        (counts,) = await self._call("ready_counts", *caps)
        return {cap: int(n) for cap, n in zip(caps, counts, strict=True)}

    async def record_event(self, type_: str, data: dict[str, JSON], now: float) -> Event:
        if not EVENT_TYPE_RE.match(type_):
            raise InvalidInput(f"event type {type_!r} must match {EVENT_TYPE_RE.pattern}")
        (raw,) = await self._call("record_event", type_, dumps(data), now=now)
        return codec.event_from(raw)

    async def set_pool_pin(self, pool: str, desired: int | None, now: float) -> None:
        await self._call("set_pool_pin", pool, _opt_int(desired), now=now)

    async def pool_pins(self) -> dict[str, int]:
        (flat,) = await self._call("pool_pins")
        return {k: int(v) for k, v in codec.pairs(flat).items()}

    # -- leadership ----------------------------------------------------------------------

    async def try_lead(self, holder: str, ttl: float) -> int | None:
        (token,) = await self._call("lead", holder, str(max(1, round(ttl * 1000))))
        self._fence = "" if token is None else f"{holder}\n{token}"
        return None if token is None else int(token)

    async def resign(self, holder: str) -> None:
        self._fence = ""
        await self._call("resign", holder)


def from_settings(settings: Settings) -> RedisStore:
    """The store `settings.store` names (redis://, rediss://, unix://): config.STORES."""
    return RedisStore(settings.store, settings)


def _batch_args(tasks: Sequence[Task], assumed: Mapping[str, TaskStatus]) -> list[str]:
    """The insert_batch arguments: the statuses the plan assumed, then the tasks."""
    new = {t.id for t in tasks}
    args = [str(len(assumed))]
    for dep in sorted(assumed):
        args += [dep, assumed[dep].value]
    args.append(str(len(tasks)))
    for t in tasks:
        open_deps = sum(1 for d in t.dependencies
                        if d in new or assumed[d] != TaskStatus.COMPLETED)
        fields = codec.task_fields(t)
        args += [t.id, t.status.value, str(open_deps), codec.added_event_data(t),
                 str(len(fields) // 2), *fields, str(len(t.dependencies)), *t.dependencies]
    return args


def _added(tasks: list[Task], reply: list[Any]) -> list[Task]:
    _, seqs, at = reply
    for t, seq in zip(tasks, seqs, strict=True):
        t.seq, t.created_at, t.updated_at = int(seq), float(at), float(at)
    return tasks


def _answer(kind: str, payload: list[Any], extra: str) -> Replay:
    """A kept answer, read as the operation's own reply is read."""
    if kind == "insert_batch":
        return _added(replay.tasks_of(extra), payload)
    if kind == "register":
        return codec.session_from(payload[0])
    if kind == "claim":
        return _claimed(payload[0], payload[1])
    if kind == "claim_many":
        return _claims(payload[0])
    if kind == "put_knowledge":
        return codec.entry_from(payload[0])
    if kind == "emergency":  # kept by OPS.keep: the whole answer is the extra
        return replay.decode(kind, extra)
    raise ValueError(f"no such kind of kept answer: {kind!r}")


def _claimed(flat: list[str], notes: list[str]) -> Claimed:
    task = codec.task_from(flat)
    return Claimed(task, records.lease_of(task), [loads(n) for n in notes])


def _claims(pairs: list[Any]) -> list[Claimed]:
    return [_claimed(flat, notes) for flat, notes in pairs]


def _recorded(reply: list[Any]) -> Recorded:
    state, flat, *moved = reply
    stats = None
    if moved:
        stats = {cap: PairStats.from_mapping(row) for cap, row in loads(moved[0]).items()}
    return Recorded(codec.task_from(flat), duplicate=state == "dup", stats=stats)


def _opt_json(value: object) -> str:
    return opt(None if value is None else dumps(value))


def _opt_int(value: int | None) -> str:
    return opt(None if value is None else str(int(value)))


__all__ = ["RedisStore", "from_settings"]
