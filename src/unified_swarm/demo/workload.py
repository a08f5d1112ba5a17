"""The demo's sample workload, modelled on the seed: a product launch worked on by build,
architect, marketing, research and coordination sessions. Critical tasks, a given top
priority, a dependency DAG, one task that fails its first attempt (to show a retry), and
durations from estimated hours scaled down to seconds.

Every task runs the same real command (the shell executor): sleep in steps reporting
progress, append one line to the side-effect ledger, print a JSON result. The task reaches
it only through SWARM_* variables, as for any shell task.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from ..client.types import TaskIn
from ..core.bounds import Bounds, Node, lower_bounds

#: the seed's capability catalogue
CAPABILITIES = ("build", "architect", "marketing", "research", "coordination")
#: seconds of demo time per estimated hour of work
SCALE = 0.25
#: the ledger of side effects: one line per attempt that ran to its end
LEDGER_ENV = "SWARM_DEMO_LEDGER"
#: a worker's speed: its tasks take their time divided by this (the scheduler learns it)
SPEED_ENV = "SWARM_DEMO_SPEED"

SCRIPT = r"""
n="${SWARM_INPUT_STEPS:-1}"; i=0
step=$(awk -v s="${SWARM_INPUT_STEP:-0}" -v v="${SWARM_DEMO_SPEED:-1}" 'BEGIN { print s / v }')
while [ "$i" -lt "$n" ]; do
  sleep "$step"
  i=$((i + 1))
  if [ "$i" -lt "$n" ]; then
    printf 'SWARM_PROGRESS 0.%02d step %d of %d\n' $((100 * i / n)) "$i" "$n" >&2
  fi
done
if [ -n "${SWARM_INPUT_FAIL_FIRST:-}" ] && [ "${SWARM_TASK_ATTEMPT:-1}" = 1 ]; then
  echo "$SWARM_TASK_ID: flaky on its first attempt (on purpose: the demo shows a retry)" >&2
  exit 3
fi
echo "$SWARM_TASK_ID $SWARM_FENCING_TOKEN $SWARM_WORKER_NAME" >> "$SWARM_DEMO_LEDGER"
printf '{"task": "%s", "by": "%s", "attempt": %s, "seconds": %s, "deliverable": "%s"}\n' \
  "$SWARM_TASK_ID" "$SWARM_WORKER_NAME" "$SWARM_TASK_ATTEMPT" "$SWARM_INPUT_SECONDS" \
  "$SWARM_INPUT_DELIVERABLE"
"""
COMMAND = shlex.join(["sh", "-c", SCRIPT.strip()])


@dataclass(frozen=True, slots=True)
class Sample:
    id: str
    title: str
    hours: float
    deliverable: str
    deps: tuple[str, ...] = ()
    critical: bool = False
    priority: int | None = None
    roi: str | None = None
    infinite_scale: bool = False
    flaky: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.id.rsplit("-", 1)[0]


#: in dependency order: every task comes after the tasks it depends on
SAMPLES: tuple[Sample, ...] = (
    Sample("coordination-001", "Plan the launch: split the work, set milestones", 2,
           "plan.md", critical=True),
    Sample("build-006", "Hotfix: pagination returns duplicates", 2, "fix.patch", priority=10),
    Sample("research-001", "Survey competing agent orchestrators", 8, "survey.md", roi="high"),
    Sample("architect-001", "Design the API and the data model", 6, "api.md",
           ("coordination-001",), critical=True),
    Sample("research-002", "Interview five early users", 5, "interviews.md"),
    Sample("build-001", "Implement the task queue", 10, "queue.py", ("architect-001",),
           critical=True),
    Sample("build-002", "Implement heartbeats and leases", 8, "leases.py", ("architect-001",)),
    Sample("marketing-001", "Positioning and messaging", 4, "positioning.md",
           ("research-001",)),
    Sample("architect-002", "Plan the Redis backend", 5, "redis.md", ("architect-001",)),
    Sample("build-003", "Write the command line", 5, "cli.py", ("build-001",)),
    Sample("build-005", "Integration tests", 6, "tests.py", ("build-001", "build-002"),
           flaky=True),
    Sample("architect-003", "Security review", 4, "review.md", ("build-002",), critical=True),
    Sample("build-004", "Dashboard: a live task board", 6, "dashboard.js", ("build-001",)),
    Sample("marketing-002", "Landing page copy", 3, "landing.md", ("marketing-001",)),
    Sample("research-003", "Benchmark throughput", 5, "bench.md", ("build-005",),
           infinite_scale=True),
    Sample("build-007", "Documentation site", 4, "docs/", ("build-003",)),
    Sample("research-004", "Pricing research", 4, "pricing.md", roi="high"),
    Sample("build-008", "Redis store", 8, "redis.py", ("architect-002",)),
    Sample("marketing-003", "Launch blog post", 4, "post.md", ("marketing-001", "build-003")),
    Sample("coordination-003", "Weekly sync notes", 1, "notes.md"),
    Sample("coordination-002", "Release checklist and go/no-go", 2, "go.md",
           ("build-004", "build-005", "architect-003", "marketing-002"), critical=True),
    Sample("marketing-004", "Announce the release", 1, "announcement.md",
           ("coordination-002", "marketing-003")),
)

@dataclass(frozen=True, slots=True)
class WorkerSet:
    """One demo worker: what it declares, how many tasks at once, and how fast it really is
    (a hidden factor: nobody tells the server, which learns it from what it sees)."""

    capabilities: tuple[str, ...]
    slots: int = 1
    speed: float = 1.0


#: the demo's workers, in start order (worker N takes set N mod 6): sessions differ in speed
#: as real agents do, so the learned scheduler has something to learn
WORKER_SETS: tuple[WorkerSet, ...] = (
    WorkerSet(("build", "architect"), 1, 1.0),
    WorkerSet(("build",), 2, 2.0),
    WorkerSet(("research", "marketing"), 1, 1.0),
    WorkerSet(("marketing", "coordination"), 1, 0.5),
    WorkerSet(("architect", "coordination", "research"), 1, 1.5),
    WorkerSet(("build", "research"), 1, 0.5),
)


def tasks(count: int | None = None, scale: float = SCALE) -> list[TaskIn]:
    """The first `count` samples (all by default) as tasks; every dependency of one of
    them is among them, because the samples are in dependency order."""
    chosen = SAMPLES[:count] if count is not None else SAMPLES
    return [_task(s, scale) for s in chosen]


def _task(s: Sample, scale: float) -> TaskIn:
    seconds = round(max(0.2, s.hours * scale), 2)
    steps = max(1, min(5, round(seconds / 0.4)))
    task: TaskIn = {
        "id": s.id, "type": s.type, "title": s.title, "estimated_hours": s.hours,
        "dependencies": list(s.deps), "critical": s.critical, "infinite_scale": s.infinite_scale,
        "input": {"seconds": seconds, "steps": steps, "step": round(seconds / steps, 3),
                  "deliverable": s.deliverable, **({"fail_first": True} if s.flaky else {})},
    }
    if s.priority is not None:
        task["priority"] = s.priority
    if s.roi is not None:
        task["roi"] = s.roi
    return task


def worker_sets(count: int) -> list[WorkerSet]:
    """The first `count` workers; the first one also takes whatever no other covers, so
    every task has someone to run it."""
    sets = [WORKER_SETS[i % len(WORKER_SETS)] for i in range(count)]
    covered = {cap for w in sets for cap in w.capabilities}
    missing = tuple(c for c in CAPABILITIES if c not in covered)
    if missing and sets:
        first = sets[0]
        sets[0] = WorkerSet(first.capabilities + missing, first.slots, first.speed)
    return sets


def lower_bound(chosen: list[TaskIn], workers: dict[str, WorkerSet]) -> Bounds:
    """No schedule of these tasks on these workers can end sooner (core/bounds.py: the
    critical path at the fastest speeds, and the LP bound on the load)."""
    nodes = [Node(t["id"], t["type"], float(t["input"]["seconds"]),
                  tuple(t.get("dependencies", []))) for t in chosen]
    durations = {n.id: {name: n.work / w.speed for name, w in workers.items()
                        if n.type in w.capabilities} for n in nodes}
    return lower_bounds(nodes, durations, {name: w.slots for name, w in workers.items()})
