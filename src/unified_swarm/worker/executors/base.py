"""What every executor shares: the `Executor` protocol, the per-task `TaskContext`, and
`TaskFailed`, the one way an executor says "this attempt failed".

An executor turns one claimed task into a JSON result (returned) or a failure (raised). It
never talks to the server: the worker records the outcome with the lease's fencing token,
renews the lease, and reports the progress the executor passes to `TaskContext.progress`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...client.types import JSON, RateLimit, Task, Usage

# defined with the SDK's types (below the worker), so any executor module can return one
from ...client.types import SplitInto as SplitInto

#: how an executor reports progress: (fraction 0..1, message or None); never blocks
ProgressFn = Callable[[float, "str | None"], None]
#: how an executor says its agent waits out an API rate limit now: progress as above, and
#: what the API said (the session shows `rate_limited` until the next plain progress)
RateLimitFn = Callable[[float, "str | None", RateLimit], None]
#: how an executor says what the attempt spent so far (its total); never blocks
UsageFn = Callable[[Usage], None]
#: the longest `SWARM_TASK_CONTEXT` value: Linux refuses one environment string over
#: 128 KiB (MAX_ARG_STRLEN); a bigger context is marked cut there (stdin=task has it whole)
MAX_ENV_CONTEXT = 100_000



class TaskFailed(Exception):
    """This attempt failed. `retry` False asks the server not to try the task again (it
    still stops at the task's max_attempts either way)."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry


class ExecutorConfigError(ValueError):
    """An executor's options cannot work (no command, an unimportable function, ...)."""


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What an executor knows about the attempt it runs, besides the task itself."""

    task: Task
    fencing_token: int
    session_id: str
    worker_name: str
    report: ProgressFn = field(default=lambda value, message: None, repr=False)
    #: None: a rate limit is reported as plain progress
    report_rate_limit: RateLimitFn | None = field(default=None, repr=False)
    report_usage: UsageFn = field(default=lambda spent: None, repr=False)
    #: where the worker's server is, and its session's token: only for an executor that
    #: lends the session to a tool of its own (the claude executor's MCP bridge, through a
    #: 0600 file); never put in a child's environment or argv
    server_url: str = ""
    session_token: str = field(default="", repr=False)

    @property
    def task_id(self) -> str:
        return self.task["id"]

    @property
    def context(self) -> dict[str, JSON]:
        """What the server handed with the task: {"dependencies": {id: result},
        "knowledge": {topic: content}, "notes": [...]} (and `truncated` when cut)."""
        return dict(self.task.get("context") or EMPTY_CONTEXT)

    def progress(self, value: float, message: str | None = None) -> None:
        """Report progress (0..1; it also renews the lease). Callable from any thread."""
        self.report(min(1.0, max(0.0, float(value))), message)

    def rate_limited(self, value: float, message: str | None, info: RateLimit) -> None:
        """Progress that also says the agent waits out an API rate limit or overload now
        (`info`: attempt, max_retries, retry_in_s, error_status, error). Any thread."""
        value = min(1.0, max(0.0, float(value)))
        if self.report_rate_limit is None:
            self.report(value, message)
        else:
            self.report_rate_limit(value, message, info)

    def spent(self, usage: Usage) -> None:
        """What the attempt spent so far (its total: cost_usd and token counts); the worker
        sends it with the attempt's outcome (and its later progress). Any thread."""
        self.report_usage(usage)

    def environment(self) -> dict[str, str]:
        """The task as `SWARM_*` variables: the only way task data reaches a command line
        program besides its stdin (see `ShellExecutor`). Never a token of any kind."""
        task = self.task
        env = {
            "SWARM_TASK_ID": task["id"],
            "SWARM_TASK_TYPE": task["type"],
            "SWARM_TASK_TITLE": task.get("title") or "",
            "SWARM_TASK_INPUT": json.dumps(task.get("input"), ensure_ascii=False),
            "SWARM_TASK_CAPABILITY": task.get("required_capability") or "",
            "SWARM_TASK_PRIORITY": str(task.get("priority", "")),
            "SWARM_TASK_ATTEMPT": str(task.get("attempts", "")),
            "SWARM_TASK_MAX_ATTEMPTS": str(task.get("max_attempts", "")),
            "SWARM_FENCING_TOKEN": str(self.fencing_token),
            "SWARM_SESSION_ID": self.session_id,
            "SWARM_WORKER_NAME": self.worker_name,
        }
        env.update(input_variables(task.get("input")))
        env["SWARM_TASK_CONTEXT"] = context_variable(self.context)
        return env


#: the context of a task the server sent none with
EMPTY_CONTEXT: dict[str, JSON] = {"dependencies": {}, "knowledge": {}, "notes": []}


def context_variable(context: Mapping[str, JSON]) -> str:
    """The context as JSON for `SWARM_TASK_CONTEXT`; past MAX_ENV_CONTEXT, a context that
    says it was cut (never a silently shortened one)."""
    text = json.dumps(context, ensure_ascii=False)
    if len(text.encode()) <= MAX_ENV_CONTEXT:
        return text
    return json.dumps({"dependencies": {}, "knowledge": {}, "notes": [], "truncated": {
        "limit_bytes": MAX_ENV_CONTEXT, "cut": ["dependencies", "knowledge", "notes"],
        "reason": "too big for an environment variable: the shell executor's stdin=task "
                  "option sends it whole on stdin"}})


def input_variables(value: JSON) -> dict[str, str]:
    """Top-level scalar fields of an object input as `SWARM_INPUT_<KEY>` (key upper-cased,
    other characters than letters, digits and _ dropped), so a shell script reads
    `"$SWARM_INPUT_SECONDS"` without a JSON parser."""
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        name = "".join(c for c in str(key).upper() if c.isalnum() or c == "_")
        if not name or not name.isascii():
            continue
        if isinstance(item, bool):
            out[f"SWARM_INPUT_{name}"] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            out[f"SWARM_INPUT_{name}"] = str(item)
    return out


def ensure_json(value: Any, what: str) -> JSON:
    """`value` if it is JSON the server can store, else TaskFailed (no retry: a second run
    would return the same kind of thing)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TaskFailed(f"{what} is not JSON: {exc}", retry=False) from None
    return value


class Executor(Protocol):
    """Runs one task. Returns its JSON result or raises `TaskFailed`; any other exception
    is a failure too (retried). Cancellation means the worker gives the task back: stop at
    once and leave nothing running (kill child processes)."""

    @property
    def kind(self) -> str:
        """"shell", "python", "claude", ...: shown in the worker's log and metadata."""
        ...

    async def run(self, ctx: TaskContext) -> JSON:
        """Run `ctx.task` once."""
        ...

    def describe(self) -> str:
        """One line for the worker's log (never a secret)."""
        ...


class Options:
    """An executor's options (from flags or a config file), read with type checks so a
    wrong value is one clear error before the worker registers."""

    def __init__(self, kind: str, raw: Mapping[str, object], allowed: frozenset[str]) -> None:
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ExecutorConfigError(f"unknown option(s) for the {kind} executor: "
                                      f"{', '.join(unknown)} (known: {', '.join(sorted(allowed))})")
        self.kind = kind
        self.raw = {k: v for k, v in raw.items() if v is not None}

    def _bad(self, key: str, want: str) -> ExecutorConfigError:
        return ExecutorConfigError(f"{self.kind} executor option {key!r} must be {want}, "
                                   f"got {self.raw[key]!r}")

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None or isinstance(value, str):
            return value or None
        raise self._bad(key, "a string")

    def number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self._bad(key, "a number")
        try:
            return float(value)
        except ValueError:
            raise self._bad(key, "a number") from None

    def integer(self, key: str) -> int | None:
        value = self.number(key)
        if value is not None and value != int(value):
            raise self._bad(key, "a whole number")
        return None if value is None else int(value)

    def strings(self, key: str) -> list[str]:
        """A list of strings; a string is split on commas."""
        value = self.raw.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        raise self._bad(key, "a list of strings")

    def command(self, key: str) -> str | list[str] | None:
        """A command: a string (split like a shell would) or a list of arguments."""
        value = self.raw.get(key)
        if value is None or isinstance(value, str):
            return value or None
        return self.strings(key)

    def mapping(self, key: str) -> dict[str, object]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return {str(k): v for k, v in value.items()}
        raise self._bad(key, "a table (name = value)")
