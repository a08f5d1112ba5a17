"""The worker runtime (`swarm worker`) and its executors.

A worker joins a swarm as one session, heart-beats from a thread of its own, long-polls for
work, runs each task through an executor (shell command, Python callable, Claude Code
headless) and records the outcome with the lease's fencing token. It talks to the server
only through `unified_swarm.client`, so it runs on any host that reaches the API.
"""

from __future__ import annotations

from .config import WorkerConfig, WorkerConfigError
from .executors import (
    EXECUTORS,
    ClaudeExecutor,
    Executor,
    ExecutorConfigError,
    PythonExecutor,
    ShellExecutor,
    SplitInto,
    TaskContext,
    TaskFailed,
    make_executor,
)
from .runtime import Worker, WorkerExit

__all__ = ["EXECUTORS", "ClaudeExecutor", "Executor", "ExecutorConfigError", "PythonExecutor",
           "ShellExecutor", "SplitInto", "TaskContext", "TaskFailed", "Worker", "WorkerConfig",
           "WorkerConfigError", "WorkerExit", "make_executor"]
