"""`WorkerConfig`: everything a worker needs besides its executor, checked before it
starts. Built by `swarm worker` from flags, a TOML file and `SWARM_*` variables."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..client.types import JSON

#: `swarm worker` heart-beats every 10 s by default, so its leases last 30 s (3 intervals)
HEARTBEAT_INTERVAL = 10.0
#: a long-poll waits this long for work before asking again
POLL_WAIT = 30.0
#: in burst mode a worker waits at most this long for work before it calls the queue empty
BURST_WAIT = 1.0
#: how long a starting worker keeps trying to reach the server and register
CONNECT_TIMEOUT = 30.0
#: how long a finished task's outcome keeps being retried while the server is unreachable
RECORD_BUDGET = 300.0


class WorkerConfigError(ValueError):
    """A worker setting that cannot work."""


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Who the worker is, how it paces itself, and where the server is.

    `token` is the operator token: registering takes it; every later call uses the
    session's own token from the answer.
    """

    url: str
    token: str
    capabilities: tuple[str, ...] = ()
    id: str | None = None
    name: str = field(default_factory=default_name)
    max_concurrent_tasks: int = 1
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    wait: float = POLL_WAIT
    #: drain and exit as soon as a poll finds nothing and nothing runs (tests, batch jobs)
    burst: bool = False
    #: fewer round trips (issue 16): one request for every free slot (`max=N`) and the next
    #: task claimed in the complete, so a busy worker makes one request per task
    batch: bool = True
    connect_timeout: float = CONNECT_TIMEOUT
    record_budget: float = RECORD_BUDGET
    metadata: Mapping[str, JSON] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise WorkerConfigError(f"the server URL must start with http:// or https://: "
                                    f"{self.url!r}")
        if not self.token:
            raise WorkerConfigError("no operator token: pass --token or set SWARM_TOKEN")
        if not 1 <= self.max_concurrent_tasks <= 1000:
            raise WorkerConfigError("max concurrent tasks must be within 1..1000")
        if not 0.1 <= self.heartbeat_interval <= 3600:
            raise WorkerConfigError("the heartbeat interval must be within 0.1..3600 s")
        if not 0 <= self.wait <= 60:
            raise WorkerConfigError("the long-poll wait must be within 0..60 s")
        if self.connect_timeout < 0 or self.record_budget < 0:
            raise WorkerConfigError("timeouts must be >= 0")
        if not self.name:
            raise WorkerConfigError("the worker name must not be empty")

    @property
    def poll_wait(self) -> float:
        return min(self.wait, BURST_WAIT) if self.burst else self.wait

    @property
    def lease_ttl(self) -> float:
        """What the server grants by default: 3 heartbeat intervals."""
        return 3 * self.heartbeat_interval

    def replace(self, **changes: Any) -> WorkerConfig:
        return dataclasses.replace(self, **changes)
