"""`shell`: run a fixed command for each task.

The command comes from the worker's configuration, never from the task: task data reaches
the command only through environment variables and stdin, never through its command line
(DESIGN.md's security default), so a title like `; rm -rf ~` is just text. No shell runs
unless the configured command is one (`sh -c '...'`), and then `"$SWARM_TASK_TITLE"` expands
to data, not code.

- environment: the worker's own (minus `SWARM_TOKEN`), then `SWARM_TASK_ID`,
  `SWARM_TASK_TYPE`, `SWARM_TASK_TITLE`, `SWARM_TASK_INPUT` (JSON), `SWARM_TASK_CAPABILITY`,
  `SWARM_TASK_PRIORITY`, `SWARM_TASK_ATTEMPT`, `SWARM_TASK_MAX_ATTEMPTS`,
  `SWARM_FENCING_TOKEN`, `SWARM_SESSION_ID`, `SWARM_WORKER_NAME`, and `SWARM_INPUT_<KEY>` for
  each top-level scalar of an object input;
- `SWARM_TASK_CONTEXT`: what the server handed with the task (JSON: "dependencies",
  "knowledge", "notes"; marked `truncated` when cut);
- stdin: the input as JSON; with the option `stdin = "task"`, the whole task instead
  (`{"id", "type", "input", "context", ...}`), so the context reaches it whole;
- exit status 0: the task completes with stdout as its result (JSON when it parses, else the
  text); any other status fails the attempt with the tail of stderr;
- stderr lines `SWARM_PROGRESS <0..1> [message]` are reported as progress;
- `timeout`: the attempt fails and the command's whole process group is killed.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...client.types import JSON
from .base import ExecutorConfigError, Options, TaskContext, TaskFailed
from .process import child_environment, run_process, text_of

Command = tuple[str, ...]
OPTIONS = frozenset({"command", "commands", "timeout", "cwd", "env", "max_output", "stdin"})
#: what the command reads on stdin: the task's input (JSON), or the whole task with context
STDIN = ("input", "task")


def parse_command(raw: str | Sequence[str], what: str = "command") -> Command:
    """A command as argv: a list is taken as is, a string is split like a shell would
    (quotes respected, nothing expanded)."""
    argv = tuple(shlex.split(raw)) if isinstance(raw, str) else tuple(str(a) for a in raw)
    if not argv or not argv[0]:
        raise ExecutorConfigError(f"the shell executor's {what} is empty")
    return argv


@dataclass(frozen=True, slots=True)
class ShellExecutor:
    """See the module docstring. `commands` maps a task type to its own command; other
    types run `command`."""

    command: Command | None
    commands: Mapping[str, Command] = field(default_factory=dict)
    timeout: float | None = None
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    #: stdout kept as the result, bytes (the server caps a result at 1 MiB by default)
    max_output: int = 512 * 1024
    kill_grace: float = 2.0
    stdin: str = "input"
    kind: str = "shell"

    def __post_init__(self) -> None:
        if self.command is None and not self.commands:
            raise ExecutorConfigError("the shell executor needs a command (--command)")
        if self.timeout is not None and self.timeout <= 0:
            raise ExecutorConfigError("timeout must be > 0")
        if self.max_output < 1:
            raise ExecutorConfigError("max_output must be >= 1")
        if self.stdin not in STDIN:
            raise ExecutorConfigError(f"stdin must be one of {', '.join(STDIN)}")

    @classmethod
    def from_options(cls, raw: Mapping[str, object]) -> ShellExecutor:
        """From config keys: command, commands (type -> command), timeout, cwd, env,
        max_output, stdin ("input" or "task")."""
        opts = Options("shell", raw, OPTIONS)
        command = opts.command("command")
        commands: dict[str, Command] = {}
        for key, value in opts.mapping("commands").items():
            if not isinstance(value, str | list):
                raise ExecutorConfigError(f"the command for task type {key!r} must be a "
                                          "string or a list")
            commands[key] = parse_command(value, f"command for {key!r}")
        cwd = opts.text("cwd")
        return cls(
            command=parse_command(command) if command else None,
            commands=commands,
            timeout=opts.number("timeout"),
            cwd=Path(cwd) if cwd else None,
            env={k: str(v) for k, v in opts.mapping("env").items()},
            max_output=opts.integer("max_output") or 512 * 1024,
            stdin=opts.text("stdin") or "input",
        )

    def describe(self) -> str:
        shown = shlex.join(self.command) if self.command else "per-type commands"
        extra = f", timeout {self.timeout:g} s" if self.timeout else ""
        return f"shell: {shown}{extra}"

    def argv(self, task_type: str) -> Command:
        command = self.commands.get(task_type, self.command)
        if command is None:
            raise TaskFailed(f"this worker has no command for task type {task_type!r}",
                             retry=True)
        return command

    async def run(self, ctx: TaskContext) -> JSON:
        sent = ctx.task if self.stdin == "task" else ctx.task.get("input")
        stdin = json.dumps(sent, ensure_ascii=False).encode()
        env = child_environment(os.environ, self.env, ctx.environment())
        done = await run_process(self.argv(ctx.task["type"]), stdin=stdin, env=env,
                                 cwd=self.cwd, time_limit=self.timeout,
                                 max_output=self.max_output, progress=ctx.progress,
                                 kill_grace=self.kill_grace)
        if done.returncode != 0:
            tail = done.stderr_tail or "(no stderr)"
            raise TaskFailed(f"{done.describe_exit()}: {tail}")
        return result_of(done.stdout, done.stdout_truncated)


def result_of(stdout: bytes, truncated: bool) -> JSON:
    """stdout as JSON when it is one whole JSON document, else as text (None if empty)."""
    text = text_of(stdout)
    if not truncated:
        try:
            return json.loads(text, parse_constant=_no_constant) if text.strip() else None
        except ValueError:
            pass
    return text.rstrip("\n")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON the server accepts")
