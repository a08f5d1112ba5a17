"""Pools from a TOML file (`swarm server --pools FILE`, `SWARM_POOLS`), checked before the
server starts: a bad file is one clear error naming the pool and the key, never a server
that half-runs.

    [budget]                      # optional, shared by every pool
    max_sessions = 20
    max_cost_per_hour = 5.0

    [pools.build]
    capabilities = ["build"]
    min = 1
    max = 4
    command = ["swarm", "worker", "-c", "build", "--command", "./build.sh"]
    spawner = "local"             # local (default) | kubernetes | none
    interval = 5                  # seconds between decisions
    scale_up_window = 0
    scale_down_window = 60

The timing keys default to `SWARM_SCALE_INTERVAL`, `SWARM_SCALE_UP_WINDOW` and
`SWARM_SCALE_DOWN_WINDOW` (Settings); a pool's own keys win. docs/scaling.md lists the
rest (the rule's knobs, `env`, `cwd`, the Kubernetes `namespace` and `deployment`).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..core.autoscale import (
    SEED_MAX,
    SEED_MIN,
    SEED_UP_READY,
    TASKS_PER_SESSION,
    Budget,
    Policy,
)
from ..core.limits import NAME_RE
from ..errors import InvalidInput

POOL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}\Z")
SPAWNERS = ("local", "kubernetes", "none")
MAX_POOL_SIZE = 1000
#: keys of [pools.NAME] besides those of Policy
POOL_KEYS = frozenset({
    "capabilities", "min", "max", "command", "spawner", "interval", "scale_up_window",
    "scale_down_window", "up_ready", "tasks_per_session", "down_idle", "drain_time",
    "tolerance", "cost_per_hour", "env", "cwd", "namespace", "deployment",
})
BUDGET_KEYS = frozenset({"max_sessions", "max_cost_per_hour"})


@dataclass(frozen=True, slots=True)
class Pool:
    """One pool: who its sessions are, how many, how they are started."""

    name: str
    policy: Policy
    capabilities: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    spawner: str = "local"
    interval: float = 5.0
    #: what one session costs per hour when the executor records no cost (None: unknown)
    cost_per_hour: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    namespace: str = "default"
    deployment: str | None = None

    def wire(self) -> dict[str, Any]:
        p = self.policy
        return {"name": self.name, "spawner": self.spawner,
                "capabilities": list(self.capabilities), "min": p.min, "max": p.max,
                "interval": self.interval, "scale_up_window": p.up_window,
                "scale_down_window": p.down_window, "up_ready": p.up_ready,
                "tasks_per_session": p.tasks_per_session, "down_idle": p.idle_limit,
                "drain_time": p.drain_s, "tolerance": p.tolerance,
                "cost_per_hour": self.cost_per_hour}


@dataclass(frozen=True, slots=True)
class Pools:
    pools: tuple[Pool, ...] = ()
    budget: Budget = field(default_factory=Budget)
    source: str | None = None

    def __bool__(self) -> bool:
        return bool(self.pools)

    def get(self, name: str) -> Pool | None:
        return next((p for p in self.pools if p.name == name), None)


def load_pools(settings: Settings) -> Pools:
    """The pools `settings.pools` names (none when unset). InvalidInput on a bad file."""
    if settings.pools is None:
        return Pools()
    path = Path(settings.pools)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise InvalidInput(f"cannot read the pools file {str(path)!r}: "
                           f"{exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"the pools file {str(path)!r} is not valid TOML: {exc}") from None
    return parse_pools(data, settings, str(path))


def parse_pools(data: Mapping[str, Any], settings: Settings, source: str = "<pools>") -> Pools:
    unknown = sorted(set(data) - {"pools", "budget"})
    if unknown:
        raise InvalidInput(f"{source}: unknown top-level key(s) {', '.join(unknown)} "
                           "(expected [pools.NAME] tables and an optional [budget])")
    tables = _table(data.get("pools", {}), f"{source}: [pools]")
    if not tables:
        raise InvalidInput(f"{source}: no pools: add at least one [pools.NAME] table")
    pools = tuple(_pool(name, _table(t, f"{source}: [pools.{name}]"), settings,
                        f"{source}: [pools.{name}]") for name, t in tables.items())
    budget = _budget(_table(data.get("budget", {}), f"{source}: [budget]"), f"{source}")
    floor = sum(p.policy.min for p in pools)
    if budget.max_sessions is not None and budget.max_sessions < floor:
        raise InvalidInput(f"{source}: [budget] max_sessions {budget.max_sessions} is below "
                           f"the pools' mins together ({floor})")
    return Pools(pools, budget, source)


def _pool(name: str, t: Mapping[str, Any], settings: Settings, where: str) -> Pool:
    if not POOL_NAME_RE.match(name):
        raise InvalidInput(f"{where}: a pool name is 1..48 letters, digits, '_' or '-', "
                           "starting with a letter or digit")
    unknown = sorted(set(t) - POOL_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)}; known: "
                           f"{', '.join(sorted(POOL_KEYS))}")
    spawner = t.get("spawner", "local")
    if spawner not in SPAWNERS:
        raise InvalidInput(f"{where}: spawner must be one of {', '.join(SPAWNERS)}, "
                           f"got {spawner!r}")
    policy = _policy(t, settings, where)
    command = _strings(t.get("command", []), f"{where} command")
    if spawner == "local" and not command:
        raise InvalidInput(f"{where}: a local pool needs command, the worker's argv as a "
                           'list (e.g. ["swarm", "worker", "-c", "build", "--command", '
                           '"./build.sh"])')
    deployment = t.get("deployment")
    if spawner == "kubernetes" and not (isinstance(deployment, str) and deployment):
        raise InvalidInput(f"{where}: a kubernetes pool needs deployment, the name of the "
                           "Deployment whose scale it sets")
    caps = _strings(t.get("capabilities", []), f"{where} capabilities")
    for cap in caps:
        if not NAME_RE.match(cap):
            raise InvalidInput(f"{where}: capability {cap!r} must match {NAME_RE.pattern}")
    env = _table(t.get("env", {}), f"{where} env")
    if not all(isinstance(v, str) for v in env.values()):
        raise InvalidInput(f"{where}: env values must be strings")
    return Pool(name=name, policy=policy, capabilities=tuple(dict.fromkeys(caps)),
                command=tuple(command), spawner=spawner,
                interval=_number(t, "interval", settings.scale_interval, where, positive=True),
                cost_per_hour=_optional_number(t, "cost_per_hour", where),
                env=dict(env), cwd=_optional_str(t, "cwd", where),
                namespace=_optional_str(t, "namespace", where) or "default",
                deployment=deployment)


def _policy(t: Mapping[str, Any], settings: Settings, where: str) -> Policy:
    lo = _int(t, "min", SEED_MIN, where)
    hi = _int(t, "max", max(SEED_MAX, lo), where)
    if not 0 <= lo <= hi <= MAX_POOL_SIZE:
        raise InvalidInput(f"{where}: need 0 <= min <= max <= {MAX_POOL_SIZE}, got min {lo}, "
                           f"max {hi}")
    down_idle = t.get("down_idle")
    if down_idle is not None:
        down_idle = _int(t, "down_idle", 0, where)
    tolerance = _number(t, "tolerance", 0.1, where)
    if not 0 <= tolerance < 1:
        raise InvalidInput(f"{where}: tolerance must be within 0..1 (a fraction), got "
                           f"{tolerance}")
    return Policy(
        min=lo, max=hi, up_ready=_int(t, "up_ready", SEED_UP_READY, where),
        tasks_per_session=max(1, _int(t, "tasks_per_session", TASKS_PER_SESSION, where)),
        down_idle=down_idle,
        drain_s=_number(t, "drain_time", 300.0, where, positive=True), tolerance=tolerance,
        up_window=_number(t, "scale_up_window", settings.scale_up_window, where),
        down_window=_number(t, "scale_down_window", settings.scale_down_window, where))


def _budget(t: Mapping[str, Any], where: str) -> Budget:
    unknown = sorted(set(t) - BUDGET_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) in [budget]: {', '.join(unknown)}; "
                           f"known: {', '.join(sorted(BUDGET_KEYS))}")
    sessions = t.get("max_sessions")
    if sessions is not None:
        sessions = _int(t, "max_sessions", 0, f"{where} [budget]")
    return Budget(sessions, _optional_number(t, "max_cost_per_hour", f"{where} [budget]"))


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a table")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput(f"{where} must be a list of non-empty strings")
    return value


def _int(t: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{where}: {key} must be a whole number >= 0, got {value!r}")
    return value


def _number(t: Mapping[str, Any], key: str, default: float, where: str, *,
            positive: bool = False) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise InvalidInput(f"{where}: {key} must be a number {bound} (seconds where it is a "
                           f"time), got {value!r}")
    return float(value)


def _optional_number(t: Mapping[str, Any], key: str, where: str) -> float | None:
    return None if t.get(key) is None else _number(t, key, 0.0, where)


def _optional_str(t: Mapping[str, Any], key: str, where: str) -> str | None:
    value = t.get(key)
    if value is not None and not (isinstance(value, str) and value):
        raise InvalidInput(f"{where}: {key} must be a non-empty string")
    return value
