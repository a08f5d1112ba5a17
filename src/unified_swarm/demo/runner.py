"""`run_demo`: an orchestrator on SQLite, N workers, the sample workload, a live view, a
summary; exit 0 only when every task completed exactly once."""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console

from ..client import Client, RetryPolicy
from ..errors import SwarmError
from ..procs import Proc, SwarmServer, swarm_worker
from . import workload
from .display import LiveView, PlainView, Snapshot, View
from .summary import FINAL, Summary, fastest, read_ledger, summarize

REFRESH = 0.25
DEFAULT_ROOT = Path(".swarm-demo")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    workers: int = 6
    #: the first N tasks of the sample workload (None: all of it)
    tasks: int | None = None
    scale: float = workload.SCALE
    #: default: a fresh ./.swarm-demo/run-<time>
    data_dir: Path | None = None
    keep: bool = False
    timeout: float = 120.0
    #: None: rich when stdout is a terminal, plain lines otherwise
    plain: bool | None = None
    heartbeat: float = 1.0


class DemoError(Exception):
    """The demo could not run (the server or a worker did not start)."""


def fresh_data_dir(given: Path | None) -> Path:
    """An empty directory for this run: task ids repeat from run to run."""
    if given is not None:
        if given.exists() and any(given.iterdir()):
            raise DemoError(f"{given} is not empty: the demo needs a fresh data directory")
        given.mkdir(parents=True, exist_ok=True)
        return given.resolve()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        path = DEFAULT_ROOT / (f"run-{stamp}" + (f"-{n}" if n else ""))
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        return path.resolve()
    raise DemoError(f"cannot make a fresh directory under {DEFAULT_ROOT}")


class Demo:
    """One run. `run()` returns the exit code; the processes are always cleaned up."""

    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.opts, self.console = options, console
        self.data = fresh_data_dir(options.data_dir)
        self.token = secrets.token_urlsafe(32)
        self.server = SwarmServer("server", data_dir=self.data, token=self.token,
                                  log=self.data / "server.log", args=["--log-level", "warning"])
        self.url = self.server.url
        self.ledger = self.data / "effects.log"
        self.workers: list[Proc] = []
        #: worker name -> what it declares and how fast it truly is (for the lower bound)
        self.speeds: dict[str, workload.WorkerSet] = {}
        self.slots = 0
        tty = console.is_terminal if options.plain is None else not options.plain
        self.plain = not tty

    def say(self, text: str) -> None:
        print(text, file=sys.stdout, flush=True)

    def run(self) -> int:
        try:
            return self._run()
        except KeyboardInterrupt:
            self.say("interrupted: stopping the workers and the server")
            return 130
        finally:
            self._cleanup()

    def _run(self) -> int:
        tasks = workload.tasks(self.opts.tasks, self.opts.scale)
        self.say(f"Unified Swarm demo: an orchestrator on SQLite ({self.data}), "
                 f"{self.opts.workers} workers, {len(tasks)} tasks")
        try:
            self.server.start()
        except RuntimeError as exc:
            raise DemoError(f"the server did not start: {exc}") from None
        with Client(self.url, self.token, retry=RetryPolicy(attempts=5, budget=10)) as op:
            self._start_workers()
            self._wait_registered(op)
            submitted = time.time()
            op.add_tasks(tasks)
            finished = self._watch(op, submitted)
            self._stop_workers()
            details = [op.get_task(t["id"]) for t in tasks]
            learned = fastest(op.sessions())
        summary = summarize(details, read_ledger(self.ledger), submitted, self.slots,
                            finished)
        summary.bounds = workload.lower_bound(tasks, self.speeds)
        summary.fastest = learned
        self._report(summary, timed_out=finished is None)
        return 0 if summary.ok and finished is not None else 1

    # -- processes ------------------------------------------------------------------------

    def _start_workers(self) -> None:
        for n, w in enumerate(workload.worker_sets(self.opts.workers), start=1):
            name = f"demo-w{n}"
            self.slots += w.slots
            self.speeds[name] = w
            env = {workload.LEDGER_ENV: str(self.ledger), workload.SPEED_ENV: str(w.speed)}
            args = ["-c", ",".join(w.capabilities), "--max-tasks", str(w.slots),
                    "--heartbeat-interval", str(self.opts.heartbeat), "--wait", "5",
                    "--command", workload.COMMAND]
            log = self.data / "workers" / f"{name}.log"
            self.workers.append(swarm_worker(name, self.url, self.token, args, log, env).start())

    def _wait_registered(self, op: Client, within: float = 30.0) -> None:
        want = {w.name for w in self.workers}
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            dead = [w for w in self.workers if not w.alive]
            if dead:
                raise DemoError(f"worker {dead[0].name} exited early:\n{dead[0].tail()}")
            online = {s["id"] for s in op.sessions() if s["status"] != "offline"}
            if want <= online:
                return
            time.sleep(0.05)
        raise DemoError(f"the workers did not all register within {within:g} s")

    def _stop_workers(self) -> None:
        """Drain them (SIGTERM): each finishes, deregisters and exits 0."""
        for w in self.workers:
            w.signal(signal.SIGTERM)
        for w in self.workers:
            if w.wait(15) is None:
                w.kill()

    def _cleanup(self) -> None:
        for w in self.workers:
            w.kill()
        if not self.opts.keep:
            self.server.stop()

    # -- watching -------------------------------------------------------------------------

    def _snapshot(self, op: Client, submitted: float) -> Snapshot:
        page = op.list_tasks(limit=1000)
        return Snapshot(time.time() - submitted, op.status(), op.sessions(), page["tasks"])

    def _watch(self, op: Client, submitted: float) -> float | None:
        """Refresh the view until every task is final; when that happened (epoch seconds),
        or None after the timeout."""
        with self._view() as view:
            deadline = time.monotonic() + self.opts.timeout
            while True:
                try:
                    snap = self._snapshot(op, submitted)
                except SwarmError as exc:
                    view.note(f"status not available ({exc.message}); retrying")
                    snap = None
                if snap is not None:
                    view.update(snap)
                    if all(t["status"] in FINAL for t in snap.tasks):
                        return submitted + snap.elapsed
                if time.monotonic() > deadline:
                    view.note(f"timed out after {self.opts.timeout:g} s")
                    return None
                time.sleep(REFRESH)

    @contextlib.contextmanager
    def _view(self) -> Iterator[View]:
        if self.plain:
            yield PlainView(sys.stdout)
            return
        title = f"Unified Swarm demo · {self.url} · {len(self.workers)} workers"
        with LiveView(self.console, title).running() as live:
            yield live

    # -- the summary ----------------------------------------------------------------------

    def _report(self, summary: Summary, *, timed_out: bool) -> None:
        verdict = ("every task completed exactly once" if summary.ok and not timed_out
                   else "NOT every task completed exactly once")
        self.say("")
        self.say(f"Summary: {verdict}")
        for line in summary.lines():
            self.say(f"  {line}")
        self.say(f"  data         {self.data}  (swarm.db, server.log, workers/*.log, "
                 "effects.log: one line per side effect)")
        if self.opts.keep and self.server.alive:
            self.say(f"  API          {self.url}  (still running, pid {self.server.pid}; "
                     f"stop it with: kill {self.server.pid})")
            self.say(f"  dashboard    {self.url}/#token={self.token}")
            self.say(f"  token        export SWARM_URL={self.url} SWARM_TOKEN={self.token}")
            shown = summary.retried[0] if summary.retried else "coordination-001"
            self.say("               then: swarm status; swarm task list; "
                     f"swarm task show {shown}")
        else:
            self.say(f"  API          {self.url}  (stopped; `swarm demo --keep` leaves it "
                     "running with its dashboard)")


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo; 0 only when every task completed exactly once."""
    demo = Demo(options, console or Console())
    return demo.run()
