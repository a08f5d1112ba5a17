"""Planning a batch: ids, field checks, the dependency graph, first statuses. Pure: no
store, no clock, no I/O."""

from __future__ import annotations

import pytest

from unified_swarm.config import Settings
from unified_swarm.core import planning
from unified_swarm.errors import (
    AlreadyExists,
    DependencyCycle,
    InvalidInput,
    UnknownCapability,
    UnknownDependency,
)
from unified_swarm.models import Task, TaskSpec, TaskStatus

S = TaskStatus
SETTINGS = Settings()


def plan(specs: list[TaskSpec], stored: dict[str, TaskStatus] | None = None) -> list[Task]:
    return planning.plan_batch(specs, stored or {}, 100.0, SETTINGS)


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
    planning.validate_spec(TaskSpec("research"), strict)
    with pytest.raises(UnknownCapability):
        planning.validate_spec(TaskSpec("juggling"), strict)
    planning.validate_spec(TaskSpec("juggling"), SETTINGS)


def test_generated_ids_and_defaults() -> None:
    (t,) = plan([TaskSpec("research", title="Find prior art")])
    assert t.id.startswith("task-") and t.required_capability == "research"
    assert t.max_attempts == SETTINGS.default_max_attempts and t.title == "Find prior art"


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
