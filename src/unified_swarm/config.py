"""Every default of the swarm, named once.

The seed's protocol rules (heartbeat interval, claim timeout, idle threshold, ...) live here.
Each field can be set from the environment as `SWARM_<FIELD>` (e.g. `SWARM_HEARTBEAT_INTERVAL=10`)
and from the matching `swarm server --<field>` flag; `Settings.validate()` refuses nonsense
before anything starts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import lifecycle
from .errors import InvalidInput
from .models import MAX_WAIT

MiB = 1024 * 1024
#: the policies SWARM_SCHEDULER names
SCHEDULERS = frozenset({"learned", "fifo"})


#: The seed's capability catalogue, name -> what it is for. With `strict_capabilities` only
#: these names are accepted.
CATALOGUE: dict[str, str] = {
    "build": "Write, test and ship code",
    "architect": "Design systems and review plans",
    "marketing": "Copy, launch plans, positioning",
    "research": "Find, read and summarise sources",
    "coordination": "Split, route and merge work",
}


@dataclass(frozen=True, slots=True)
class Backend:
    """A store backend: its module (imported only when a store is made: it must define
    `from_settings(settings) -> Store`) and the extra that brings its driver."""

    kind: str
    module: str
    extra: str | None = None


_REDIS = Backend("redis", "unified_swarm.store.redis", "redis")
#: The store backends by the scheme of `Settings.store` ("sqlite" alone is the SQLite file
#: in the data directory). A sibling backend is one line here and a module under store/.
STORES: dict[str, Backend] = {
    "sqlite": Backend("sqlite", "unified_swarm.store.sqlite"),
    "redis": _REDIS,
    "rediss": _REDIS,
    "unix": _REDIS,
}


@dataclass(frozen=True, slots=True)
class Settings:
    # where it listens and keeps its data
    host: str = "127.0.0.1"
    port: int = 8600
    data_dir: Path = Path(".swarm")
    #: "sqlite" (a file in data_dir), "sqlite:///path/to/file.db" or "redis://host:port/db"
    store: str = "sqlite"
    #: operator token; when unset it is generated into <data_dir>/token on first start
    token: str | None = None
    #: key prefix for the Redis store, so several swarms share one Redis
    redis_prefix: str = "swarm"
    #: start even when Redis has eviction on or AOF off (loses acknowledged writes)
    redis_allow_unsafe: bool = False

    # the seed's protocol rules
    heartbeat_interval: float = 60.0
    task_claim_timeout: float = 300.0
    idle_threshold: float = 120.0
    max_concurrent_tasks: int = 1
    default_max_attempts: int = 3
    #: lease TTL = lease_factor x the session's heartbeat interval (also: offline after this)
    lease_factor: float = 3.0
    strict_capabilities: bool = False
    #: how long a preempted holder has to checkpoint and release before its lease is
    #: revoked (SWARM_PREEMPT_GRACE; Kubernetes' default termination grace)
    preempt_grace: float = 30.0
    #: a task preempted this many times is never chosen as a victim again, so a long task
    #: cannot be starved forever by emergencies (SWARM_MAX_PREEMPTIONS)
    max_preemptions: int = 3
    #: tasks estimated over this many hours tell their holder `split_suggested` on a claim
    collaboration_threshold: float = 8.0
    #: how deep splits nest: a subtask this many splits below a client's task splits no more
    max_split_depth: int = 5
    #: the largest `context` a claimed task carries (JSON bytes); past it, entries are cut
    #: with a marker saying what and how much (never silently)
    max_context_bytes: int = 256 * 1024

    # input limits: everything past these is a 4xx before it touches the store
    max_body_bytes: int = 16 * MiB
    max_input_bytes: int = 1 * MiB
    max_json_depth: int = 64
    max_batch: int = 1000
    #: the longest long-poll this server grants, at most the protocol's MAX_WAIT
    max_wait: float = MAX_WAIT
    #: how long the answer to a call with an `Idempotency-Key` is kept for its retries
    idempotency_ttl: float = 24 * 3600.0

    # abuse limits, per token: sustained requests per second and burst (0 disables)
    rate_limit: float = 2000.0
    rate_burst: float = 4000.0
    #: extra Host header values accepted besides loopback names and the bind host
    allowed_hosts: tuple[str, ...] = ()
    public_metrics: bool = False

    # the scheduler: "learned" (the model's choice) or "fifo" (phase 1's priority-then-age)
    scheduler: str = "learned"
    #: a JSON prior of true mean durations, {"sessions": {id: {capability: seconds}}}:
    #: the learned policy given the truth (the benchmark's oracle)
    scheduler_prior: str = ""

    # the coordination loop
    reap_batch: int = 500

    # autoscaling (docs/scaling.md): pools from a TOML file; a pool's own keys win over these
    pools: Path | None = None
    scale_interval: float = 5.0
    scale_up_window: float = 0.0
    scale_down_window: float = 60.0
    #: what a stopping server does with the workers it started: "drain" or "leave"
    on_exit: str = "drain"
    #: how long a stopping server waits for its drained workers to finish
    on_exit_timeout: float = 60.0
    replica_id: str = field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}")

    def lease_ttl(self, heartbeat_interval: float) -> float:
        return lifecycle.lease_ttl(heartbeat_interval, self.lease_factor)

    def validate(self) -> Settings:
        """Refuse settings that cannot work; returns self for chaining."""
        positive = (
            "heartbeat_interval", "task_claim_timeout", "idle_threshold", "lease_factor",
            "max_body_bytes", "max_input_bytes", "max_json_depth", "max_batch", "reap_batch",
            "scale_interval", "collaboration_threshold", "max_split_depth", "max_context_bytes",
            "preempt_grace", "idempotency_ttl", "max_preemptions",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise InvalidInput(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.scheduler not in SCHEDULERS:
            raise InvalidInput(f"scheduler must be one of {sorted(SCHEDULERS)}, "
                               f"got {self.scheduler!r}")
        if self.on_exit not in ("drain", "leave"):
            raise InvalidInput(f"on_exit must be 'drain' or 'leave', got {self.on_exit!r}")
        for name in ("scale_up_window", "scale_down_window", "on_exit_timeout"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 1 <= self.max_concurrent_tasks <= 1000:
            raise InvalidInput("max_concurrent_tasks must be within 1..1000")
        if not 1 <= self.default_max_attempts <= 100:
            raise InvalidInput("default_max_attempts must be within 1..100")
        if not 0 <= self.max_wait <= MAX_WAIT:
            raise InvalidInput(f"max_wait must be within 0..{MAX_WAIT:g} seconds")
        if not 0 < self.port < 65536:
            raise InvalidInput(f"port must be within 1..65535, got {self.port}")
        scheme, sep, rest = self.store.partition("://")
        sqlite_ok = self.store == "sqlite" or rest.startswith("/")
        if (scheme not in STORES or not (sep or self.store == "sqlite")
                or (scheme == "sqlite" and not sqlite_ok)):
            raise InvalidInput(f"store must be 'sqlite', 'sqlite:///FILE' or one of "
                               f"{', '.join(s + '://...' for s in STORES if s != 'sqlite')}, "
                               f"got {self.store!r}")
        return self

    @property
    def backend(self) -> Backend:
        """The backend the store URL names (by its scheme)."""
        return STORES[self.store.partition("://")[0]]

    @property
    def store_kind(self) -> str:
        return self.backend.kind

    @property
    def sqlite_path(self) -> Path:
        if self.store.startswith("sqlite:///"):
            return Path(self.store.removeprefix("sqlite:///"))
        return self.data_dir / "swarm.db"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then `SWARM_*` variables, then explicit overrides (CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"SWARM_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, str(f.type), raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validate()


def _parse(name: str, type_name: str, raw: str) -> Any:
    try:
        if type_name == "bool":
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes", "on"}
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name in ("Path", "Path | None"):
            return Path(raw)
        if type_name.startswith("tuple"):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
    except ValueError as exc:
        raise InvalidInput(f"SWARM_{name.upper()}={raw!r} is not a valid {type_name}") from exc
    return raw
