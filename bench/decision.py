"""What one learned scheduling decision costs, with up to 1,000 sessions and 100,000 ready
tasks (issue 12's bar: p99 under 5 ms).

In-process, the learned scheduler alone (core/brain.py), fed the same events the server
feeds it: sessions join with trained statistics (two capabilities each of five), tasks are
added (a tenth of them in dependency chains, so ranks are real), half the sessions are busy.
Then free sessions ask one at a time (`decide`, each choice claimed and later completed, so
the picture moves as in a live swarm), and batches of waiting sessions are matched in one
solve (`match`, LSA up to 300 sessions). Every call is timed alone. No store and no HTTP:
this is the decision only; the store's claim that follows is measured by claim_cost.py.
Prints one table.

    python bench/decision.py --sessions 100,1000 --ready 10000,100000
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
from dataclasses import dataclass

from unified_swarm import stats
from unified_swarm.core.brain import Brain, BrainParams
from unified_swarm.models import Event, Session, SessionStatus
from unified_swarm.stats import ON_SUCCESS, PairStats

CAPS = ["build", "architect", "marketing", "research", "coordination"]


@dataclass
class Row:
    sessions: int
    ready: int
    load_s: float
    decide: list[float]
    match: list[float]
    match_size: int


class Feed:
    """Builds events with contiguous sequence numbers, as the store would."""

    def __init__(self) -> None:
        self.seq = itertools.count(1)

    def __call__(self, type_: str, at: float, **data: object) -> Event:
        return Event(next(self.seq), type_, at, dict(data))


def populate(b: Brain, feed: Feed, n_sessions: int, n_ready: int,
             rng: random.Random) -> list[Session]:
    sessions = []
    for i in range(n_sessions):
        sid, caps = f"s{i}", rng.sample(CAPS, 2)
        b.apply([feed("session.joined", 0.0, session_id=sid, capabilities=caps,
                      max_concurrent_tasks=1)])
        sessions.append(Session(sid, sid, caps, SessionStatus.IDLE, 1, 10.0, 0.0, 0.0))
        for cap in caps:
            st = PairStats()
            for _ in range(10):
                st = stats.apply(st, ON_SUCCESS, rng.uniform(5, 50))
            b.model.set(sid, cap, st)
    events = []
    for n in range(n_ready + n_ready // 10):
        chained = n % 11 == 10  # every eleventh task waits on the one before it
        events.append(feed("task.added", 0.0, task_id=f"t{n}",
                           status="pending" if chained else "ready",
                           required_capability=rng.choice(CAPS), priority=6,
                           dependencies=[f"t{n - 1}"] if chained else []))
    b.apply(events)
    return sessions


def run(n_sessions: int, n_ready: int, decisions: int, seed: int) -> Row:
    rng = random.Random(seed)
    feed = Feed()
    b = Brain(BrainParams(seed=seed))
    started = time.perf_counter()
    sessions = populate(b, feed, n_sessions, n_ready, rng)
    load_s = time.perf_counter() - started
    now = 100.0
    half = n_sessions // 2
    for s in sessions[:half]:  # half the swarm is busy
        tid = b.ready.top(s.capabilities, 1)[0]
        b.apply([feed("task.claimed", now - rng.uniform(0, 30), task_id=tid, session_id=s.id)])
    b.waiting.update(s.id for s in sessions[half:])
    decide: list[float] = []
    for k in range(decisions):
        s, at = sessions[half + rng.randrange(n_sessions - half)], now + k * 0.01
        t0 = time.perf_counter()
        d = b.decide(s, at)
        decide.append(time.perf_counter() - t0)
        if d.task_id is not None:  # claimed and done at once: the swarm keeps moving
            b.apply([feed("task.claimed", at, task_id=d.task_id, session_id=s.id),
                     feed("task.completed", at, task_id=d.task_id, session_id=s.id,
                          duration=rng.uniform(5, 50))])
    size = min(n_sessions - half, 300)
    match: list[float] = []
    for k in range(20):
        waiting = [s.id for s in rng.sample(sessions[half:], size)]
        t0 = time.perf_counter()
        b.match(waiting, now + decisions * 0.01 + k)
        match.append(time.perf_counter() - t0)
        b.holds.clear()
    return Row(n_sessions, len(b.ready), load_s, decide, match, size)


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] if len(xs) > 1 \
        else xs[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", default="100,1000")
    ap.add_argument("--ready", default="10000,100000")
    ap.add_argument("--decisions", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(f"# python bench/decision.py --sessions {a.sessions} --ready {a.ready} "
          f"--decisions {a.decisions} --seed {a.seed}")
    print("| sessions | ready tasks | load (s) | decide p50 (ms) | decide p99 (ms) "
          "| match: waiters | match p50 (ms) | match p99 (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for n_s in (int(x) for x in a.sessions.split(",")):
        for n_r in (int(x) for x in a.ready.split(",")):
            r = run(n_s, n_r, a.decisions, a.seed)
            print(f"| {r.sessions:,} | {r.ready:,} | {r.load_s:.1f} | "
                  f"{pct(r.decide, 50) * 1e3:.3f} | {pct(r.decide, 99) * 1e3:.3f} | "
                  f"{r.match_size} | {pct(r.match, 50) * 1e3:.1f} | "
                  f"{pct(r.match, 99) * 1e3:.1f} |", flush=True)


if __name__ == "__main__":
    main()
