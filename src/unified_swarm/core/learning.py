"""What the swarm has learned about who is fast and reliable at what. Pure: no I/O, no clock.

The stores keep decayed sufficient statistics per (session, capability) (`stats.PairStats`,
moved inside the atomic step that records each outcome). `Model` turns them into estimates:

- **Duration** is log-normal. A pair's mean log-duration is shrunk toward a prior made of
  the capability's pooled mean plus the session's *speed effect* (how much faster or slower
  than the pool the session was on everything it did). One observation on any type therefore
  moves the session's estimate on every type: the two-way model of research/scheduling.md
  §2.1, which held where rare task types starve a per-pair model.
- **Success** is Beta, shrunk toward the capability's pooled success rate.
- **Detection**: a capability is detected when the success estimate is high on enough
  (decayed) samples, and kept until it falls well below (hysteresis), so it never flaps.

Pools are kept incrementally (`set` subtracts the old row and adds the new one), so an
estimate costs a few dictionary reads whatever the size of the swarm.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ..stats import ANY, PairStats


@dataclass(frozen=True, slots=True)
class Params:
    #: pseudo-observations behind a pair's prior (the pool mean plus the session effect)
    prior_weight: float = 2.0
    #: pseudo-observations pulling a session's speed effect toward zero
    speed_weight: float = 3.0
    #: prior variance of log-duration within a pair (a coefficient of variation near 50%)
    sigma2_prior: float = 0.25
    sigma2_weight: float = 2.0
    sigma2_floor: float = 1e-4
    #: the log-duration assumed where nothing at all was measured (60 s)
    default_log: float = math.log(60.0)
    #: Beta pseudo-counts behind the pooled success rate, and behind a pair's prior
    pool_success_prior: tuple[float, float] = (4.0, 1.0)
    pair_success_weight: float = 2.0
    #: detection: grant above `grant` with at least `min_samples`; revoke below `revoke`
    grant: float = 0.8
    revoke: float = 0.6
    min_samples: float = 5.0


@dataclass(slots=True)
class _Pool:
    """Sums over every pair of one capability: timed weight, Σlog, within-pair residual."""

    w: float = 0.0
    s1: float = 0.0
    resid: float = 0.0
    ws: float = 0.0
    wf: float = 0.0

    def add(self, st: PairStats, sign: float) -> None:
        self.w += sign * st.w_duration
        self.s1 += sign * st.sum_log
        self.resid += sign * _residual(st)
        self.ws += sign * st.w_success
        self.wf += sign * st.w_failure

    @property
    def mean(self) -> float | None:
        return self.s1 / self.w if self.w > 1e-9 else None


def _residual(st: PairStats) -> float:
    """Σ w (x - mean)² of one pair, from its sums (never negative, despite rounding)."""
    if st.w_duration <= 1e-9:
        return 0.0
    return max(st.sum_log2 - st.sum_log * st.sum_log / st.w_duration, 0.0)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A log-normal duration estimate: the posterior of the mean log-duration, and the
    spread of one attempt around it."""

    mean_log: float
    mean_var: float
    sigma2: float
    weight: float

    @property
    def expected(self) -> float:
        """E[duration] of one attempt, in seconds."""
        return math.exp(self.mean_log + self.sigma2 / 2)

    @property
    def median(self) -> float:
        return math.exp(self.mean_log)

    def sample(self, rng: random.Random) -> float:
        """One Thompson draw of E[duration]: uncertain pairs spread widely, known ones
        barely move."""
        return math.exp(rng.gauss(self.mean_log, math.sqrt(self.mean_var)) + self.sigma2 / 2)


@dataclass(frozen=True, slots=True)
class Success:
    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def sample(self, rng: random.Random) -> float:
        return rng.betavariate(self.alpha, self.beta)


#: durations remembered between two changes of the model at most
MAX_REMEMBERED = 10_000


@dataclass(slots=True)
class Model:
    """Every pair's statistics, and the pools they feed. Replace a pair with `set`."""

    params: Params = field(default_factory=Params)
    _pairs: dict[str, dict[str, PairStats]] = field(default_factory=dict)
    _pools: dict[str, _Pool] = field(default_factory=dict)
    _all: _Pool = field(default_factory=_Pool)
    #: durations asked since the last change: one scheduling decision asks for the same
    #: few many times (every running task of every session it weighs), and a batch of
    #: decisions between two outcomes asks for them again
    _durations: dict[tuple[str, str, float | None], Estimate] = field(default_factory=dict)

    def set(self, session_id: str, capability: str, st: PairStats) -> None:
        self._durations.clear()  # a pair feeds its pool, and the pool every session's prior
        pairs = self._pairs.setdefault(session_id, {})
        old = pairs.get(capability)
        pairs[capability] = st
        if capability == ANY:
            return  # the session's totals feed no pool: they would count every outcome twice
        pool = self._pools.setdefault(capability, _Pool())
        if old is not None:
            pool.add(old, -1.0)
            self._all.add(old, -1.0)
        pool.add(st, 1.0)
        self._all.add(st, 1.0)

    def forget(self, session_id: str) -> None:
        self._durations.clear()
        for cap, st in self._pairs.pop(session_id, {}).items():
            if cap != ANY:
                self._pools[cap].add(st, -1.0)
                self._all.add(st, -1.0)

    def pairs(self, session_id: str) -> dict[str, PairStats]:
        return self._pairs.get(session_id, {})

    def pair(self, session_id: str, capability: str) -> PairStats:
        return self._pairs.get(session_id, {}).get(capability) or PairStats()

    def sessions(self) -> list[str]:
        return list(self._pairs)

    # -- durations ------------------------------------------------------------------------

    def pool_mean(self, capability: str, default_log: float | None = None) -> float:
        """The capability's pooled mean log-duration; else every capability's; else the
        default (the task's own estimate, when it gives one)."""
        pool = self._pools.get(capability)
        mean = pool.mean if pool is not None else None
        if mean is None:
            mean = self._all.mean
        if mean is None:
            mean = self.params.default_log if default_log is None else default_log
        return mean

    def sigma2(self, capability: str) -> float:
        """Within-pair variance of log-duration for the capability (pooled, with a prior)."""
        p = self.params
        pool = self._pools.get(capability) or _Pool()
        value = (pool.resid + p.sigma2_weight * p.sigma2_prior) / (pool.w + p.sigma2_weight)
        return max(value, p.sigma2_floor)

    def speed_effect(self, session_id: str) -> float:
        """How much slower (positive) or faster (negative) than the pools this session was,
        in log-duration, over every capability it did, shrunk toward 0."""
        num = den = 0.0
        for cap, st in self.pairs(session_id).items():
            if cap == ANY or st.w_duration <= 1e-9:
                continue
            pool_mean = self.pool_mean(cap)
            num += st.sum_log - st.w_duration * pool_mean
            den += st.w_duration
        return num / (den + self.params.speed_weight)

    def duration(self, session_id: str, capability: str,
                 default_log: float | None = None) -> Estimate:
        """The posterior duration of the session on the capability."""
        key = (session_id, capability, default_log)
        known = self._durations.get(key)
        if known is None:
            if len(self._durations) >= MAX_REMEMBERED:
                self._durations.clear()
            known = self._durations[key] = self._duration(session_id, capability, default_log)
        return known

    def _duration(self, session_id: str, capability: str,
                  default_log: float | None) -> Estimate:
        p = self.params
        st = self.pair(session_id, capability)
        prior = self.pool_mean(capability, default_log) + self.speed_effect(session_id)
        weight = st.w_duration + p.prior_weight
        mean = (st.sum_log + p.prior_weight * prior) / weight
        sigma2 = self.sigma2(capability)
        return Estimate(mean, sigma2 / weight, sigma2, st.w_duration)

    def typical(self, capability: str, default_log: float | None = None) -> float:
        """E[duration] of the capability on an average session (the weight of a task in the
        critical path)."""
        return math.exp(self.pool_mean(capability, default_log) + self.sigma2(capability) / 2)

    def speed(self, session_id: str, capability: str) -> float:
        """The session's speed on the capability relative to the pool: 2.0 is twice as
        fast as a typical session, 0.5 half as fast."""
        est = self.duration(session_id, capability)
        return math.exp(self.pool_mean(capability) - est.mean_log)

    # -- success ---------------------------------------------------------------------------

    def pool_success(self, capability: str) -> float:
        a0, b0 = self.params.pool_success_prior
        pool = self._pools.get(capability) or _Pool()
        return (pool.ws + a0) / (pool.ws + pool.wf + a0 + b0)

    def success(self, session_id: str, capability: str) -> Success:
        """The posterior success probability of the session on the capability."""
        st = self.pair(session_id, capability)
        k = self.params.pair_success_weight
        rate = self.pool_success(capability)
        return Success(st.w_success + k * rate, st.w_failure + k * (1 - rate))

    # -- detection -------------------------------------------------------------------------

    def detected(self, session_id: str, current: frozenset[str] = frozenset()) -> frozenset[str]:
        """The capabilities the session has shown it can do: granted once the success
        estimate passes `grant` on `min_samples` decayed samples, kept until it falls below
        `revoke` (hysteresis)."""
        p = self.params
        out = set()
        for cap, st in self.pairs(session_id).items():
            if cap == ANY:
                continue
            rate = self.success(session_id, cap).mean
            samples = st.w_success + st.w_failure
            if cap in current:
                if rate >= p.revoke and samples >= 1.0:
                    out.add(cap)
            elif rate >= p.grant and samples >= p.min_samples:
                out.add(cap)
        return frozenset(out)

    def wire_stats(self, session_id: str) -> dict[str, dict[str, float | int | None]]:
        """`GET /session/{id}`'s `stats`: per capability, what people want to see."""
        out: dict[str, dict[str, float | int | None]] = {}
        for cap, st in sorted(self.pairs(session_id).items()):
            if cap == ANY:
                continue
            timed = st.w_duration > 1e-9
            raw_median = math.exp(st.sum_log_raw / st.w_duration) if timed else None
            out[cap] = {
                "attempts": st.attempts,
                "successes": st.successes,
                "failures": st.failures,
                "success_rate": round(self.success(session_id, cap).mean, 4),
                # what the durations were (the model itself may work in ratios of estimates)
                "duration_p50": None if raw_median is None else round(raw_median, 4),
                "speed": round(self.speed(session_id, cap), 4) if timed else None,
            }
        return out
