"""The learned scheduler (`SWARM_SCHEDULER=learned`): a picture of the swarm kept from the
store's events, the learned model, and the choice over them.

Every replica keeps its own `Brain` from the same event stream, so any replica can decide;
the store's compare-and-set claim settles races. Nothing here is a source of truth: on start
the orchestrator loads it from the store (`load`), and a picture that drifted only costs a
lost race or a slightly worse choice, never a duplicate.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .. import stats
from ..models import Event, Quarantine, Session, SessionStatus, Task, TaskStatus
from ..stats import ANY, PairStats
from . import breaker, choice
from .breaker import BreakerParams
from .choice import ChoiceParams, Decision, Hold, Option
from .learning import Model, Params
from .ranks import Ranks
from .view import ByCapability, Parked, ReadyIndex, SessionInfo, TaskInfo

#: a proposal keeps racing deciders off a task between the choice and the claim
PROPOSAL_HOLD = 2.0


@dataclass(frozen=True, slots=True)
class BrainParams:
    choice: ChoiceParams = field(default_factory=ChoiceParams)
    model: Params = field(default_factory=Params)
    breaker: BreakerParams = field(default_factory=BreakerParams)
    #: seconds between checks whether learned weights moved enough to re-rank everything
    reweigh_every: float = 2.0
    reweigh_change: float = 0.1
    #: seconds between re-sorting each capability's sessions by expected speed from
    #: scratch (between those, a session's own outcomes move it in place)
    speed_refresh: float = 5.0
    seed: int | None = None


class Brain:
    """The scheduler's state: tasks, ranks, ready index, sessions, model, holds, breakers."""

    def __init__(self, params: BrainParams | None = None) -> None:
        self.params = params or BrainParams()
        self.model = Model(self.params.model)
        self.ranks = Ranks()
        self.ready = ReadyIndex()
        self.tasks: dict[str, TaskInfo] = {}
        self.sessions: dict[str, SessionInfo] = {}
        #: the same sessions by capability (who can do a task is a lookup, not a scan)
        self._able = ByCapability()
        self.holds: dict[str, Hold] = {}
        #: task id -> the end of the first hold made for it: no later hold outlasts it
        self._hold_ends: dict[str, float] = {}
        self.quarantines: dict[tuple[str, str], Quarantine] = {}
        #: session id -> the capabilities the model detected (hysteresis keeps them)
        self.detected: dict[str, frozenset[str]] = {}
        #: (session, capability) -> an operator's prior, added to what is observed
        self.prior: dict[tuple[str, str], PairStats] = {}
        #: sessions parked in a long-poll on this replica: free now
        self.waiting = Parked(self._caps_of)
        self.metrics = SchedulerMetrics()
        self._predicted: dict[str, float] = {}
        self._weights: dict[str, float] = {}
        self._weighed_at = -math.inf
        self._by_speed: dict[str, list[tuple[float, str]]] = {}
        self._unit: dict[tuple[str, str], float] = {}
        self._speed_at: dict[str, float] = {}
        self._rng = random.Random(self.params.seed)

    # -- loading and events ----------------------------------------------------------------

    def load(self, tasks: Iterable[Task], sessions: Iterable[Session],
             stats: Iterable[tuple[str, str, PairStats]],
             quarantines: Iterable[Quarantine] = ()) -> None:
        """The picture from the store: unfinished tasks (dependencies first), online
        sessions, every pair's statistics and the breakers open or half-open."""
        for (sid, cap), st in self.prior.items():
            self.model.set(sid, cap, st)
        for sid, cap, st in stats:
            self.observe(sid, cap, st)
        for s in sessions:
            self.detected[s.id] = frozenset(s.detected_capabilities)
            if s.status != SessionStatus.OFFLINE:
                self._join(s.id, s.capabilities, s.max_concurrent_tasks)
        for t in tasks:
            self._load_task(t)
        for q in quarantines:
            self.quarantines[(q.session_id, q.capability)] = q

    def _load_task(self, t: Task) -> None:
        status = {TaskStatus.PENDING: "pending", TaskStatus.READY: "ready"}.get(t.status, "held")
        self._add(t.id, t.required_capability, t.priority, t.seq, status, t.dependencies,
                  stats.size_of(t.estimated_hours))
        if t.status == TaskStatus.IN_PROGRESS and t.assigned_to in self.sessions:
            started = t.started_at or 0.0
            self.sessions[t.assigned_to].running[t.id] = (t.required_capability, started)

    def apply(self, events: Sequence[Event]) -> None:
        """Follow one committed step's events."""
        for ev in events:
            handler = _HANDLERS.get(ev.type)
            if handler is not None:
                handler(self, ev)

    def _add(self, tid: str, cap: str, priority: int, seq: int, status: str,
             deps: Iterable[str], size: float) -> None:
        info = TaskInfo(tid, cap, priority, seq, status, size)
        self.tasks[tid] = info
        moved = self.ranks.add(tid, cap, deps, self._weight(cap), size)
        if status == "ready":
            self.ready.put(info, self.ranks.rank(tid))
        self._rekey(moved)

    def _rekey(self, moved: Iterable[str]) -> None:
        for m in moved:
            info = self.tasks.get(m)
            if info is not None and info.status == "ready":
                self.ready.put(info, self.ranks.rank(m))

    def _forget_task(self, tid: str) -> None:
        self.tasks.pop(tid, None)
        self.ready.discard(tid)
        self.holds.pop(tid, None)
        self._hold_ends.pop(tid, None)
        self._rekey(self.ranks.remove(tid))

    def _set_ready(self, tid: str, priority: int | None = None) -> None:
        info = self.tasks.get(tid)
        if info is None:
            return
        info.status = "ready"
        if priority is not None:
            info.priority = priority
        self.ready.put(info, self.ranks.rank(tid))

    def _set_held(self, tid: str) -> None:
        info = self.tasks.get(tid)
        if info is not None:
            info.status = "held"
        self.ready.discard(tid)

    def _stop_running(self, sid: str | None, tid: str) -> None:
        s = self.sessions.get(sid or "")
        if s is not None:
            s.running.pop(tid, None)

    def _join(self, sid: str, caps: Iterable[str], max_concurrent: int) -> None:
        old = self.sessions.get(sid)
        info = SessionInfo(sid, frozenset(caps), max_concurrent)
        if old is not None:
            info.running = old.running
        self.sessions[sid] = info
        self._able.put(sid, info.capabilities)
        self.waiting.reindex(sid)
        self._resort(sid)

    def _caps_of(self, sid: str) -> frozenset[str] | None:
        s = self.sessions.get(sid)
        return None if s is None else s.capabilities

    def _learn(self, data: dict[str, object]) -> None:
        sid = data.get("session_id")
        raw = data.get("stats")
        if not isinstance(sid, str) or not isinstance(raw, dict):
            return
        for cap, row in raw.items():
            if isinstance(row, dict):
                self.observe(sid, str(cap), PairStats.from_mapping(row))
        self._resort(sid)

    def observe(self, sid: str, cap: str, st: PairStats) -> None:
        """A pair's statistics as the store keeps them now (plus any prior for it)."""
        prior = self.prior.get((sid, cap))
        if prior is not None:
            st = PairStats(**{f: getattr(st, f) + getattr(prior, f) for f in stats.FIELDS})
        self.model.set(sid, cap, st)

    def predict(self, sid: str, tid: str) -> float | None:
        """The expected duration of the task on the session (None: unknown task)."""
        info = self.tasks.get(tid)
        if info is None:
            return None
        return self.model.duration(sid, info.capability, info.default_log).expected * info.size

    def fit(self, sid: str, cap: str, now: float) -> float:
        """The learned cost of a task of `cap` on the session (expected duration over its
        success chance), `choice.INFEASIBLE` when its capabilities or breakers forbid it: the
        numbers the choice ranks by, for placing one task (an emergency) by hand."""
        if sid not in self.sessions:
            return self._unit_cost(sid, cap)  # not heard of yet: the model's prior for it
        return self._cost(sid, cap, now)

    def lost(self, tid: str) -> None:
        """A claim of the task lost its race: it is not ready (as far as anyone here knows)
        until an event says it is."""
        self._set_held(tid)
        self.holds.pop(tid, None)

    def census(self, cap: str, now: float) -> tuple[int, int]:
        """For the breaker's cap: sessions ejected now on `cap` (or whole), and sessions that
        can do it (every online session for `stats.ANY`)."""
        able = list(self.sessions.values()) if cap == ANY else \
            [self.sessions[sid] for sid in self._able.able(cap)]
        ejected = sum(1 for s in able
                      if (q := self.quarantines.get((s.id, cap))) is not None and q.open(now))
        return ejected, len(able)

    def _resort(self, sid: str) -> None:
        """Move the session to its new place in each capability's speed order: its speed
        effect touches every capability it can do."""
        for cap, order in self._by_speed.items():
            old = self._unit.pop((sid, cap), None)
            if old is not None:
                i = bisect.bisect_left(order, (old, sid))
                if i < len(order) and order[i] == (old, sid):
                    del order[i]
            s = self.sessions.get(sid)
            if s is not None and s.can_do(cap):
                unit = self._unit_cost(sid, cap)
                self._unit[(sid, cap)] = unit
                bisect.insort(order, (unit, sid))

    # -- the choice ------------------------------------------------------------------------

    def decide(self, session: Session, now: float) -> Decision:
        """The task this session should claim now, if any (see core/choice.py)."""
        started = time.perf_counter()
        info = self._session(session)
        self._housekeeping(now)
        caps = info.capabilities or None
        cands = [t for t in self.ready.top(caps, self.params.choice.candidates)
                 if self._eligible(info, self.tasks[t].capability, now)]
        top_rank = self.ranks.rank(cands[0]) if cands else 0.0
        decision = choice.decide(
            info.id, cands,
            lambda s, t, explore: self._finish(s, t, now, explore),
            lambda t, busy: self._alternative(t, busy, now),
            self._held_for(now),
            lambda t: top_rank - self.ranks.rank(t),
            now, self.params.choice, lambda t: self._hold_ends.get(t, math.inf))
        for h in decision.holds:
            self._hold(h)
        if decision.task_id is not None:
            self.holds[decision.task_id] = Hold(decision.task_id, info.id, now + PROPOSAL_HOLD)
        self.metrics.decided(time.perf_counter() - started)
        return decision

    def decide_many(self, session: Session, now: float,
                    n: int) -> tuple[list[Decision], Decision | None]:
        """Up to `n` tasks for one session asking for a batch: the choices `decide` would
        make for n requests of it arriving before any of their claims is heard of, each
        choice kept off the next. Also the decision that found nothing more (None when n
        were chosen): its `retry_at` says when to look again."""
        picks: list[Decision] = []
        empty: Decision | None = None
        try:
            for _ in range(n):
                d = self.decide(session, now)
                if d.task_id is None:
                    empty = d
                    break
                picks.append(d)
                # held for nobody real while the batch is chosen, so `decide` moves on
                self.holds[d.task_id] = Hold(d.task_id, "", math.inf)
        finally:
            for d in picks:
                assert d.task_id is not None
                self.holds[d.task_id] = Hold(d.task_id, session.id, now + PROPOSAL_HOLD)
        return picks, empty

    def release(self, tid: str, session_id: str) -> None:
        """A task chosen for the session that it had no room for: free for others again."""
        h = self.holds.get(tid)
        if h is not None and h.session_id == session_id:
            del self.holds[tid]

    def match(self, waiting: Iterable[str] | None, now: float,
              unwoken: Callable[[str], bool] | None = None) -> dict[str, str]:
        """Waiting sessions matched to the best-ranked ready tasks in one solve. Returns
        proposals (session -> task) and records holds for sessions free soon. `waiting`:
        the sessions to match, None for those parked here (`self.waiting`) for which
        `unwoken` holds (a parked poll not already woken).

        Rows are the top tasks (as many as free sessions, at most `lsa_limit`); columns are,
        per capability of those rows, the fastest sessions free now or soon, so a solve
        stays small however many sessions wait. The parked sessions are reached through
        their capability index from the capabilities that have ready tasks: the cost
        follows the candidates, not parked sessions x ready tasks."""
        started = time.perf_counter()
        self._housekeeping(now)
        parked = self.waiting if waiting is None else self._parked(waiting)

        def free(sid: str) -> bool:
            s = self.sessions.get(sid)
            return (s is not None and s.free_slots > 0 and not s.draining
                    and sid in parked and (unwoken is None or unwoken(sid)))

        limit = self.params.choice.lsa_limit
        want = self._count(parked, free, limit)
        if not want:
            return {}
        caps = None if any(map(free, parked.index.takes_any())) else [
            c for c in self.ready.capabilities() if any(map(free, parked.index.declared(c)))]
        held = self._held_for(now)
        tasks = [t for t in self.ready.top(caps, want + len(self.holds)) if held(t) is None]
        tasks = tasks[:want]
        if not tasks:
            return {}
        columns, soon = self._columns(tasks, free, want + 4, now)
        proposals, holds = choice.match(
            columns, soon, tasks, lambda t: self.tasks[t].capability,
            lambda t: self.tasks[t].size, lambda s, cap: self._cost(s, cap, now), now,
            self.params.choice)
        for h in holds:
            end = self._hold_ends.get(h.task_id, math.inf)
            if end > now:
                self._hold(Hold(h.task_id, h.session_id, min(h.until, end)))
        for sid, tid in proposals.items():
            self.holds[tid] = Hold(tid, sid, now + PROPOSAL_HOLD)
        self.metrics.decided(time.perf_counter() - started)
        return proposals

    def _parked(self, sids: Iterable[str]) -> Parked:
        """An explicit list of waiting sessions, indexed as `self.waiting` is."""
        parked = Parked(self._caps_of)
        parked |= sids
        return parked

    @staticmethod
    def _count(parked: Parked, free: Callable[[str], bool], limit: int) -> int:
        """How many parked sessions are free, counted up to `limit` (all a solve can use)."""
        n = 0
        for sid in parked.index:
            if n >= limit:
                break
            n += free(sid)
        return n

    def _columns(self, tasks: Sequence[str], free: Callable[[str], bool], per_cap: int,
                 now: float) -> tuple[list[str], list[tuple[str, float]]]:
        """The sessions a solve places `tasks` on: per capability of the tasks, the fastest
        `per_cap` of those free now (waiting), and the fastest `per_cap` of those busy but
        expected free soon, none already spoken for by a hold."""
        spoken = {h.session_id for h in self.holds.values() if h.until > now}
        now_free: dict[str, None] = {}
        later: dict[str, float] = {}
        for cap in dict.fromkeys(self.tasks[t].capability for t in tasks):
            n_free = n_later = 0
            for _, sid in self._speed_order(cap, now):
                if n_free >= per_cap and n_later >= per_cap:
                    break
                s = self.sessions.get(sid)
                if s is None or sid in spoken:
                    continue
                if free(sid):
                    n_free += 1
                    now_free[sid] = None
                elif n_later < per_cap and s.free_slots <= 0:
                    at = self._free_at(s, now)
                    if at is not None:
                        n_later += 1
                        later[sid] = at
        return list(now_free), sorted(later.items(), key=lambda p: p[1])

    def _hold(self, h: Hold) -> None:
        """Keep a task for a faster session; its first hold's end bounds every later one."""
        self.holds[h.task_id] = h
        self._hold_ends.setdefault(h.task_id, h.until)

    def _session(self, s: Session) -> SessionInfo:
        info = self.sessions.get(s.id)
        if info is None:
            self._join(s.id, s.capabilities, s.max_concurrent_tasks)
            info = self.sessions[s.id]
        return info

    def _held_for(self, now: float) -> Callable[[str], str | None]:
        def held(tid: str) -> str | None:
            h = self.holds.get(tid)
            return h.session_id if h is not None and h.until > now else None
        return held

    def _finish(self, sid: str, tid: str, now: float, explore: bool) -> tuple[float, float]:
        info = self.tasks[tid]
        est = self.model.duration(sid, info.capability, info.default_log)
        ok = self.model.success(sid, info.capability)
        if explore:
            d, p = est.sample(self._rng), ok.sample(self._rng)
        else:
            d, p = est.expected, ok.mean
        return now + d * info.size / max(p, 0.05), est.expected * info.size

    def _cost(self, sid: str, cap: str, now: float) -> float:
        s = self.sessions[sid]
        if not s.can_do(cap) or not self._eligible(s, cap, now):
            return choice.INFEASIBLE
        return self._unit_cost(sid, cap)

    def _unit_cost(self, sid: str, cap: str) -> float:
        est = self.model.duration(sid, cap)
        return est.expected / max(self.model.success(sid, cap).mean, 0.05)

    def _free_at(self, s: SessionInfo, now: float) -> float | None:
        """When the session is expected to take its next task; None: it will not."""
        if s.draining:
            return None
        if s.free_slots > 0:
            return now if s.id in self.waiting else None
        ends = []
        for tid, (cap, started) in s.running.items():
            size = self.tasks[tid].size if tid in self.tasks else 1.0
            end = started + self.model.duration(s.id, cap).expected * size
            ends.append(end if end > now else now + (now - end))  # overdue: as late again
        return min(ends, default=None)

    def _alternative(self, tid: str, busy: frozenset[str], now: float) -> Option | None:
        """The session other than `busy` expected to finish the task first."""
        cap, size = self.tasks[tid].capability, self.tasks[tid].size
        held = {h.session_id for h in self.holds.values() if h.until > now}
        best: Option | None = None
        for unit, sid in self._speed_order(cap, now):
            if best is not None and now + unit * size >= best.finish:
                break  # sorted by speed: nobody further down can finish sooner
            if sid in busy or sid in held:
                continue
            s = self.sessions.get(sid)
            start = None if s is None else self._free_at(s, now)
            if s is None or start is None or not self._eligible(s, cap, now):
                continue
            if best is None or start + unit * size < best.finish:
                best = Option(sid, start + unit * size)
        return best

    def _speed_order(self, cap: str, now: float) -> list[tuple[float, str]]:
        """The sessions that can do `cap`, fastest first (refreshed every `speed_refresh`)."""
        if now - self._speed_at.get(cap, -math.inf) > self.params.speed_refresh or \
                cap not in self._by_speed:
            units = {sid: self._unit_cost(sid, cap) for sid in self._able.able(cap)}
            self._unit.update(((sid, cap), u) for sid, u in units.items())
            self._by_speed[cap] = sorted((u, sid) for sid, u in units.items())
            self._speed_at[cap] = now
        return self._by_speed[cap]

    def _eligible(self, s: SessionInfo, cap: str, now: float) -> bool:
        """The breakers let the session start a task of `cap` (or nobody healthy can)."""
        if not self.quarantines:  # every breaker closed: asked for every candidate
            return True
        for key in ((s.id, cap), (s.id, ANY)):
            q = self.quarantines.get(key)
            if q is None:
                continue  # closed (breaker.may_take)
            running = sum(1 for c, _ in s.running.values() if key[1] in (ANY, c))
            if not breaker.may_take(q, now, running):
                return not self._healthy_exists(cap, s.id, now)
        return True

    def _healthy_exists(self, cap: str, but: str, now: float) -> bool:
        for sid in self._able.able(cap):
            other = self.sessions[sid]
            if other.id == but or other.draining:
                continue
            if all(not (q := self.quarantines.get(k)) or not q.open(now)
                   for k in ((other.id, cap), (other.id, ANY))):
                return True
        return False

    # -- upkeep ----------------------------------------------------------------------------

    def _weight(self, cap: str) -> float:
        if cap not in self._weights:
            self._weights[cap] = self.model.typical(cap)
        return self._weights[cap]

    def _housekeeping(self, now: float) -> None:
        for tid in [t for t, h in self.holds.items() if h.until <= now]:
            del self.holds[tid]
        if now - self._weighed_at < self.params.reweigh_every:
            return
        self._weighed_at = now
        fresh = {c: self.model.typical(c) for c in self._weights}
        moved = any(abs(fresh[c] / w - 1) > self.params.reweigh_change
                    for c, w in self._weights.items() if w > 0)
        if moved:
            self._weights = fresh
            self.ranks.reweigh(fresh.__getitem__)
            self._rekey(t for t, i in self.tasks.items() if i.status == "ready")

    def report(self) -> dict[str, object]:
        return {"tasks_tracked": len(self.tasks), "ready_tracked": len(self.ready),
                "sessions_tracked": len(self.sessions),
                "holds": sum(1 for h in self.holds.values()), **self.metrics.report()}


@dataclass(slots=True)
class SchedulerMetrics:
    """Decision latency and prediction error, over recent and older windows."""

    window: int = 100
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    errors: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    #: the mean absolute log-error of each completed window of `window` predictions
    history: list[float] = field(default_factory=list)
    decisions: int = 0

    def decided(self, seconds: float) -> None:
        self.decisions += 1
        self.latencies.append(seconds)

    def observed(self, predicted: float, actual: float) -> None:
        self.errors.append(abs(math.log(max(actual, 1e-3) / max(predicted, 1e-3))))
        if len(self.errors) % self.window == 0:
            recent = list(self.errors)[-self.window:]
            self.history.append(sum(recent) / len(recent))
            del self.history[:-1000]

    def report(self) -> dict[str, object]:
        lat = sorted(self.latencies)
        errs = list(self.errors)
        recent, older = errs[-self.window:], errs[:-self.window]
        return {
            "decisions": self.decisions,
            # none measured (fifo decides elsewhere): None, not a flattering zero
            "decision_latency_ms": {"p50": _q(lat, 0.5) * 1e3 if lat else None,
                                    "p99": _q(lat, 0.99) * 1e3 if lat else None},
            "prediction_error": {
                "metric": "mean |log(actual / predicted)| of completed attempts",
                "recent": _mean(recent), "older": _mean(older),
                "predictions": len(errs), "windows": self.history[-50:]},
        }


def _q(xs: list[float], q: float) -> float:
    return xs[min(int(q * len(xs)), len(xs) - 1)] if xs else 0.0


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


# -- event handlers ------------------------------------------------------------------------


def _on_detected(b: Brain, ev: Event) -> None:
    caps = ev.data.get("detected_capabilities") or []
    b.detected[str(ev.data["session_id"])] = frozenset(str(c) for c in caps)


def _on_added(b: Brain, ev: Event) -> None:
    d = ev.data
    status = str(d.get("status"))
    if status not in ("pending", "ready"):
        return
    hours = d.get("estimated_hours")
    size = stats.size_of(float(hours) if isinstance(hours, int | float) else None)
    b._add(str(d["task_id"]), str(d["required_capability"]), int(d.get("priority") or 5),
           ev.seq, status, list(d.get("dependencies") or []), size)


def _on_ready(b: Brain, ev: Event) -> None:
    p = ev.data.get("priority")
    b._set_ready(str(ev.data["task_id"]), int(p) if isinstance(p, int) else None)


def _on_requeued(b: Brain, ev: Event) -> None:
    tid = str(ev.data["task_id"])
    hold = b.holds.get(tid)
    if (ev.data.get("reason") == "claim_timeout" and hold is not None
            and hold.session_id == ev.data.get("session_id")):
        del b.holds[tid]  # the session it was kept for let its offer lapse: others may have it
    b._stop_running(ev.data.get("session_id"), tid)
    b._predicted.pop(tid, None)
    b._learn(ev.data)
    b._set_ready(tid)


def _on_claimed(b: Brain, ev: Event) -> None:
    tid, sid = str(ev.data["task_id"]), str(ev.data["session_id"])
    b._set_held(tid)
    b.holds.pop(tid, None)
    b._hold_ends.pop(tid, None)  # a later requeue may be held afresh
    info = b.tasks.get(tid)
    s = b.sessions.get(sid)
    if s is not None and info is not None:
        s.running[tid] = (info.capability, ev.at)
    predicted = ev.data.get("predicted")
    if isinstance(predicted, int | float):
        b._predicted[tid] = float(predicted)


def _on_assigned(b: Brain, ev: Event) -> None:
    b._set_held(str(ev.data["task_id"]))


def _on_completed(b: Brain, ev: Event) -> None:
    tid = str(ev.data["task_id"])
    b._stop_running(ev.data.get("session_id"), tid)
    b._learn(ev.data)
    predicted, duration = b._predicted.pop(tid, None), ev.data.get("duration")
    if predicted is not None and isinstance(duration, int | float):
        b.metrics.observed(predicted, float(duration))
    b._forget_task(tid)


def _on_final(b: Brain, ev: Event) -> None:
    tid = str(ev.data["task_id"])
    b._stop_running(ev.data.get("session_id"), tid)
    b._predicted.pop(tid, None)
    b._learn(ev.data)
    b._forget_task(tid)


def _on_joined(b: Brain, ev: Event) -> None:
    d = ev.data
    b._join(str(d["session_id"]), [str(c) for c in d.get("capabilities") or []],
            int(d.get("max_concurrent_tasks") or 1))


def _on_gone(b: Brain, ev: Event) -> None:
    sid = str(ev.data["session_id"])
    b.sessions.pop(sid, None)
    b._able.remove(sid)
    b.waiting.discard(sid)
    b._resort(sid)


def _on_draining(b: Brain, ev: Event) -> None:
    s = b.sessions.get(str(ev.data["session_id"]))
    if s is not None:
        s.draining = True


def _on_quarantined(b: Brain, ev: Event) -> None:
    d = ev.data
    q = Quarantine(str(d["session_id"]), str(d.get("capability") or ANY), float(d["until"]),
                   int(d.get("ejections") or 1))
    b.quarantines[(q.session_id, q.capability)] = q


def _on_restored(b: Brain, ev: Event) -> None:
    d = ev.data
    b.quarantines.pop((str(d["session_id"]), str(d.get("capability") or ANY)), None)


_HANDLERS = {
    "task.added": _on_added,
    "task.ready": _on_ready,
    "task.requeued": _on_requeued,
    "task.claimed": _on_claimed,
    "task.assigned": _on_assigned,
    "task.completed": _on_completed,
    "task.failed": _on_final,
    "task.blocked": _on_final,
    "task.cancelled": _on_final,
    # a split parent leaves its holder and waits for its subtasks: never ready again
    "task.split": _on_final,
    "session.joined": _on_joined,
    "session.left": _on_gone,
    "session.offline": _on_gone,
    "session.draining": _on_draining,
    "session.quarantined": _on_quarantined,
    "session.restored": _on_restored,
    "session.detected": _on_detected,
}
