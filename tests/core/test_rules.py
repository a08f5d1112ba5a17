"""The pure rules: no store, no clock, no I/O."""

from __future__ import annotations

import pytest

from unified_swarm.config import Settings
from unified_swarm.core import rules
from unified_swarm.core.rules import TaskSpec
from unified_swarm.errors import (
    AlreadyExists,
    DependencyCycle,
    InvalidInput,
    UnknownCapability,
    UnknownDependency,
)
from unified_swarm.models import Task, TaskStatus

S = TaskStatus
SETTINGS = Settings()


def plan(specs: list[TaskSpec], stored: dict[str, TaskStatus] | None = None) -> list[Task]:
    known = stored or {}
    return rules.plan_batch(specs, lambda ids: {i: known[i] for i in ids if i in known},
                            100.0, SETTINGS)


@pytest.mark.parametrize(("kw", "deps_met", "expected"), [
    ({}, True, 6),
    ({}, False, 5),
    ({"critical": True}, True, 9),
    ({"critical": True, "infinite_scale": True, "roi": "high"}, True, 10),  # capped
    ({"roi": "HIGH"}, False, 6),
    ({"roi": "low", "infinite_scale": True}, False, 7),
])
def test_seed_priority_rule(kw: dict[str, object], deps_met: bool, expected: int) -> None:
    assert rules.compute_priority(TaskSpec(type="build", **kw), deps_met) == expected  # type: ignore[arg-type]


def test_transitions_are_exactly_the_design() -> None:
    allowed = {(a.value, b.value) for a, b in rules.TRANSITIONS}
    assert ("completed", "ready") not in allowed
    assert ("pending", "in_progress") not in allowed
    assert ("blocked", "ready") not in allowed
    for final in ("completed", "failed", "cancelled", "blocked"):
        assert not any(a == final for a, _ in allowed)
    with pytest.raises(rules.IllegalTransition):
        rules.check_transition(S.COMPLETED, S.READY)


def test_status_from_deps() -> None:
    assert rules.status_from_deps([]) == S.READY
    assert rules.status_from_deps([S.COMPLETED, S.COMPLETED]) == S.READY
    assert rules.status_from_deps([S.COMPLETED, S.IN_PROGRESS]) == S.PENDING
    assert rules.status_from_deps([S.PENDING, S.CANCELLED]) == S.BLOCKED
    assert rules.status_from_deps([S.BLOCKED]) == S.BLOCKED


def test_plan_orders_by_dependency_and_keeps_client_order() -> None:
    tasks = plan([TaskSpec("build", id="c", dependencies=["b"]), TaskSpec("build", id="a"),
                  TaskSpec("build", id="b", dependencies=["a"]), TaskSpec("build", id="d")])
    assert [t.id for t in tasks] == ["a", "b", "c", "d"]
    assert [t.status for t in tasks] == [S.READY, S.PENDING, S.PENDING, S.READY]


def test_plan_uses_stored_statuses() -> None:
    tasks = plan([TaskSpec("build", id="x", dependencies=["done"]),
                  TaskSpec("build", id="y", dependencies=["dead"])],
                 {"done": S.COMPLETED, "dead": S.FAILED})
    assert [(t.id, t.status) for t in tasks] == [("x", S.READY), ("y", S.BLOCKED)]


@pytest.mark.parametrize(("specs", "stored", "err"), [
    ([TaskSpec("build", id="a", dependencies=["a"])], {}, DependencyCycle),
    ([TaskSpec("build", id="a", dependencies=["c"]), TaskSpec("build", id="b",
      dependencies=["a"]), TaskSpec("build", id="c", dependencies=["b"])], {}, DependencyCycle),
    ([TaskSpec("build", id="a", dependencies=["nope"])], {}, UnknownDependency),
    ([TaskSpec("build", id="a")], {"a": S.READY}, AlreadyExists),
    ([TaskSpec("build", id="a"), TaskSpec("build", id="a")], {}, AlreadyExists),
    ([TaskSpec("build", id="bad id!")], {}, InvalidInput),
    ([TaskSpec("build", priority=0)], {}, InvalidInput),
    ([TaskSpec("build", max_attempts=0)], {}, InvalidInput),
    ([TaskSpec("", id="x")], {}, InvalidInput),
])
def test_plan_refuses(specs: list[TaskSpec], stored: dict[str, TaskStatus],
                      err: type[Exception]) -> None:
    with pytest.raises(err):
        plan(specs, stored)


def test_strict_catalogue() -> None:
    strict = Settings(strict_capabilities=True)
    rules.validate_spec(TaskSpec("research"), strict)
    with pytest.raises(UnknownCapability):
        rules.validate_spec(TaskSpec("juggling"), strict)
    rules.validate_spec(TaskSpec("juggling"), SETTINGS)


def test_generated_ids_and_defaults() -> None:
    (t,) = plan([TaskSpec("research", title="Find prior art")])
    assert t.id.startswith("task-") and t.required_capability == "research"
    assert t.max_attempts == SETTINGS.default_max_attempts and t.title == "Find prior art"


def test_on_ready_bumps_only_computed_priority() -> None:
    computed, given = plan([TaskSpec("build", id="p"), TaskSpec("build", id="g", priority=3)],
                           {})[0:2]
    for t in (computed, given):
        t.status = S.PENDING
        t.priority = 5 if t is computed else 3
        rules.on_ready(t)
    assert computed.priority == 6 and given.priority == 3


def test_after_release_and_lease_math() -> None:
    (t,) = plan([TaskSpec("build", id="a", max_attempts=2)])
    t.attempts = 1
    assert rules.after_release(t, retry=True) == S.READY
    assert rules.after_release(t, retry=False) == S.FAILED
    t.attempts = 2
    assert rules.after_release(t, retry=True) == S.FAILED
    assert rules.lease_deadline(100.0, 10.0, SETTINGS) == 130.0


def test_score_moves_toward_outcomes() -> None:
    s = 0.5
    for _ in range(20):
        s = rules.updated_score(s, True)
    assert s > 0.95
    assert rules.updated_score(s, False) < s


def test_settings_from_env() -> None:
    s = Settings.from_env({"SWARM_HEARTBEAT_INTERVAL": "5", "SWARM_STRICT_CAPABILITIES": "yes",
                           "SWARM_ALLOWED_HOSTS": "a.example, b.example"}, port=9000)
    assert s.heartbeat_interval == 5.0 and s.strict_capabilities and s.port == 9000
    assert s.allowed_hosts == ("a.example", "b.example")
    with pytest.raises(InvalidInput):
        Settings.from_env({"SWARM_HEARTBEAT_INTERVAL": "soon"})
    with pytest.raises(InvalidInput):
        Settings.from_env({"SWARM_TASK_CLAIM_TIMEOUT": "-1"})
    with pytest.raises(InvalidInput):
        Settings.from_env({"SWARM_STORE": "postgres://x"})
