"""`Worker`: register, heartbeat, long-poll for work, run each task through an executor,
record its outcome with the lease's fencing token; drain and leave when told to.

    worker = Worker(config, ShellExecutor(command=("./run-task.sh",)))
    exit_code = asyncio.run(worker.run())

The event loop runs the polling and the tasks (up to `max_concurrent_tasks` at once); the
heartbeat runs in a thread of its own (heartbeat.py). The worker talks to the server only
through the SDK, so it runs on any host that can reach the API.

Stopping, in order of urgency:

- **drain** (first SIGTERM/SIGINT, the `drain` directive, or burst mode finding the queue
  empty): take no new work, finish what runs, record it, deregister, exit 0 (3 when an
  outcome could not be recorded before its lease ended: never silently);
- **abort** (a second signal): cancel what runs (child processes are killed), give each task
  back with `fail(retry=True)`, deregister, exit 130; a third signal exits at once.

The `interrupt` directive pauses taking new work (running tasks go on) until it is lifted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import MutableMapping
from typing import Any, Literal

import httpx

from .. import __version__
from ..client import AsyncClient, Client, RetryPolicy
from ..client.base import CallHook
from ..client.types import Claimed, Interrupt, RateLimit, Registered
from ..errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    NotClaimable,
    NotFound,
    RateLimited,
    SwarmError,
    Unauthorized,
    Unavailable,
)
from .config import WorkerConfig
from .executors.base import Executor, TaskContext
from .heartbeat import Beat, Heartbeat, SessionGone
from .leases import Key, LeaseBook
from .recording import OutcomePath, outcome_of
from .records import (
    Completed,
    Failed,
    Mode,
    Outcome,
    Parked,
    Run,
    Stats,
    WorkerExit,
)

__all__ = ["Completed", "Failed", "Mode", "Outcome", "Run", "Worker", "WorkerExit"]

log = logging.getLogger("unified_swarm.worker")


PollResult = list[Claimed] | Literal["empty", "retry"]


class _Prefix(logging.LoggerAdapter[logging.Logger]):
    """Every line says which worker wrote it (several share one terminal in the demo)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]
                ) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.extra['worker'] if self.extra else '?'}] {msg}", kwargs


class Worker(OutcomePath):
    """See the module docstring. `run()` returns a `WorkerExit` code."""

    def __init__(self, config: WorkerConfig, executor: Executor, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 on_call: CallHook | None = None) -> None:
        self.config = config
        self.executor = executor
        #: how the event loop's calls travel (the heartbeat keeps its own connection);
        #: tests inject faults here, as the SDK's tests do
        self.transport = transport
        #: told of every call this worker makes (`swarm worker` passes the chaos journal)
        self.on_call = on_call
        self.log = _Prefix(log, {"worker": config.name})
        self.book = LeaseBook(config.lease_ttl)
        self.stats = Stats()
        self.session_id: str | None = None
        self._session_token = ""
        self.mode = Mode.RUNNING
        self.interrupt: Interrupt | None = None
        self.exit_code = WorkerExit.OK
        #: by (task id, fencing token): a worker resumed after a pause may run a stale
        #: attempt of a task and, with free slots, a fresh attempt of the same task
        self._runs: dict[Key, Run] = {}
        #: finished attempts whose outcome was sent but not heard recorded before the lease
        #: seemed over: sent again while a heartbeat still lists the lease (leases.py)
        self._parked: dict[Key, Parked] = {}
        self._resending: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        #: long-polls in flight, each with the free slots it asks for (`max`): one request
        #: asks for every slot free when it is sent
        self._polls: dict[asyncio.Task[PollResult], int] = {}
        #: burst mode found the queue empty: ask again only once something finishes
        self._starved = False
        self._session: AsyncClient | None = None
        self._heart: Heartbeat | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._signals = 0

    # -- public controls (call them on the worker's event loop) ---------------------------

    def drain(self, reason: str) -> None:
        """Take no new work; finish what runs, deregister, exit 0."""
        if self.mode is not Mode.RUNNING:
            return
        self.mode = Mode.DRAINING
        self.log.info("draining (%s): finishing %d running task(s), taking no new work",
                      reason, len(self._runs))
        for poll in self._polls:
            poll.cancel()
        if self._heart is not None:
            self._heart.poke()  # tell the server now, not an interval from now
        self._wake.set()

    def drain_soon(self, reason: str) -> None:
        """`drain` from any thread (an embedding program, a test)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.drain, reason)

    def abort(self, reason: str, code: WorkerExit = WorkerExit.ABORTED) -> None:
        """Stop now: cancel what runs, give it back (fail with retry), deregister."""
        if self.mode is Mode.ABORTING:
            return
        self.mode = Mode.ABORTING
        self.exit_code = code
        self.log.warning("stopping now (%s): giving back %d running task(s)", reason,
                         len(self._runs))
        for poll in self._polls:
            poll.cancel()
        for run in self._runs.values():
            if run.executing is not None:
                run.executing.cancel()
        self._wake.set()

    # -- the main loop --------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = True) -> int:
        """Register, work until drained or aborted, deregister. Returns the exit code."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if handle_signals:
            self._install_signals()
        self.log.info("starting: %s; capabilities %s; %d at a time; heartbeat every %.3g s",
                      self.executor.describe(), ",".join(self.config.capabilities) or "(any)",
                      self.config.max_concurrent_tasks, self.config.heartbeat_interval)
        try:
            async with AsyncClient(self.config.url, self.config.token,
                                   timeout=max(10.0, self.config.heartbeat_interval),
                                   transport=self.transport, on_call=self.on_call) as op:
                try:
                    registered = await self._register(op)
                except SwarmError as exc:
                    self.log.error("cannot register with %s: %s: %s", self.config.url,
                                   exc.code, exc.message)
                    return int(WorkerExit.ERROR)
                if registered is not None:
                    await self._work(op.with_token(registered["token"]), registered)
        finally:
            if handle_signals:
                self._remove_signals()
        self.log.info("stopped: %s", self.stats.line())
        return int(self.exit_code)

    async def _work(self, session: AsyncClient, registered: Registered) -> None:
        self._session = session
        self.session_id = sid = registered["session"]["id"]
        self._session_token = registered["token"]
        self.log.info("registered as session %s at %s", sid, self.config.url)
        heart_client = Client(self.config.url, registered["token"],
                              timeout=max(1.0, self.config.heartbeat_interval),
                              retry=RetryPolicy(attempts=2, backoff=0.1,
                                                budget=self.config.heartbeat_interval),
                              on_call=self.on_call)
        self._heart = Heartbeat(heart_client, self.config.heartbeat_interval, self.book,
                                status=self._status_report, deliver=self._from_heartbeat,
                                log=self.log, worker_name=self.config.name)
        self._heart.start()
        try:
            await self._serve()
        finally:
            await self._settle_runs()
            self._heart.stop()
            heart_client.close()
            await self._leave(session, sid)

    async def _serve(self) -> None:
        while True:
            self._wake.clear()
            if self.mode is Mode.ABORTING or (
                    self.mode is Mode.DRAINING and not self._runs and not self._polls):
                return
            while self._may_take_work():
                # batching: one request for every free slot; else one request per slot
                n = self._free_slots() if self.config.batch else 1
                self._polls[asyncio.create_task(self._request(n))] = n
            if not self._polls:
                await self._wake.wait()
                continue
            woken = asyncio.create_task(self._wake.wait())
            done, _ = await asyncio.wait({*self._polls, woken},
                                         return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            for poll in [p for p in self._polls if p in done]:
                del self._polls[poll]
                got = "retry" if poll.cancelled() else poll.result()
                if got == "empty":
                    self._starved = self.config.burst
                    if self.config.burst and not self._runs and not self._polls:
                        self.drain("burst mode: the queue is empty")
                elif got != "retry":
                    self._took(got)

    def _free_slots(self) -> int:
        """Slots neither running a task nor asked for by a request in flight."""
        return self.config.max_concurrent_tasks - len(self._runs) - sum(self._polls.values())

    def _may_take_work(self) -> bool:
        # an emergency's interrupt (it names its task) hands out that task alone: ask on
        return (self.mode is Mode.RUNNING and not self._starved
                and (self.interrupt is None or self.interrupt.get("task_id") is not None)
                and self._free_slots() > 0)

    def _next_wanted(self) -> int:
        """How many tasks a complete may claim next in the same call: the slot its task
        frees, while this worker takes work (a busy worker's one request per task)."""
        return 1 if (self.config.batch and self.mode is Mode.RUNNING
                     and self.interrupt is None) else 0

    # -- registering and leaving ------------------------------------------------------------

    async def _register(self, op: AsyncClient) -> Registered | None:
        """Register, waiting (bounded) for the server to come up and for a previous run's
        session of the same id to time out; None when told to stop meanwhile."""
        cfg = self.config
        deadline = time.monotonic() + cfg.connect_timeout
        pause, said = 0.1, set()
        metadata = {"host": socket.gethostname(), "pid": os.getpid(), "agent": "swarm-worker",
                    "executor": self.executor.kind, "version": __version__, **cfg.metadata}
        while self.mode is Mode.RUNNING:
            try:
                return await op.register(
                    cfg.capabilities, id=cfg.id, name=cfg.name,
                    max_concurrent_tasks=cfg.max_concurrent_tasks,
                    heartbeat_interval=cfg.heartbeat_interval, metadata=metadata)
            except AlreadyExists:
                # a crashed run of this id: it goes offline once its heartbeats stop for
                # a lease TTL
                if time.monotonic() > deadline + cfg.lease_ttl:
                    raise
                if "exists" not in said:
                    self.log.warning("session %s is still online (a previous run?); waiting "
                                     "for it to time out", cfg.id)
                    said.add("exists")
            except (Unavailable, RateLimited) as exc:
                if time.monotonic() > deadline:
                    raise
                if "down" not in said:
                    self.log.info("waiting for the server at %s (%s)", cfg.url, exc.message)
                    said.add("down")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
        return None

    async def _leave(self, session: AsyncClient, sid: str) -> None:
        try:
            await session.leave(sid)
            self.log.info("deregistered session %s", sid)
        except (Unauthorized, NotFound):
            pass  # removed already
        except SwarmError as exc:
            self.log.warning("could not deregister (%s); the session goes offline when "
                             "its heartbeats stop for a lease TTL", exc.message)

    # -- asking for work --------------------------------------------------------------------

    async def _request(self, n: int = 1) -> PollResult:
        """Ask for up to `n` tasks in one call (one slot: phase 1's single request)."""
        assert self._session is not None
        call = self.book.call_started(time.monotonic())
        claimed: list[Key] = []
        pause = 0.0
        try:
            if n == 1:
                one = await self._session.request_work(wait=self.config.poll_wait)
                got = [] if one is None else [one]
            else:
                got = await self._session.request_batch(n, wait=self.config.poll_wait)
            if not got:
                return "empty"
            claimed = [(c["task"]["id"], c["lease"]["fencing_token"]) for c in got]
            return got
        except NotClaimable as exc:  # draining or at capacity on the server's side
            self.log.debug("not claimable now: %s", exc.message)
            pause = min(1.0, self.config.heartbeat_interval)
        except (Unauthorized, NotFound) as exc:
            self._session_gone(SessionGone(f"{exc.code}: {exc.message}"))
        except (Unavailable, RateLimited) as exc:
            self.log.warning("asking for work failed (%s); retrying", exc.message)
            pause = max(exc.retry_after or 0.0, 1.0)
        except SwarmError as exc:
            self.log.error("asking for work failed: %s: %s", exc.code, exc.message)
            pause = 1.0
        finally:
            # ended before any pause: a lease this call may have claimed without our hearing
            # of it can be released by the heartbeat from now on
            self.book.calls_ended(call, claimed, time.monotonic())
        await asyncio.sleep(pause)
        return "retry"

    # -- running one task -------------------------------------------------------------------

    def _took(self, claimed: list[Claimed]) -> None:
        for c in claimed:
            self._start(c)

    def _start(self, claimed: Claimed) -> None:
        task, lease = claimed["task"], claimed["lease"]
        run = Run(task, lease["fencing_token"], time.monotonic())
        self._runs[run.key] = run
        self.stats.claimed += 1
        self.log.info("claimed %s (%s, priority %d, attempt %d of %d, token %d): %s",
                      task["id"], task["type"], task["priority"], task["attempts"],
                      task["max_attempts"], run.token, task["title"] or "(untitled)")
        run.handle = asyncio.create_task(self._execute(run), name=f"swarm-task-{task['id']}")

    async def _execute(self, run: Run) -> None:
        assert self.session_id is not None
        ctx = TaskContext(run.task, run.token, self.session_id, self.config.name,
                          report=lambda value, message: self._report(run, value, message),
                          report_rate_limit=lambda value, message, info: self._report(
                              run, value, message, info),
                          report_usage=lambda spent: setattr(run, "usage", dict(spent)),
                          server_url=self.config.url, session_token=self._session_token)
        settled = True
        try:
            run.executing = asyncio.create_task(self.executor.run(ctx))
            if self.mode is Mode.ABORTING:
                run.executing.cancel()
            await asyncio.wait({run.executing})
            run.done = True
            if run.progress_sender is not None:
                run.progress_sender.cancel()
            outcome = outcome_of(run, run.executing, self.config.name)
            first_try = time.monotonic()
            settled = await self._record(run, outcome, first_try)
            if not settled:
                self._parked[run.key] = Parked(run, outcome, first_try)
        finally:
            self.book.concluded(run.key, time.monotonic(), settled=settled)
            self._runs.pop(run.key, None)
            self._starved = False  # a slot is free: ask again (even in burst mode)
            self._wake.set()

    async def _settle_runs(self) -> None:
        """Wait for every run to record its outcome (aborting cancels them first); what is
        still parked then is lost."""
        handles = [r.handle for r in self._runs.values() if r.handle is not None]
        if handles:
            await asyncio.wait(handles)
        await self._settle_parked()

    # -- progress ---------------------------------------------------------------------------

    def _report(self, run: Run, value: float, message: str | None,
                rate_limit: RateLimit | None = None) -> None:
        """An executor's progress, from any thread; the latest value wins (so does whether
        it waits on a rate limit: a plain report after one clears the session's state)."""
        if threading.get_ident() == self._loop_thread:
            self._queue_progress(run, value, message, rate_limit)
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
                self._loop.call_soon_threadsafe(self._queue_progress, run, value, message,
                                                rate_limit)

    def _queue_progress(self, run: Run, value: float, message: str | None,
                        rate_limit: RateLimit | None = None) -> None:
        run.last_progress = (value, message)
        if run.done:
            return
        run.pending_progress = (value, message, rate_limit)
        if run.progress_sender is None or run.progress_sender.done():
            run.progress_sender = asyncio.create_task(self._send_progress(run))

    async def _send_progress(self, run: Run) -> None:
        assert self._session is not None
        while run.pending_progress is not None and not run.done:
            (value, message, limit), run.pending_progress = run.pending_progress, None
            try:
                await self._session.progress(run.task["id"], run.token, value, message,
                                             usage=run.usage, rate_limit=limit)
            except (Conflict, Forbidden) as exc:
                self._note_lost(run, f"progress refused: {exc.message}")
                return
            except SwarmError as exc:
                self.log.debug("progress of %s not sent: %s", run.task["id"], exc.message)

    def _note_lost(self, run: Run, why: str) -> None:
        if not run.lease_lost:
            run.lease_lost = True
            self.log.warning("lease on %s (token %d) lost (%s); its result will be refused",
                             run.task["id"], run.token, why)

    # -- what the heartbeat brings ----------------------------------------------------------

    def _status_report(self) -> str | None:
        return "draining" if self.mode is not Mode.RUNNING else None

    def _from_heartbeat(self, beat: Beat | SessionGone) -> None:
        """Called on the heartbeat thread: hand over to the event loop."""
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: the worker is exiting
            if isinstance(beat, SessionGone):
                self._loop.call_soon_threadsafe(self._session_gone, beat)
            else:
                self._loop.call_soon_threadsafe(self._on_beat, beat)

    def _on_beat(self, beat: Beat) -> None:
        directives = beat.reply["directives"]
        interrupt = directives["interrupt"]
        if interrupt is not None and self.interrupt is None:
            self.log.warning("interrupted by the operator (%s): taking no new work until "
                             "it is lifted", interrupt["reason"])
        elif interrupt is None and self.interrupt is not None:
            self.log.info("interrupt lifted: taking work again")
        self.interrupt = interrupt
        for key in beat.review.lost:
            run = self._runs.get(key)
            if run is not None:
                self._note_lost(run, "the heartbeat no longer lists it")
        self._review_outcomes(beat.review)
        for order in directives.get("preempt", []):
            self._preempt(order["task_id"], order["grace_s"])
        if directives["drain"]:
            self.drain("the orchestrator asked this session to drain")
        self._wake.set()

    def _preempt(self, task_id: str, grace_s: float) -> None:
        """The orchestrator needs this session for an emergency: stop the attempt (a
        command gets SIGTERM, then SIGKILL after the executor's kill grace) and give it back
        with its last progress as the note, within `grace_s`."""
        for run in self._runs.values():
            if run.task["id"] != task_id or run.preempted or run.done:
                continue
            run.preempted = True
            self.log.warning("preempted: stopping %s (token %d) and giving it back within "
                             "%.1f s", task_id, run.token, grace_s)
            if run.executing is not None:
                run.executing.cancel()

    def _session_gone(self, gone: SessionGone) -> None:
        if self.mode is Mode.ABORTING:
            return
        self.log.error("this session is gone on the server (%s); stopping", gone)
        self.abort("the session was removed", WorkerExit.ERROR)

    # -- signals ----------------------------------------------------------------------------

    def _install_signals(self) -> None:
        assert self._loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signals(self) -> None:
        assert self._loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        name = signal.Signals(sig).name
        if self._signals == 1:
            self.drain(f"{name}; send it again to give running tasks back and stop now")
        elif self._signals == 2:
            self.abort(f"second {name}")
        else:
            self.log.error("third %s: exiting at once", name)
            os._exit(int(WorkerExit.ABORTED))

