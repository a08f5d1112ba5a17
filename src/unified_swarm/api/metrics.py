"""`GET /metrics`: Prometheus text, from a per-app registry (no module globals).

Gauges (sessions and tasks by status, the newest event seq, open event streams) are read
from `store.counts()` at each scrape, so they are right whichever replica is scraped. So
are the usage counters (`swarm_agent_cost_usd_total`, `swarm_agent_tokens_total{kind}`,
`swarm_agent_turns_total`, `swarm_agent_usage_attempts_total`): the swarm's sums as the
store keeps them (usage.py), never reset by a restart and the same on every replica; by
task type they are in /swarm/status, not here (task types are the clients' to name, so
they would make an unbounded label).
Counters and histograms are fed by the event hub: each process counts every event it hears
from the moment it starts (on Redis that is every replica's events, so scrape one replica,
or take `max` across them, rather than summing).

`prometheus-client` is an optional extra, imported only when the app is built; without it
`/metrics` answers 501 naming the install command.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..core.auth import require_operator
from ..core.orchestrator import Orchestrator
from ..errors import NotInstalled
from ..models import Event, SessionStatus, TaskStatus
from .deps import Orch, bearer
from .events_hub import EventHub

log = logging.getLogger("unified_swarm.metrics")
router = APIRouter(tags=["metrics"])
INSTALL_HINT = "pip install 'unified-swarm[metrics]'"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0, 600.0, 1800.0, 3600.0)
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                    7200.0, 14400.0, 28800.0, 86400.0)
#: events that make a task claimable: the assignment latency runs from the newest of them
READY_TYPES = frozenset({"task.ready", "task.requeued"})
#: requeue/fail reasons meaning a lease ran out: on its own, or with its silent session (the
#: reaper takes a silent session offline first and releases its leases with it)
EXPIRY_REASONS = frozenset({"lease_expired", "session offline"})
#: tasks we remember a ready time for; the oldest are forgotten past this
MAX_TRACKED = 100_000


#: the token fields of a usage sum, by the `kind` label they get
TOKEN_KINDS = (("input", "input_tokens"), ("output", "output_tokens"),
               ("cache_creation", "cache_creation_input_tokens"),
               ("cache_read", "cache_read_input_tokens"))


class UsageCollector:
    """The swarm's usage sums as Prometheus counters, from the scrape's own counts read."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}

    def describe(self) -> list[object]:
        return []  # the families are built at each scrape

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import CounterMetricFamily

        sums = self.sums
        yield CounterMetricFamily("swarm_agent_cost_usd", "Dollars agents reported spending",
                                  value=sums.get("cost_usd", 0.0))
        tokens = CounterMetricFamily("swarm_agent_tokens", "Tokens agents reported, by kind",
                                     labels=["kind"])
        for kind, name in TOKEN_KINDS:
            tokens.add_metric([kind], sums.get(name, 0.0))
        yield tokens
        yield CounterMetricFamily("swarm_agent_turns", "Model turns agents reported",
                                  value=sums.get("num_turns", 0.0))
        yield CounterMetricFamily("swarm_agent_usage_attempts",
                                  "Attempts that reported what they spent",
                                  value=sums.get("attempts", 0.0))


class SwarmMetrics:
    """The swarm's Prometheus metrics for one app."""

    def __init__(self, orch: Orchestrator, hub: EventHub) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.orch, self.hub = orch, hub
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sessions = Gauge("swarm_sessions", "Sessions by status", ["status"], registry=r)
        self.tasks = Gauge("swarm_tasks", "Tasks by status", ["status"], registry=r)
        self.last_seq = Gauge("swarm_event_last_seq", "Sequence number of the newest event",
                              registry=r)
        self.streams = Gauge("swarm_realtime_streams", "Open event streams on this replica",
                             registry=r)
        self.events = Counter("swarm_events", "Events heard, by type", ["type"], registry=r)
        self.claims = Counter("swarm_task_claims", "Tasks claimed under a new lease", registry=r)
        self.completions = Counter("swarm_task_completions", "Tasks completed", registry=r)
        self.failures = Counter("swarm_task_failures",
                                "Tasks failed for good (no attempts left or no retry)",
                                registry=r)
        self.requeues = Counter("swarm_task_requeues", "Tasks sent back to the queue, by reason",
                                ["reason"], registry=r)
        self.lease_expiries = Counter(
            "swarm_lease_expiries", "Leases that ran out because their holder went silent",
            registry=r)
        self.latency = Histogram(
            "swarm_task_assignment_latency_seconds",
            "From a task becoming ready to its claim", buckets=LATENCY_BUCKETS, registry=r)
        self.duration = Histogram(
            "swarm_task_duration_seconds", "From claim to completion of completed tasks",
            buckets=DURATION_BUCKETS, registry=r)
        labels = ["session", "capability"]
        self.success_rate = Gauge(
            "swarm_session_success_rate", "The learned success estimate of an online session "
            "on a capability", labels, registry=r)
        self.duration_p50 = Gauge(
            "swarm_session_duration_p50_seconds", "The learned median duration of an online "
            "session on a capability", labels, registry=r)
        self.speed = Gauge(
            "swarm_session_speed", "An online session's speed on a capability against the "
            "pool (2 = twice as fast as a typical session)", labels, registry=r)
        self.quarantined = Gauge("swarm_sessions_quarantined",
                                 "Sessions whose circuit breaker is open", registry=r)
        self.decision = Gauge("swarm_scheduler_decision_latency_seconds",
                              "Recent scheduling decisions on this replica", ["quantile"],
                              registry=r)
        self.prediction = Gauge(
            "swarm_scheduler_prediction_error", "Mean |log(actual / predicted duration)| of "
            "recent and older completions", ["window"], registry=r)
        self.rate_limited = Gauge(
            "swarm_sessions_rate_limited", "Online sessions whose agent waits out an API "
            "rate limit now", registry=r)
        self.rate_limit_waits = Counter(
            "swarm_rate_limit_waits", "Rate-limit retries agents reported", registry=r)
        self.usage = UsageCollector()
        r.register(self.usage)  # type: ignore[arg-type]
        self._ready_at: OrderedDict[str, float] = OrderedDict()
        hub.tap(self.observe)

    def observe(self, events: Sequence[Event]) -> None:
        """The hub tap: runs on the event loop for every committed batch."""
        for ev in events:
            self.events.labels(ev.type).inc()
            self._observe(ev)

    def _observe(self, ev: Event) -> None:
        d, task_id = ev.data, str(ev.data.get("task_id"))
        if ev.type in READY_TYPES or (ev.type == "task.added" and d.get("status") == "ready"):
            self._ready(task_id, ev.at)
        if ev.type == "task.claimed":
            self.claims.inc()
            since = self._ready_at.pop(task_id, None)
            if since is not None:
                self.latency.observe(max(ev.at - since, 0.0))
        elif ev.type == "task.completed":
            self.completions.inc()
            if isinstance(d.get("duration"), int | float):
                self.duration.observe(max(float(d["duration"]), 0.0))
        elif ev.type == "task.failed":
            self.failures.inc()
        elif ev.type == "session.rate_limited" and d.get("rate_limited") is not None:
            self.rate_limit_waits.inc()
        elif ev.type == "task.requeued":
            self.requeues.labels(str(d.get("reason") or "unknown")).inc()
        if ev.type in ("task.requeued", "task.failed") and d.get("reason") in EXPIRY_REASONS:
            self.lease_expiries.inc()
        if ev.type in ("task.cancelled", "task.failed", "task.blocked"):
            self._ready_at.pop(task_id, None)

    def _ready(self, task_id: str, at: float) -> None:
        self._ready_at[task_id] = at
        self._ready_at.move_to_end(task_id)
        while len(self._ready_at) > MAX_TRACKED:
            self._ready_at.popitem(last=False)

    async def render(self) -> tuple[bytes, str]:
        """Refresh the gauges from one consistent read of the store, then render."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        counts = await self.orch.counts()
        for status in SessionStatus:
            self.sessions.labels(status.value).set(counts.sessions.get(status.value, 0))
        for tstatus in TaskStatus:
            self.tasks.labels(tstatus.value).set(counts.tasks.get(tstatus.value, 0))
        self.last_seq.set(counts.last_seq)
        self.streams.set(self.hub.subscribers)
        self.usage.sums = dict(counts.usage)
        await self._learned()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    async def _learned(self) -> None:
        """What the learned model says of each online session, and how the scheduler does."""
        for gauge in (self.success_rate, self.duration_p50, self.speed):
            gauge.clear()  # sessions that left drop out
        online = await self.orch.list_sessions()
        quarantined = limited = 0
        for s in online:
            if s.status == SessionStatus.OFFLINE:
                continue
            quarantined += s.quarantined_until is not None
            limited += s.rate_limited is not None
            for cap, st in s.stats.items():
                self.success_rate.labels(s.id, cap).set(st["success_rate"])
                if st["duration_p50"] is not None:
                    self.duration_p50.labels(s.id, cap).set(st["duration_p50"])
                    self.speed.labels(s.id, cap).set(st["speed"])
        self.quarantined.set(quarantined)
        self.rate_limited.set(limited)
        view = self.orch.scheduler_view()
        latency, errors = view["decision_latency_ms"], view["prediction_error"]
        for q in ("p50", "p99"):
            if latency[q] is not None:
                self.decision.labels(q).set(latency[q] / 1000)
        for window in ("recent", "older"):
            if errors[window] is not None:
                self.prediction.labels(window).set(errors[window])


def make_metrics(orch: Orchestrator, hub: EventHub) -> SwarmMetrics | None:
    """The metrics, or None (and a note in the log) when prometheus-client is missing."""
    try:
        return SwarmMetrics(orch, hub)
    except ImportError:
        log.info("prometheus-client is not installed, /metrics is off: %s", INSTALL_HINT)
        return None


@router.get("/metrics")
async def metrics(request: Request, orch: Orch) -> Response:
    if not orch.settings.public_metrics:
        require_operator(await orch.authenticate(bearer(request)), "/metrics")
    m: SwarmMetrics | None = request.app.state.metrics
    if m is None:
        raise NotInstalled(f"metrics need prometheus-client: {INSTALL_HINT}")
    body, content_type = await m.render()
    return Response(body, media_type=content_type)
