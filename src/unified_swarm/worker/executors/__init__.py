"""Executors: how a worker runs a task. Pluggable by name (`swarm worker --executor NAME`
or `executor = "NAME"` in a config file):

    shell    a fixed command; the task reaches it only via SWARM_* variables and stdin
    python   module:function, sync or async
    claude   Claude Code headless (`claude -p ... --output-format json`)

A third-party executor is any object with the `Executor` protocol; pass it to `Worker`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .base import Executor, ExecutorConfigError, Options, SplitInto, TaskContext, TaskFailed
from .claude import ClaudeExecutor
from .python import PythonExecutor
from .shell import ShellExecutor

#: name -> factory taking that executor's options
EXECUTORS: dict[str, Callable[[Mapping[str, object]], Executor]] = {
    "shell": ShellExecutor.from_options,
    "python": PythonExecutor.from_options,
    "claude": ClaudeExecutor.from_options,
}


def make_executor(kind: str, options: Mapping[str, object]) -> Executor:
    """The executor named `kind`, built from its options; ExecutorConfigError when the
    name is unknown or an option cannot work."""
    factory = EXECUTORS.get(kind)
    if factory is None:
        raise ExecutorConfigError(f"unknown executor {kind!r}; known: {', '.join(EXECUTORS)}")
    return factory(options)


__all__ = ["EXECUTORS", "ClaudeExecutor", "Executor", "ExecutorConfigError", "Options",
           "PythonExecutor", "ShellExecutor", "SplitInto", "TaskContext", "TaskFailed",
           "make_executor"]
