"""Running one child process for a task: its own process group, stdin fed, stdout kept
(up to a cap), stderr scanned for progress lines and kept as a tail, a timeout that kills
the whole group, and the same kill when the worker gives the task back (cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .base import ProgressFn, TaskFailed

#: a stderr line `SWARM_PROGRESS 0.5 halfway there` reports progress instead of being kept
PROGRESS_PREFIX = "SWARM_PROGRESS "
TAIL_LINES = 20
TAIL_CHARS = 4000
#: how a child is stopped by default: SIGTERM, then SIGKILL after the grace
TERMINATE = (signal.SIGTERM,)
#: a stdout line handler (`run_process(on_line=...)`): called with each complete line
LineFn = Callable[[str], None]
#: variables a child never inherits from the worker: the swarm's secrets stay with it
SECRET_VARIABLES = frozenset({"SWARM_TOKEN", "SWARM_SESSION_TOKEN"})
#: inherited variables of these prefixes are dropped so a child sees only its own task
TASK_PREFIXES = ("SWARM_TASK_", "SWARM_INPUT_")


@dataclass(slots=True)
class Finished:
    """A child that ran to its end (any exit status)."""

    returncode: int
    stdout: bytes
    stdout_truncated: bool
    stderr_tail: str

    def describe_exit(self) -> str:
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = str(-self.returncode)
            return f"killed by {name}"
        return f"exit status {self.returncode}"


@dataclass(slots=True)
class _Streams:
    stdout: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    def tail_text(self) -> str:
        text = "\n".join(self.tail).strip()
        return text if len(text) <= TAIL_CHARS else "…" + text[-TAIL_CHARS:]


def child_environment(base: Mapping[str, str], extra: Mapping[str, str],
                      task_env: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment minus its secrets and any stale task variables, plus the
    configured extras, plus this task's `SWARM_*` variables (which win)."""
    env = {k: v for k, v in base.items()
           if k not in SECRET_VARIABLES and not k.startswith(TASK_PREFIXES)}
    env.update(extra)
    env.update(task_env)
    return env


async def run_process(argv: Sequence[str], *, stdin: bytes, env: Mapping[str, str],
                      cwd: Path | None, time_limit: float | None, max_output: int,
                      progress: ProgressFn, kill_grace: float = 2.0,
                      on_line: LineFn | None = None,
                      stop_signals: Sequence[signal.Signals] = TERMINATE) -> Finished:
    """Run `argv` (no shell) to its end. Raises TaskFailed on a timeout (after killing the
    process group) or when it cannot start; on cancellation stops the group (each of
    `stop_signals` in turn, `kill_grace` apart, then SIGKILL) and re-raises. `on_line` sees
    each stdout line as it comes (a live stream), besides the capped copy kept.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(env), cwd=cwd,
            start_new_session=True)  # its own group: one killpg ends it and its children
    except OSError as exc:
        raise TaskFailed(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    streams = _Streams()
    try:
        async with asyncio.timeout(time_limit):
            await _communicate(proc, stdin, streams, max_output, progress, on_line)
    except TimeoutError:
        await kill_group(proc, kill_grace, stop_signals)
        tail = streams.tail_text()
        raise TaskFailed(f"timed out after {time_limit:g} s" + (f"; stderr: {tail}" if tail
                                                               else "")) from None
    except BaseException:  # cancelled: the worker gives the task back, leave nothing behind
        await asyncio.shield(kill_group(proc, kill_grace, stop_signals))
        raise
    assert proc.returncode is not None
    return Finished(proc.returncode, bytes(streams.stdout), streams.truncated,
                    streams.tail_text())


async def _communicate(proc: asyncio.subprocess.Process, stdin: bytes, streams: _Streams,
                       max_output: int, progress: ProgressFn, on_line: LineFn | None) -> None:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    await asyncio.gather(
        _feed(proc.stdin, stdin),
        _read_stdout(proc.stdout, streams, max_output, on_line),
        _read_stderr(proc.stderr, streams, progress),
    )
    await proc.wait()


async def _feed(pipe: asyncio.StreamWriter, data: bytes) -> None:
    # a child that never reads its stdin must not fail the task
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            pipe.write(data)
            await pipe.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        pipe.close()
        await pipe.wait_closed()


async def _read_stdout(pipe: asyncio.StreamReader, streams: _Streams, cap: int,
                       on_line: LineFn | None) -> None:
    pending = b""
    while chunk := await pipe.read(65536):
        room = cap - len(streams.stdout)
        if len(chunk) > room:
            streams.truncated = True  # keep draining so the child never blocks on a pipe
        streams.stdout += chunk[:max(room, 0)]
        if on_line is not None:
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                on_line(text_of(line).rstrip("\r"))
    if on_line is not None and pending.strip():
        on_line(text_of(pending))


async def _read_stderr(pipe: asyncio.StreamReader, streams: _Streams,
                       progress: ProgressFn) -> None:
    while True:
        try:
            raw = await pipe.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raw = exc.partial
        except asyncio.LimitOverrunError as exc:  # a huge line: keep its start only
            raw = await pipe.read(exc.consumed)
        if not raw:
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not _progress_line(line, progress):
            streams.tail.append(line)


def _progress_line(line: str, progress: ProgressFn) -> bool:
    if not line.startswith(PROGRESS_PREFIX):
        return False
    value, _, message = line[len(PROGRESS_PREFIX):].strip().partition(" ")
    try:
        fraction = float(value)
    except ValueError:
        return False
    if fraction != fraction:  # NaN
        return False
    progress(min(1.0, max(0.0, fraction)), message.strip() or None)
    return True


async def kill_group(proc: asyncio.subprocess.Process, grace: float,
                     stop_signals: Sequence[signal.Signals] = TERMINATE) -> None:
    """Each of `stop_signals` (SIGTERM by default) to the child's process group, `grace`
    seconds apart, until it ends; then SIGKILL."""
    steps = [(sig, grace) for sig in stop_signals] + [(signal.SIGKILL, 5.0)]
    for sig, wait in steps:
        _signal_group(proc.pid, sig)
        try:
            async with asyncio.timeout(wait):
                await proc.wait()
        except TimeoutError:
            continue
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers left in the group
        return


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def text_of(data: bytes) -> str:
    return data.decode("utf-8", "replace")
