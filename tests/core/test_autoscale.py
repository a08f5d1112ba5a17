"""The scaling decision, table-driven: the seed's rule, work-driven growth, the tolerance,
the rate limit, the stabilisation windows against a flapping queue, pins and budgets."""

from __future__ import annotations

import itertools

import pytest

from unified_swarm.core.autoscale import (
    Budget,
    Cap,
    Claim,
    History,
    Observation,
    Policy,
    allocate,
    capped,
    decide,
    recommend,
)

SEED = Policy()  # min 3, max 5, more than 10 ready, a new session per 5
T0 = 1_800_000_000.0


def obs(ready: int = 0, idle: int = 0, busy: int = 0, starting: int = 0,
        work_s: float | None = None) -> Observation:
    return Observation(ready=ready, idle=idle, busy=busy, starting=starting, work_s=work_s)


@pytest.mark.parametrize(("case", "policy", "seen", "want"), [
    # the seed: spawn when more than 10 ready and none idle ...
    ("11 ready, none idle: one per 5 ready", SEED, obs(ready=11, busy=3), 5),
    ("the seed's own step: one more", Policy(tasks_per_session=10), obs(ready=11, busy=3), 4),
    ("10 ready is not more than 10", SEED, obs(ready=10, busy=3), 3),
    ("11 ready but one idle: hold", SEED, obs(ready=11, idle=1, busy=2), 3),
    ("50 ready: one per 5, up to max", SEED, obs(ready=50, busy=3), 5),
    # ... stop extras when more than 3 idle and nothing ready, keep 3..5
    ("4 idle, nothing ready: extras stop", SEED, obs(idle=4, busy=1), 3),
    ("3 idle is not more than 3", SEED, obs(idle=3, busy=1), 4),
    ("idle but work ready: hold", SEED, obs(ready=2, idle=4, busy=1), 5),
    ("nothing at all: min", SEED, obs(), 3),
    ("more than max, all busy: max (drained as they finish)", SEED, obs(busy=7), 5),
    # the work that exists, not the count alone
    ("3 tasks of an hour: one session each", SEED, obs(ready=3, busy=3, work_s=3 * 3600.0),
     5),
    ("3 tasks of an hour, max 10", Policy(max=10), obs(ready=3, busy=3, work_s=10800.0), 6),
    ("3 short tasks: not worth a session", SEED, obs(ready=3, busy=3, work_s=200.0), 3),
    ("40 tasks of 1 s: the count still grows it", Policy(min=1, max=4),
     obs(ready=40, busy=1, work_s=40.0), 4),
    ("sessions starting count as new ones", Policy(min=1, max=10),
     obs(ready=15, busy=1, starting=3), 4),
    ("down_idle defaults to min", Policy(min=1, max=4), obs(idle=2, busy=1), 1),
    ("down_idle given", Policy(min=1, max=4, down_idle=3), obs(idle=3, busy=1), 4),
    # rate: max(4, current) more in one decision
    ("rate limit from 1", Policy(min=1, max=50), obs(ready=200, busy=1), 5),
    ("rate limit from 10", Policy(min=1, max=50), obs(ready=500, busy=10), 20),
    # tolerance: 21 is within 10% of 20
    ("tolerance", Policy(min=1, max=100), obs(ready=11, busy=20), 20),
    ("past tolerance", Policy(min=1, max=100), obs(ready=40, busy=20), 28),
])
def test_decision_table(case: str, policy: Policy, seen: Observation, want: int) -> None:
    d = decide("p", policy, seen, History(), T0)
    assert d.desired == want, (case, d)
    assert d.current == seen.current
    assert policy.min <= d.desired <= policy.max


def test_reasons_name_the_inputs() -> None:
    _, why = recommend(SEED, obs(ready=11, busy=3))
    assert "11 ready" in why and "none idle" in why
    _, why = recommend(SEED, obs(idle=4, busy=1))
    assert "nothing ready" in why and "4 idle" in why
    d = decide("p", SEED, obs(ready=50, busy=3), History(), T0)
    assert any("max 5" in n for n in d.limited_by)
    wire = d.wire()
    assert wire["observed"] == {"ready": 50, "idle": 0, "busy": 3, "starting": 0,
                                "work_s": None, "cost_per_hour": None}


def run(policy: Policy, inputs: list[tuple[int, int]], every: float = 5.0) -> list[int]:
    """Feed (ready, idle) pairs every `every` s to a pool that always becomes what it was
    told (the busy sessions are the rest); returns the size after each decision."""
    history, size, sizes = History(), policy.min, []
    for i, (ready, idle) in enumerate(inputs):
        idle = min(idle, size)
        d = decide("p", policy, obs(ready=ready, idle=idle, busy=size - idle), history,
                   T0 + i * every)
        size = d.desired
        sizes.append(size)
    return sizes


def test_a_flapping_queue_does_not_flap_the_pool() -> None:
    """The queue alternates between a burst and empty with everyone idle, every 5 s for
    5 minutes: the pool grows once and stays (the 60 s down window always holds a recent
    recommendation to keep it)."""
    policy = Policy(min=1, max=4)
    sizes = run(policy, [(50, 0), (0, 10)] * 30)
    assert sizes[0] == 4
    assert sizes == [4] * len(sizes)


def test_shrinks_once_the_down_window_is_quiet() -> None:
    policy = Policy(min=1, max=4, down_window=60)
    sizes = run(policy, [(50, 0)] + [(0, 10)] * 20)
    # decisions at 5 s steps: the burst's recommendation leaves the window after 60 s
    assert sizes[:12] == [4] * 12
    assert sizes[13:] == [1] * (len(sizes) - 13)
    changes = sum(1 for a, b in itertools.pairwise(sizes) if a != b)
    assert changes == 1


def test_up_window_needs_agreement() -> None:
    policy = Policy(min=1, max=4, up_window=10)
    sizes = run(policy, [(0, 1), (50, 0), (50, 0), (50, 0)])
    # t=5 s and t=10 s still see t=0's "hold at 1"; at t=15 s only bursts remain
    assert sizes == [1, 1, 1, 4]


def test_noisy_counts_inside_the_tolerance_hold() -> None:
    policy = Policy(min=1, max=200, up_ready=0, tasks_per_session=1)
    history = History()
    sizes = []
    size = 100
    for i, ready in enumerate([5, 9, 3, 8, 10, 2] * 5):
        d = decide("p", policy, obs(ready=ready, busy=size), history, T0 + i * 5)
        size = d.desired
        sizes.append(size)
    assert sizes == [100] * len(sizes)


def test_pin_replaces_the_rule_within_bounds() -> None:
    policy = Policy(min=1, max=4)
    d = decide("p", policy, obs(ready=50, busy=1), History(), T0, pinned=2)
    assert d.desired == 2 and "pinned" in d.reason and d.recommended == 11
    d = decide("p", policy, obs(), History(), T0, pinned=9)
    assert d.desired == 4


@pytest.mark.parametrize(("budget", "claims", "want"), [
    (Budget(), [Claim("a", 1, 4)], {"a": None}),
    (Budget(max_sessions=5), [Claim("a", 1, 4), Claim("b", 1, 4)], {"a": 4, "b": 1}),
    # mins first, then extras in order
    (Budget(max_sessions=5), [Claim("a", 1, 4), Claim("b", 2, 4)], {"a": 3, "b": 2}),
    # the budget wins over min
    (Budget(max_sessions=1), [Claim("a", 1, 4), Claim("b", 1, 4)], {"a": 1, "b": 0}),
    # cost: 10 an hour at 3 an hour a session buys 3
    (Budget(max_cost_per_hour=10), [Claim("a", 1, 4, 3.0)], {"a": 3}),
    (Budget(max_cost_per_hour=10), [Claim("a", 1, 4, 3.0), Claim("b", 1, 4, 1.0)],
     {"a": 3, "b": 1}),
    # an unknown cost is held only to max_sessions
    (Budget(max_sessions=6, max_cost_per_hour=1), [Claim("a", 1, 4, None)], {"a": 4}),
    (Budget(max_sessions=2, max_cost_per_hour=1), [Claim("a", 1, 4, None)], {"a": 2}),
])
def test_budget_allocation(budget: Budget, claims: list[Claim],
                           want: dict[str, int | None]) -> None:
    caps = allocate(budget, claims)
    assert {k: v.sessions for k, v in caps.items()} == want


def test_the_budget_caps_a_decision() -> None:
    d = decide("p", Policy(min=3, max=5), obs(ready=50, busy=3), History(), T0)
    assert d.desired == 5
    cut = capped(d, Cap(2, "max_sessions 2 across pools"))
    assert cut.desired == 2 and cut.limited_by[-1] == "budget: max_sessions 2 across pools"
    assert capped(d, Cap()) is d
    assert capped(d, Cap(9, "x")) is d


GRID = [(ready, idle, busy, starting, work)
        for ready in (0, 1, 5, 10, 11, 19, 20, 49, 50, 200)
        for idle in range(0, 5) for busy in range(0, 9) for starting in range(0, 3)
        for work in (None, 10.0, 10_000.0)]


def test_properties_over_a_grid() -> None:
    """Every combination of a grid (no sampling: the same cases every run): within
    [min, max]; never grows with an idle session or nothing ready; never shrinks while work
    is ready; more ready work never asks for fewer sessions."""
    policy = Policy(min=1, max=12)
    for ready, idle, busy, starting, work in GRID:
        seen = obs(ready=ready, idle=idle, busy=busy, starting=starting, work_s=work)
        d = decide("p", policy, seen, History(), T0)
        assert policy.min <= d.desired <= policy.max, (seen, d)
        current = seen.current
        if d.desired > max(current, policy.min):
            assert ready and not idle, (seen, d)
        if d.desired < min(current, policy.max):
            assert not ready, (seen, d)
        more = obs(ready=ready + 5, idle=idle, busy=busy, starting=starting,
                   work_s=None if work is None else work * (ready + 5) / max(ready, 1))
        assert recommend(policy, more)[0] >= recommend(policy, seen)[0], (seen, more)
