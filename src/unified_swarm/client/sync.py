"""`Client`: the blocking SDK. Its twin `AsyncClient` (aio.py) has the same methods.

    with Client("http://127.0.0.1:8600", operator_token) as swarm:
        me = swarm.register(["build"], id="worker-1")
        worker = swarm.with_token(me["token"])
        got = worker.request_work(wait=30)
        if got is not None:
            lease = got["lease"]
            worker.complete(lease["task_id"], lease["fencing_token"], {"ok": True})
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from ..errors import SwarmError
from . import base
from . import types as t
from .base import BaseClient, Call, RetryPolicy

T = TypeVar("T")


class Client(BaseClient):
    """A blocking client for one swarm server (`BaseClient` says what the token, `retry`,
    `transport` and `on_call` do, and which calls carry an `Idempotency-Key`)."""

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 timeout: float = 30.0, retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None,
                 on_call: base.CallHook | None = None) -> None:
        super().__init__(url, token, timeout, retry, on_call)
        self._http = httpx.Client(base_url=self.url, transport=transport, timeout=timeout)

    # -- plumbing ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections (a `with_token` copy leaves them to its original)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        """Send one call, retrying transient failures as the policy allows."""
        tries = self._tries(call)
        for retry in tries:
            try:
                response = self._http.send(self._http.build_request(**self._args(call)))
                value = tries.decode(response)
            except (httpx.TransportError, SwarmError) as exc:
                time.sleep(tries.failed(exc, retry))
            else:
                return tries.ok(value)
        raise AssertionError("unreachable: the policy refuses the last retry")

    # -- health and sessions -------------------------------------------------------------

    def healthz(self) -> t.Health:
        """Liveness (no token needed): `status` is "ok", or "degraded" when the store does
        not answer."""
        return self.send(base.healthz())

    def register(self, capabilities: Iterable[str], *, id: str | None = None,
                 name: str | None = None, max_concurrent_tasks: int | None = None,
                 heartbeat_interval: float | None = None,
                 metadata: Mapping[str, t.JSON] | None = None,
                 idempotency_key: str | None = None) -> t.Registered:
        """Join the swarm (operator token). Answers the session and its own token; use
        `with_token(reply["token"])` to act as it. An id that is online already raises
        `AlreadyExists`; an offline one resumes."""
        return self.send(base.register(
            capabilities, id=id, name=name, max_concurrent_tasks=max_concurrent_tasks,
            heartbeat_interval=heartbeat_interval, metadata=metadata, key=idempotency_key))

    def heartbeat(self, status: str | None = None) -> t.HeartbeatReply:
        """Say this session is alive (session token): renews its leases and answers the
        leases it holds and the directives waiting for it (assignments, interrupt,
        drain)."""
        return self.send(base.heartbeat(status))

    def leave(self, session_id: str) -> t.Session:
        """Leave the swarm (the session's own token or the operator's); its unfinished
        tasks go back to the queue at once."""
        return self.send(base.leave(session_id))

    def drain(self, session_id: str) -> t.Session:
        """Operator: the session finishes what it holds, takes nothing new, and leaves."""
        return self.send(base.drain(session_id))

    def interrupt(self, reason: str) -> t.Interrupt:
        """Operator: every session stops taking new work until `lift_interrupt`."""
        return self.send(base.interrupt(reason))

    def lift_interrupt(self) -> None:
        """Operator: lift the interrupt in force, if any."""
        return self.send(base.lift_interrupt())

    def sessions(self, status: str | None = None) -> list[t.Session]:
        """Every session the swarm knows (those that left stay, as `offline`)."""
        return self.send(base.sessions(status))

    def session(self, session_id: str) -> t.Session:
        """One session; `NotFound` when there is none of that id."""
        return self.send(base.session(session_id))

    # -- tasks ---------------------------------------------------------------------------

    def add_task(self, type: str, *, id: str | None = None, title: str | None = None,
                 input: t.JSON = None, required_capability: str | None = None,
                 priority: int | None = None, critical: bool | None = None,
                 infinite_scale: bool | None = None, roi: str | None = None,
                 estimated_hours: float | None = None,
                 dependencies: Iterable[str] | None = None,
                 max_attempts: int | None = None, idempotency_key: str | None = None) -> t.Task:
        """Add one task and answer it as stored (status, computed priority, ...)."""
        return self.send(base.add_task(base.task_in(
            type, id=id, title=title, input=input, required_capability=required_capability,
            priority=priority, critical=critical, infinite_scale=infinite_scale, roi=roi,
            estimated_hours=estimated_hours, dependencies=dependencies,
            max_attempts=max_attempts), idempotency_key))

    def add_tasks(self, tasks: Iterable[t.TaskIn], *,
                        idempotency_key: str | None = None) -> list[t.Task]:
        """Add a batch, all or nothing; dependencies inside the batch are allowed, cycles
        raise `DependencyCycle`."""
        return self.send(base.add_tasks(tasks, idempotency_key))

    def list_tasks(self, *, status: str | None = None, capability: str | None = None,
                   session: str | None = None, limit: int | None = None,
                   cursor: str | None = None) -> t.TaskPage:
        """One page of tasks; pass `next_cursor` back as `cursor` for the next one."""
        return self.send(base.list_tasks(status, capability, session, limit, cursor))

    def iter_tasks(self, *, status: str | None = None, capability: str | None = None,
                   session: str | None = None, page_size: int = 500) -> Iterator[t.Task]:
        """Every matching task, page after page."""
        cursor: str | None = None
        while True:
            page = self.list_tasks(status=status, capability=capability, session=session,
                                   limit=page_size, cursor=cursor)
            yield from page["tasks"]
            if not page["next_cursor"] or page["next_cursor"] == cursor:
                return
            cursor = page["next_cursor"]

    def get_task(self, task_id: str) -> t.TaskDetail:
        """One task and its history, one entry per attempt."""
        return self.send(base.get_task(task_id))

    def request_work(self, wait: float = 0.0, *,
                           idempotency_key: str | None = None) -> t.Claimed | None:
        """Claim the best ready task for this session (session token), waiting up to
        `wait` seconds for one; None when nothing came in time."""
        return self.send(base.request_work(wait, idempotency_key))

    def request_batch(self, max: int, wait: float = 0.0, *,
                      idempotency_key: str | None = None) -> list[t.Claimed]:
        """Claim up to `max` tasks in one call (as many as this session has free slots
        for), waiting up to `wait` seconds for the first; empty when nothing came in time."""
        return self.send(base.request_batch(wait, max, idempotency_key))
    def offer_work(self, wait: float = 0.0) -> t.Offered | None:
        """The best task for this session (session token), offered but not claimed: it is
        `assigned` to the session until `offer.expires_at` (claim it with `claim`), waiting
        up to `wait` seconds for one; None when nothing came in time, or when a newer wait
        of this session took over."""
        return self.send(base.offer_work(wait))

    def claim(self, task_id: str, *, idempotency_key: str | None = None) -> t.Claimed:
        """Claim one named task (ready, or offered to this session); `NotClaimable` when
        another session holds it or it is not ready."""
        return self.send(base.claim(task_id, idempotency_key))

    def progress(self, task_id: str, fencing_token: int, progress: float,
                 message: str | None = None, *, usage: t.Usage | None = None,
                 rate_limit: t.RateLimit | None = None) -> t.Recorded:
        """Report progress (0..1) and renew the lease; `LeaseLost` when the lease is gone.
        `usage`: what the attempt spent so far; `rate_limit`: its agent waits out an API
        rate limit now (the session shows `rate_limited` until a report without one)."""
        return self.send(base.progress(task_id, fencing_token, progress, message, usage,
                                         rate_limit))

    def complete(self, task_id: str, fencing_token: int, result: t.JSON = None, *,
                 claim_next: int = 0, idempotency_key: str | None = None,
                 usage: t.Usage | None = None) -> t.Recorded:
        """Record the result; a repeat answers `duplicate: True`, a stale token raises
        `LeaseLost` and records nothing. With `claim_next`, the same call then claims up to
        that many next tasks (`claimed`): a busy worker makes one request per task.
        `usage`: what the attempt spent (kept on it, summed per session)."""
        return self.send(base.complete(task_id, fencing_token, result, claim_next,
                                         idempotency_key, usage))

    def complete_many(self, outcomes: Iterable[t.OutcomeIn], *, claim_next: int = 0,
                      idempotency_key: str | None = None) -> t.CompletedBatch:
        """Record several successes in one call, each on its own (a refused one does not
        lose the others: its result carries `error`); then, with `claim_next`, claim up
        to that many next tasks."""
        return self.send(base.complete_many(outcomes, claim_next, idempotency_key))

    def fail(self, task_id: str, fencing_token: int, error: str, *,
             retry: bool = True, usage: t.Usage | None = None) -> t.Recorded:
        """Record a failure; with `retry` the task runs again until its max_attempts.
        `usage`: what the attempt spent (kept on it, summed per session)."""
        return self.send(base.fail(task_id, fencing_token, error, retry, usage))

    def split(self, task_id: str, fencing_token: int, subtasks: Iterable[t.TaskIn], *,
              merge: str | Mapping[str, Any] = "list") -> t.Split:
        """Split a task this session holds into subtasks (they may depend on each other):
        the task waits, and completes with their results merged by `merge`: "list" (in
        subtask order), "object" ({subtask id: result}) or {"task": {"type": ...}} (a
        merge task that gets every result and whose result is the parent's). Retrying the
        same split answers the same subtasks; a lost lease raises `LeaseLost`."""
        return self.send(base.split(task_id, fencing_token, subtasks, merge))

    def release(self, task_id: str, fencing_token: int,
                note: str | None = None) -> t.Recorded:
        """Give the lease back (a `preempt` directive honoured, or by choice): not counted
        against max_attempts; `note` reaches the next holder in `context.notes`."""
        return self.send(base.release(task_id, fencing_token, note))

    def input_request(self, task_id: str, fencing_token: int, question: str) -> t.Recorded:
        """Ask the operator: the task waits `input_required`, its lease clock stopped,
        until `answer`; the answer then shows in the heartbeat's `held` notes."""
        return self.send(base.input_request(task_id, fencing_token, question))

    def answer(self, task_id: str, text: str, *,
               idempotency_key: str | None = None) -> t.Task:
        """Operator: answer a task's question; it goes back to its holder (or the queue)."""
        return self.send(base.answer(task_id, text, idempotency_key))

    def emergency(self, type: str, *, interrupt: bool = True, preempt: bool = True,
                  idempotency_key: str | None = None, **fields: Any) -> t.Emergency:
        """Operator: a task above every priority, offered at once to the best idle session
        or to one freed by preemption; with `interrupt`, nothing else starts until it
        ends. `fields` are a task object's (`id`, `title`, `input`, ...)."""
        return self.send(base.emergency(base.task_in(type, **fields), interrupt, preempt,
                                          idempotency_key))

    def cancel(self, task_id: str, reason: str | None = None) -> t.Task:
        """Operator: cancel a task; its dependents become blocked."""
        return self.send(base.cancel(task_id, reason))

    # -- knowledge and status ------------------------------------------------------------

    def get_knowledge(self, topic: str, version: int | None = None) -> t.KnowledgeEntry:
        """The latest entry of a topic, or the given version of it."""
        return self.send(base.get_knowledge(topic, version))

    def put_knowledge(self, topic: str, content: t.JSON, *,
                      expected_version: int | None = None,
                      tags: Iterable[str] = (),
                      idempotency_key: str | None = None) -> t.KnowledgeEntry:
        """Write a new version; with `expected_version` (0: the topic must not exist) a
        stale one raises `StaleVersion`."""
        return self.send(base.put_knowledge(topic, content, expected_version, tags,
                                                 idempotency_key))

    def list_knowledge(self, tag: str | None = None) -> list[t.KnowledgeEntry]:
        """The latest entry of every topic, optionally only those with `tag`."""
        return self.send(base.list_knowledge(tag))

    def delete_knowledge(self, topic: str,
                         expected_version: int | None = None) -> t.KnowledgeEntry:
        """Delete a topic (its history stays readable by version)."""
        return self.send(base.delete_knowledge(topic, expected_version))

    def status(self) -> t.Status:
        """The swarm's global metrics: sessions, tasks by status, times, utilization."""
        return self.send(base.status())

    def scaling(self) -> dict[str, Any]:
        """Every autoscaled pool: current and desired size, why, recent decisions."""
        return self.send(base.scaling())

    def scale_pool(self, name: str, desired: int | None) -> dict[str, Any]:
        """Pin a pool's size within its [min, max]; None lifts the pin."""
        return self.send(base.scale_pool(name, desired))
