"""The operator's side of the campaign: emergencies, preemptions and releases, seeded and
tied to progress like the faults, made through the journaled SDK (the checker sees every
call) from a thread of their own.

- `emergency`, `emergency_interrupt`: `POST /swarm/emergency` of a short workload task,
  without and with `interrupt` (with it, every other session takes nothing new until the
  task ends): offered to an idle worker or taken by one with a free slot, or a running
  task is preempted for it, whichever comes.
- `preempt_release`, `preempt_revoke`: a session of the operator's own holds a task, then
  sends an emergency needing a capability only it has (swarm.OPERATOR_CAP: a worker with a
  free slot would take any other at once, and nothing would be preempted), so its task is
  the one victim; told so on its heartbeat, it either checkpoints (a progress) and gives
  the task back with a note, or ignores the directive and keeps beating until the grace
  runs out and its lease is revoked.
- `release`: the session claims its task and gives it back by choice, with a note.

After letting go, the session sends a late complete with its old token (it must be
refused), runs the emergency it was preempted for, then claims its own task again and
completes it: the test executor runs both, logged like a worker's runs. Its tasks allow
one attempt: an attempt given back that counted would fail them. Operations come in rounds
of one of each, in a seeded order, so even a short run has every kind; a call refused or
unanswered is journaled like any other and counted here, and never stops the campaign.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from ..client import Client
from ..client.types import Claimed
from ..errors import AlreadyExists, NotClaimable, SwarmError
from ..models import JSON
from .effects import perform
from .swarm import MAX_ATTEMPTS, OPERATOR_CAP, Swarm

OPERATIONS = ("emergency", "emergency_interrupt", "preempt_release", "preempt_revoke",
              "release")
#: how many heartbeats past the grace a revoke may take before the operator stops waiting
REVOKE_BEATS = 10
#: the operator's sessions' heartbeat interval, in the workers' heartbeats: long, so a busy
#: campaign process never lets one go offline midway
SESSION_BEATS = 5
#: a claim refused while another emergency's interrupt holds is tried again, this often at
#: most (every half heartbeat): nobody else can run the operator's tasks
CLAIM_TRIES = 240


@dataclass
class Operator:
    swarm: Swarm
    seed: int
    #: the campaign's preemption grace (seconds)
    grace: float
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._kinds: list[str] = []
        self._serial = 0

    @property
    def done(self) -> int:
        """Operations made, answered or not."""
        return self._serial

    def run(self, due: Callable[[], float], stop: threading.Event) -> None:
        """Make operations while `due()` (how many the progress so far calls for) is ahead
        of those made, until `stop`."""
        while not stop.wait(0.05):
            with contextlib.suppress(SwarmError):
                if self.done < due():
                    self.step()

    def step(self) -> None:
        """One operation, the next of this round."""
        if not self._kinds:
            self._kinds = self.rng.sample(OPERATIONS, len(OPERATIONS))
        kind = self._kinds.pop(0)
        self._serial += 1
        n = self._serial
        try:
            if kind.startswith("emergency"):
                with self.swarm.client() as c:
                    self._emergency(c, n, "chaos", interrupt=kind == "emergency_interrupt")
            else:
                self._as_a_session(kind, n)
            self.counts[kind] += 1
        except SwarmError as exc:  # the server was down past the retries: journaled, go on
            self.counts[f"{kind} not answered ({type(exc).__name__})"] += 1

    def _emergency(self, c: Client, n: int, cap: str,
                   interrupt: bool) -> dict[str, Any] | None:
        """Send emergency e<n>; what it preempted ({} if nothing; None when its answer was
        lost: the SDK's retry met the task its first try had added, `already_exists`)."""
        with contextlib.suppress(AlreadyExists):
            placed = c.emergency(cap, id=f"e{n:05d}", title=f"chaos emergency {n}",
                                 input={"ms": self.rng.randint(0, 30)},
                                 max_attempts=MAX_ATTEMPTS, interrupt=interrupt,
                                 idempotency_key=f"{self.swarm.prefix}-emergency-{n}")
            where = ("preempted" if placed["preempted"] else
                     "offered" if placed["assigned_to"] else "queued")
            self.counts[f"emergency {where}"] += 1
            return dict(placed["preempted"] or {})
        self.counts["emergency answer lost, read back"] += 1
        return None

    def _as_a_session(self, kind: str, n: int) -> None:
        """Add o<n>, claim it as a session of the operator's own, let it go as `kind` says,
        send a late complete (it must be refused), run what is left, and leave."""
        tid, sid = f"o{n:05d}", f"chaos-operator-{self.swarm.prefix}-{n}"
        with self.swarm.client() as c:
            with contextlib.suppress(AlreadyExists):
                c.add_task(OPERATOR_CAP, id=tid, input={"ms": 5}, max_attempts=1,
                           idempotency_key=f"{self.swarm.prefix}-task-{n}")
            token = c.register([OPERATOR_CAP], id=sid,
                               heartbeat_interval=SESSION_BEATS * self.swarm.heartbeat,
                               idempotency_key=f"{self.swarm.prefix}-register-{n}")["token"]
            self.swarm.attached[sid] = self.swarm.servers[0].name  # an outage there is its
            me = c.with_token(token)
            try:
                got = self._claim(me, tid)
                if got is None:
                    return
                fence = got["lease"]["fencing_token"]
                self._let_go(c, me, kind, tid, fence, n)
                try:
                    me.complete(tid, fence, {"late": n})
                except SwarmError:
                    self.counts["late complete refused"] += 1
                else:  # the checker reports it too (the journal has it as accepted)
                    self.counts["late complete ACCEPTED"] += 1
                if kind != "release":
                    self._run(me, f"e{n:05d}")
                self._run(me, tid)
            finally:
                with contextlib.suppress(SwarmError):
                    c.leave(sid)

    def _let_go(self, c: Client, me: Client, kind: str, tid: str, fence: int,
                n: int) -> None:
        if kind == "release":
            me.release(tid, fence, f"chaos operator {n}: given back by choice")
            return
        victim = self._emergency(c, n, OPERATOR_CAP, interrupt=False)
        if victim is None:  # the answer was lost: the task says whether it was the victim
            # (its one attempt, claimed once: any preemption is this emergency's)
            victim = {"task_id": tid} if c.get_task(tid)["task"]["preemptions"] else {}
        if victim.get("task_id") != tid:  # the checker says what went wrong
            self.counts[f"{kind}: its task was not preempted"] += 1
            me.release(tid, fence, f"chaos operator {n}: not preempted")
            return
        told = [p for p in me.heartbeat()["directives"].get("preempt", [])
                if p["task_id"] == tid]
        if not told:
            self.counts[f"{kind}: no preempt directive"] += 1
        if kind == "preempt_release":
            me.progress(tid, fence, 0.5, f"chaos operator {n}: checkpoint")
            me.release(tid, fence, f"chaos operator {n}: preempted at 50%")
            return
        # ignore the directive: keep beating (alive all along) until the lease is revoked
        for _ in range(int((self.grace / self.swarm.heartbeat + REVOKE_BEATS) * 2)):
            if c.get_task(tid)["task"]["fencing_token"] > fence:
                return
            me.heartbeat()
            time.sleep(self.swarm.heartbeat / 2)
        self.counts[f"{kind}: not revoked within {REVOKE_BEATS} beats past the grace"] += 1

    def _claim(self, me: Client, tid: str) -> Claimed | None:
        """Claim `tid`, waiting out another emergency's interrupt (bounded)."""
        for _ in range(CLAIM_TRIES):
            try:
                return me.claim(tid)
            except NotClaimable:
                time.sleep(self.swarm.heartbeat / 2)
        self.counts[f"{tid[0]}: could not be claimed"] += 1
        return None

    def _run(self, me: Client, tid: str) -> None:
        """Claim `tid` and run it with the test executor, as a worker would."""
        got = self._claim(me, tid)
        if got is not None:
            result = perform(dict(got["task"]), self.swarm.effects_dir)
            me.complete(tid, got["lease"]["fencing_token"], cast(JSON, result))
