"""The task lifecycle: the state machine's table and the rules that run inside a store's
atomic step. No store, no clock, no I/O."""

from __future__ import annotations

import pytest

from unified_swarm import lifecycle
from unified_swarm.config import Settings
from unified_swarm.core.planning import plan_batch
from unified_swarm.errors import IllegalTransition
from unified_swarm.models import Task, TaskSpec, TaskStatus

S = TaskStatus
SETTINGS = Settings()


def plan(specs: list[TaskSpec], stored: dict[str, TaskStatus] | None = None) -> list[Task]:
    return plan_batch(specs, stored or {}, 100.0, SETTINGS)


@pytest.mark.parametrize(("kw", "deps_met", "expected"), [
    ({}, True, 6),
    ({}, False, 5),
    ({"critical": True}, True, 9),
    ({"critical": True, "infinite_scale": True, "roi": "high"}, True, 10),  # capped
    ({"roi": "HIGH"}, False, 6),
    ({"roi": "low", "infinite_scale": True}, False, 7),
])
def test_seed_priority_rule(kw: dict[str, object], deps_met: bool, expected: int) -> None:
    assert lifecycle.compute_priority(TaskSpec(type="build", **kw), deps_met) == expected  # type: ignore[arg-type]


def test_transitions_are_exactly_the_design() -> None:
    allowed = {(a.value, b.value) for a, b in lifecycle.TRANSITIONS}
    assert ("completed", "ready") not in allowed
    assert ("pending", "in_progress") not in allowed
    assert ("blocked", "ready") not in allowed
    for final in ("completed", "failed", "cancelled", "blocked"):
        assert not any(a == final for a, _ in allowed)
    with pytest.raises(IllegalTransition):
        lifecycle.check_transition(S.COMPLETED, S.READY)


def test_every_status_has_its_place_in_the_table() -> None:
    """A status added to TaskStatus without edges would be final by accident: every status
    that is not final is left somewhere, and every final one is entered from somewhere."""
    entered = {new for _, new in lifecycle.TRANSITIONS}
    left = {old for old, _ in lifecycle.TRANSITIONS}
    for status in S:
        assert status in left or (status in lifecycle.FINAL and status in entered), status
    assert {S.COMPLETED, S.FAILED, S.CANCELLED, S.BLOCKED} == lifecycle.FINAL
    assert left >= lifecycle.HELD and lifecycle.FINAL - {S.COMPLETED} == lifecycle.DEAD
    assert {status for status, _ in lifecycle.RELEASE} == lifecycle.HELD


def test_status_from_deps() -> None:
    assert lifecycle.status_from_deps([]) == S.READY
    assert lifecycle.status_from_deps([S.COMPLETED, S.COMPLETED]) == S.READY
    assert lifecycle.status_from_deps([S.COMPLETED, S.IN_PROGRESS]) == S.PENDING
    assert lifecycle.status_from_deps([S.PENDING, S.CANCELLED]) == S.BLOCKED
    assert lifecycle.status_from_deps([S.BLOCKED]) == S.BLOCKED


def test_on_ready_bumps_only_computed_priority() -> None:
    computed, given = plan([TaskSpec("build", id="p"), TaskSpec("build", id="g", priority=3)],
                           {})[0:2]
    for t in (computed, given):
        t.status = S.PENDING
        t.priority = 5 if t is computed else 3
        lifecycle.on_ready(t)
    assert computed.priority == 6 and given.priority == 3


def test_after_release_and_lease_math() -> None:
    (t,) = plan([TaskSpec("build", id="a", max_attempts=2)])
    t.status, t.attempts = S.IN_PROGRESS, 1
    assert lifecycle.after_release(t, retry=True) == S.READY
    assert lifecycle.after_release(t, retry=False) == S.FAILED
    t.attempts = 2
    assert lifecycle.after_release(t, retry=True) == S.FAILED
    assert lifecycle.lease_deadline(100.0, 10.0, SETTINGS.lease_factor) == 130.0


def test_score_moves_toward_outcomes() -> None:
    s = 0.5
    for _ in range(20):
        s = lifecycle.updated_score(s, True)
    assert s > 0.95
    assert lifecycle.updated_score(s, False) < s


def test_waiting_edges_are_exactly_the_split() -> None:
    """A split parent enters `waiting` from a running attempt only, is never held, and leaves
    it only to end: completed (merged), failed (a subtask failed for good) or cancelled."""
    assert {old for old, new in lifecycle.TRANSITIONS if new == S.WAITING} == {S.IN_PROGRESS}
    assert {new for old, new in lifecycle.TRANSITIONS if old == S.WAITING} == {
        S.COMPLETED, S.FAILED, S.CANCELLED}
    assert S.WAITING not in lifecycle.HELD and S.WAITING not in lifecycle.FINAL
