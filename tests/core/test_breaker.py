"""The circuit breaker with an injected clock: closed, open, half-open, closed again."""

from __future__ import annotations

from unified_swarm.core import breaker
from unified_swarm.core.breaker import BreakerParams
from unified_swarm.models import Quarantine

P = BreakerParams(threshold=3, base=60.0, cap=300.0, max_fraction=0.25)


def fail(streak: int, current: Quarantine | None, now: float, ejected: int = 0,
         population: int = 8) -> Quarantine | None:
    return breaker.after_failure("s1", "build", streak, current, now, ejected, population, P)


def test_trips_after_threshold_failures_in_a_row() -> None:
    assert fail(2, None, 0.0) is None
    q = fail(3, None, 10.0)
    assert q == Quarantine("s1", "build", 70.0, 1)
    assert not breaker.may_take(q, 20.0, running=0)


def test_half_open_admits_one_probe_and_a_success_closes() -> None:
    q = Quarantine("s1", "build", 70.0, 1)
    assert breaker.may_take(q, 70.0, running=0)
    assert not breaker.may_take(q, 70.0, running=1)  # one probe at a time
    assert breaker.after_success(q, 75.0)
    assert not breaker.after_success(q, 65.0)  # work from before the ejection: still out


def test_a_failed_probe_doubles_the_period_up_to_the_cap() -> None:
    q = Quarantine("s1", "build", 70.0, 1)
    periods = []
    now = 70.0
    for _ in range(5):
        nxt = fail(1, q, now)
        assert nxt is not None
        periods.append(nxt.until - now)
        now, q = nxt.until, nxt
    assert periods == [120.0, 240.0, 300.0, 300.0, 300.0]


def test_failures_while_open_change_nothing() -> None:
    q = Quarantine("s1", "build", 70.0, 1)
    assert fail(9, q, 30.0) is None


def test_at_most_a_quarter_are_out_at_once_but_always_one() -> None:
    assert fail(3, None, 0.0, ejected=1, population=8) is not None
    assert fail(3, None, 0.0, ejected=2, population=8) is None
    assert fail(3, None, 0.0, ejected=0, population=2) is not None
    assert fail(3, None, 0.0, ejected=1, population=2) is None
