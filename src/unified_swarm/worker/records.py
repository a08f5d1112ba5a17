"""The worker's records: its modes and exit codes, one attempt it runs, an outcome to
record, and the counts it keeps."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from ..client.types import JSON, RateLimit, Task, Usage
from ..errors import RateLimited, SwarmError, Unavailable
from .leases import Key


class WorkerExit(enum.IntEnum):
    """Exit codes of `swarm worker`."""

    OK = 0  # drained: every task it took was finished and recorded (or refused)
    ERROR = 1  # could not register, or the session was removed under it
    UNRECORDED = 3  # drained, but a finished task's outcome could not be recorded
    ABORTED = 130  # a second signal: running tasks were given back unfinished


class Mode(enum.Enum):
    RUNNING = "running"
    DRAINING = "draining"
    ABORTING = "aborting"


@dataclass(frozen=True, slots=True)
class Completed:
    result: JSON


@dataclass(frozen=True, slots=True)
class Failed:
    error: str
    retry: bool = True
    #: not a failure of the task: this worker gives it back unfinished
    released: bool = False


@dataclass(frozen=True, slots=True)
class Splitting:
    """The executor split the task (executors.SplitInto): record it with POST /split."""

    subtasks: list[JSON]
    merge: JSON = "list"


@dataclass(frozen=True, slots=True)
class Released:
    """A preempted attempt given back (`POST /work/release`): not a failure; `note` (the
    last progress it reported) reaches the next holder."""

    note: str | None = None


Outcome = Completed | Failed | Splitting | Released


def transient(exc: SwarmError) -> bool:
    """An outcome call worth repeating with the same payload: a 5xx (the server may or may
    not have recorded it; complete, fail and progress are idempotent per fencing token),
    an answer that was not JSON, no answer at all, or a rate limit."""
    return isinstance(exc, Unavailable | RateLimited) or exc.status >= 500


@dataclass(slots=True)
class Run:
    """One attempt running on this worker."""

    task: Task
    token: int
    started: float
    handle: asyncio.Task[None] | None = None
    executing: asyncio.Task[JSON] | None = None
    #: the progress to send next: fraction, message, and a rate limit the agent waits out
    pending_progress: tuple[float, str | None, RateLimit | None] | None = None
    progress_sender: asyncio.Task[None] | None = None
    lease_lost: bool = False
    done: bool = False
    #: the orchestrator preempted this attempt: it is stopped and given back with a note
    preempted: bool = False
    #: the last progress the executor reported (a preempted attempt's note)
    last_progress: tuple[float, str | None] | None = None
    #: what the attempt spent so far, as its executor last said (sent with its outcome)
    usage: Usage | None = None

    @property
    def key(self) -> Key:
        return (self.task["id"], self.token)


@dataclass(slots=True)
class Parked:
    """A finished attempt whose outcome is not known to be recorded yet."""

    run: Run
    outcome: Outcome
    first_try: float
    sending: bool = False


@dataclass(slots=True)
class Stats:
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    refused: int = 0
    released: int = 0
    #: tasks split into subtasks instead of completed
    split: int = 0
    #: outcomes that could not be recorded before their lease ended (the work was lost)
    unrecorded: int = 0

    def line(self) -> str:
        return (f"{self.claimed} claimed, {self.completed} completed, {self.failed} failed, "
                f"{self.refused} refused by the server (lease lost), "
                f"{self.released} given back, {self.split} split, "
                f"{self.unrecorded} not recorded")


def verb(outcome: Outcome) -> str:
    if isinstance(outcome, Splitting):
        return "split"
    if isinstance(outcome, Released):
        return "release"
    return "complete" if isinstance(outcome, Completed) else "fail"
