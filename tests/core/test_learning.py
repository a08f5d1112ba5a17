"""The learned model: the stored update rule, shrinkage, the speed effect, Beta success,
detection with hysteresis. Pure and table-driven."""

from __future__ import annotations

import math
import random

import pytest

from unified_swarm import stats
from unified_swarm.core.learning import Model, Params
from unified_swarm.stats import ANY, ON_FAILURE, ON_SUCCESS, PairStats


def observed(durations: list[float], failures: int = 0) -> PairStats:
    st = PairStats()
    for d in durations:
        st = stats.apply(st, ON_SUCCESS, d)
    for _ in range(failures):
        st = stats.apply(st, ON_FAILURE, 1.0)
    return st


def test_one_success_moves_every_field_by_the_rule() -> None:
    st = stats.apply(PairStats(), ON_SUCCESS, 10.0)
    assert (st.attempts, st.successes, st.failures, st.streak) == (1, 1, 0, 0)
    assert st.w_duration == st.w_success == 1.0
    assert st.sum_log == pytest.approx(math.log(10.0))
    assert st.sum_log2 == pytest.approx(math.log(10.0) ** 2)


def test_a_failure_counts_its_streak_and_a_success_ends_it() -> None:
    st = observed([], failures=3)
    assert (st.attempts, st.failures, st.streak, st.w_duration) == (3, 3, 3, 0.0)
    st = stats.apply(st, ON_SUCCESS, 2.0)
    assert (st.streak, st.attempts, st.successes) == (0, 4, 1)


def test_old_observations_decay() -> None:
    st = observed([1.0] * 500)
    assert st.w_duration == pytest.approx(1 / (1 - stats.DECAY), rel=1e-3)
    assert st.attempts == 500  # raw counts do not decay
    # a session that became 10x slower is relearned: the recent half dominates
    slow = observed([1.0] * 200 + [10.0] * 100)
    assert math.exp(slow.sum_log / slow.w_duration) > 5.0


def test_stats_survive_a_round_trip_through_a_mapping() -> None:
    st = observed([3.0, 4.0], failures=1)
    assert PairStats.from_mapping({k: str(v) for k, v in st.wire().items()}) == st


def test_lua_table_states_the_same_rule() -> None:
    text = stats.lua_table(ON_SUCCESS)
    assert "{'sum_log', 0.98, 'x'}" in text and "{'streak', 0.0, 0.0}" in text


def test_unknown_everything_predicts_the_default() -> None:
    m = Model()
    assert m.duration("s", "build").median == pytest.approx(60.0)
    assert m.duration("s", "build", default_log=math.log(5)).median == pytest.approx(5.0)


def test_one_observation_is_shrunk_toward_the_pool() -> None:
    m = Model()
    for s in ("a", "b", "c"):
        m.set(s, "build", observed([10.0] * 20))
    m.set("new", "build", observed([2.5]))
    est = m.duration("new", "build").median
    assert 2.5 < est < 10.0  # moved toward what it showed, not all the way on one sample


@pytest.mark.parametrize("n", [5, 20, 60])
def test_many_observations_converge_to_the_truth(n: int) -> None:
    rng = random.Random(n)
    m = Model()
    m.set("pool", "build", observed([10.0] * 50))
    m.set("fast", "build", observed([2.5 * math.exp(rng.gauss(0, 0.2)) for _ in range(n)]))
    est = m.duration("fast", "build").median
    assert abs(math.log(est / 2.5)) < 1.5 / math.sqrt(n) + 0.25


def test_the_speed_effect_informs_types_the_session_never_did() -> None:
    m = Model()
    for s in ("a", "b"):
        m.set(s, "build", observed([10.0] * 20))
        m.set(s, "research", observed([40.0] * 20))
    m.set("fast", "build", observed([2.5] * 10))  # 4x faster at build...
    never = m.duration("fast", "research").median  # ...so expected faster at research too
    assert never < 40.0 * 0.6
    assert m.speed("fast", "build") > 2.0
    assert m.speed("a", "build") == pytest.approx(1.0, rel=0.35)


def test_setting_a_pair_again_replaces_it_in_the_pools() -> None:
    once, twice = Model(), Model()
    twice.set("s", "build", observed([100.0] * 5))
    for model in (once, twice):
        model.set("s", "build", observed([4.0] * 5))
        model.set("t", "build", observed([8.0] * 5))
    assert twice.pool_mean("build") == pytest.approx(once.pool_mean("build"))
    assert twice.sigma2("build") == pytest.approx(once.sigma2("build"))
    twice.forget("t")
    assert twice.pool_mean("build") == pytest.approx(math.log(4.0))


def test_session_totals_feed_no_pool() -> None:
    m = Model()
    m.set("s", "build", observed([4.0] * 5))
    m.set("s", ANY, observed([400.0] * 5))
    assert m.pool_mean("build") == pytest.approx(math.log(4.0))
    assert ANY not in m.wire_stats("s")


def test_success_is_shrunk_toward_the_capability() -> None:
    m = Model()
    m.set("good", "build", observed([1.0] * 30))
    m.set("flaky", "build", observed([1.0] * 2, failures=6))
    assert m.success("good", "build").mean > 0.95
    assert m.success("flaky", "build").mean < 0.45
    assert 0.5 < m.success("unseen", "build").mean < 1.0  # the pool's rate, not 0 or 0.5


def test_samples_spread_with_uncertainty() -> None:
    m = Model()
    m.set("known", "build", observed([10.0] * 50))
    rng = random.Random(1)
    known = [m.duration("known", "build").sample(rng) for _ in range(200)]
    unknown = [m.duration("other", "build").sample(rng) for _ in range(200)]
    spread = [max(math.log(x) for x in xs) - min(math.log(x) for x in xs)
              for xs in (known, unknown)]
    assert spread[0] < spread[1]


@pytest.mark.parametrize(("history", "before", "after"), [
    ((10, 0), False, True),     # plenty of successes: granted
    ((3, 0), False, False),     # too few samples
    ((7, 3), False, False),     # 0.7 is below the grant...
    ((7, 3), True, True),       # ...but above the revoke: kept (hysteresis)
    ((3, 7), True, False),      # revoked
])
def test_detection_has_hysteresis(history: tuple[int, int], before: bool, after: bool) -> None:
    m = Model(Params(pair_success_weight=0.0))
    m.set("s", "build", observed([1.0] * history[0], failures=history[1]))
    current = frozenset({"build"}) if before else frozenset()
    assert ("build" in m.detected("s", current)) is after


def test_remembered_durations_follow_every_change() -> None:
    """Model.duration remembers its estimates until the model changes: after any set or
    forget, every session's estimate equals a fresh model's given the same pairs."""
    rng = random.Random(7)
    model, pairs = Model(), dict[tuple[str, str], PairStats]()
    for step in range(200):
        sid, cap = f"s{rng.randrange(4)}", f"c{rng.randrange(3)}"
        if step % 17 == 16:
            model.forget(sid)
            pairs = {k: v for k, v in pairs.items() if k[0] != sid}
        else:
            st = observed([rng.lognormvariate(0, 1) for _ in range(rng.randrange(1, 4))])
            model.set(sid, cap, st)
            pairs[(sid, cap)] = st
        fresh = Model()
        for (s, c), st in pairs.items():
            fresh.set(s, c, st)
        for s in ("s0", "s1", "s2", "s3"):
            for c in ("c0", "c1", "c2"):
                for default in (None, 1.5):
                    model.duration(s, c, default)  # remembered, then compared below
                    assert model.duration(s, c, default).mean_log == pytest.approx(
                        fresh.duration(s, c, default).mean_log)
