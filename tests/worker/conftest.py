"""Real `swarm worker` processes against a real server (the in-process uvicorn of
tests/conftest.py), started by unified_swarm.procs, each in its own process group so a test
can SIGKILL, SIGSTOP or SIGTERM it. Waits are bounded polls of the API or of a worker's log,
never bare sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import LiveServer
from unified_swarm.client import Client
from unified_swarm.client.types import Session, TaskDetail
from unified_swarm.errors import NotFound
from unified_swarm.procs import Proc, swarm_argv, swarm_worker

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
#: the heartbeat of test workers (leases of 3 s); tests about lease expiry use FAST_BEAT
BEAT = 1.0
FAST_BEAT = 0.5


def wait_for(check: Callable[[], T | None], what: str, within: float = 15.0,
             every: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(every)


def swarm_command() -> list[str]:
    return swarm_argv()


class WorkerProcess:
    """One `swarm worker` subprocess; its stdout and stderr go to a log file."""

    def __init__(self, child: Proc) -> None:
        self.child, self.name, self.log_path = child, child.name, child.log

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self.child.popen is not None
        return self.child.popen

    @property
    def pid(self) -> int:
        return self.child.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, within: float = 15.0) -> None:
        wait_for(lambda: text in self.log() or None, f"{text!r} in {self.name}'s log\n"
                 f"--- log so far ---\n{self.log()}", within)

    def send_signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def signal_group(self, sig: signal.Signals) -> None:
        self.child.signal(sig)

    def wait(self, within: float = 15.0) -> int:
        code = self.child.wait(within)
        if code is None:
            raise AssertionError(f"{self.name} did not exit in {within} s\n{self.log()}")
        return code

    def kill(self) -> None:
        self.child.kill()


class Workers:
    """Starts workers for one test and kills whatever is left at its end."""

    def __init__(self, server: LiveServer, tmp_path: Path) -> None:
        self.server, self.tmp_path = server, tmp_path
        self.started: list[WorkerProcess] = []

    def start(self, name: str, *args: str, capabilities: str = "build",
              beat: float = BEAT, env: dict[str, str] | None = None) -> WorkerProcess:
        flags = ["-c", capabilities, "--heartbeat-interval", str(beat), "--wait", "5", *args]
        child = swarm_worker(name, self.server.url, self.server.token, flags,
                             self.tmp_path / f"{name}.log",
                             {"SWARM_TEST_DIR": str(self.tmp_path), **(env or {})}, ROOT)
        worker = WorkerProcess(child.start())
        self.started.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.started:
            worker.kill()


@pytest.fixture
def op(sqlite_server: LiveServer) -> Iterator[Client]:
    with Client(sqlite_server.url, sqlite_server.token) as client:
        yield client


@pytest.fixture
def workers(sqlite_server: LiveServer, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(sqlite_server, tmp_path)
    try:
        yield pool
    finally:
        pool.close()


def task_state(op: Client, task_id: str) -> TaskDetail:
    return op.get_task(task_id)


def status_is(op: Client, task_id: str, *statuses: str) -> TaskDetail | None:
    detail = op.get_task(task_id)
    return detail if detail["task"]["status"] in statuses else None


def session_or_none(op: Client, session_id: str) -> Session | None:
    """The session, or None before it registered."""
    try:
        return op.session(session_id)
    except NotFound:
        return None


def held_by(op: Client, task_id: str, session: str) -> TaskDetail | None:
    detail = op.get_task(task_id)
    task = detail["task"]
    return detail if task["status"] == "in_progress" and task["assigned_to"] == session \
        else None
