"""The worker's ledger of leases, checked against the `held` list of every heartbeat.

Two things can differ between what a worker believes it holds and what the server says:

- a **stray** lease: the server lists a lease this worker never learned of, because the
  answer to its claim was lost (a timeout, a dropped connection). Unless it is released,
  the task sits behind a live session whose heartbeats keep renewing the lease. The worker
  fails it with `retry: true` so it goes back to the queue.
- a **lost** lease: the worker runs a task the server no longer lists (the worker was
  paused or cut off past its lease, the task went to another session). Its result will be
  refused; the worker logs it and lets the fencing token decide.

Both checks race with claims and outcomes in flight, so the ledger never calls a lease stray
while a claim that might have produced it is still in flight, and never calls an outcome
recorded here after the heartbeat was sent a stray.

A lease whose outcome this worker sent but never heard recorded (the server was unreachable
until the lease seemed over) is **unsettled**, never a stray: the work is done, so while the
server still lists the lease the outcome is sent again; once a heartbeat no longer lists it,
it is **gone** (the result was lost, and the worker says so). Only an outcome the worker
gave up on after its whole budget, with the lease still held, is given back.

The ledger also estimates when each lease ends (`lease_end`): a lease TTL after the worker
learned of it, or after the last heartbeat listing it was sent (the server renewed it after
that). Thread-safe: the heartbeat thread reads it, the event loop writes it. Times are
`time.monotonic()` seconds, passed in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..client.types import Lease

Key = tuple[str, int]  # (task id, fencing token): one attempt
#: how many concluded attempts are remembered (to tell them from strays)
REMEMBER = 10_000


@dataclass(slots=True)
class Review:
    """What one heartbeat's `held` list showed: leases to release, leases lost, outcomes to
    send again, outcomes lost for good, leases to give back."""

    strays: list[Lease] = field(default_factory=list)
    lost: list[Key] = field(default_factory=list)
    unsettled: list[Key] = field(default_factory=list)
    gone: list[Key] = field(default_factory=list)
    give_back: list[Lease] = field(default_factory=list)


class LeaseBook:
    """Which attempts this worker runs, has concluded, and which claims are in flight."""

    def __init__(self, ttl: float = 0.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._running: dict[Key, float] = {}  # attempt -> when this worker learned of it
        self._ends: dict[Key, float] = {}  # attempt -> when its lease ends, at the earliest
        self._unsettled: dict[Key, float] = {}  # outcome sent, not heard recorded -> when
        self._abandoned: set[Key] = set()  # outcome given up on, lease still held: give back
        self._concluded: OrderedDict[Key, float] = OrderedDict()  # attempt -> when recorded
        self._calls: dict[int, float] = {}  # claim calls in flight -> when each started
        self._suspects: dict[Key, float] = {}  # unknown leases -> when first listed
        self._reported_lost: set[Key] = set()
        self._next_call = 0

    def call_started(self, now: float) -> int:
        """A call that may claim a task (request or claim) is about to be sent."""
        with self._lock:
            self._next_call += 1
            self._calls[self._next_call] = now
            return self._next_call

    def call_ended(self, call: int, claimed: Key | None, now: float) -> None:
        """That call ended, with the attempt it claimed (None: nothing, or no answer)."""
        self.calls_ended(call, () if claimed is None else (claimed,), now)

    def calls_ended(self, call: int, claimed: Iterable[Key], now: float) -> None:
        """That call ended, with every attempt it claimed (a batch, or a complete that
        claimed the next task)."""
        with self._lock:
            self._calls.pop(call, None)
            for key in claimed:
                self._running[key] = now
                self._ends[key] = now + self.ttl
                self._suspects.pop(key, None)

    def concluded(self, key: Key, now: float, *, settled: bool = True) -> None:
        """This worker is done with the attempt: its outcome was recorded or refused
        (`settled`), or sent without an answer until the lease seemed over (not settled)."""
        with self._lock:
            self._running.pop(key, None)
            self._reported_lost.discard(key)
            if settled:
                self._unsettled.pop(key, None)
                self._ends.pop(key, None)
            else:
                self._unsettled[key] = now
            self._concluded[key] = now
            self._concluded.move_to_end(key)
            while len(self._concluded) > REMEMBER:
                self._concluded.popitem(last=False)

    def abandon(self, key: Key) -> None:
        """Its outcome was given up on for good while the lease is still held: the next
        heartbeat gives the lease back."""
        with self._lock:
            if self._unsettled.pop(key, None) is not None:
                self._abandoned.add(key)

    def lease_end(self, key: Key) -> float:
        """When the attempt's lease ends at the earliest (-inf for one not known here)."""
        with self._lock:
            return self._ends.get(key, float("-inf"))

    def running(self) -> list[Key]:
        with self._lock:
            return list(self._running)

    def review(self, held: Iterable[Lease], sent_at: float, now: float) -> Review:
        """Compare a heartbeat's `held` (the heartbeat was sent at `sent_at`; its answer
        read at `now`) with this ledger."""
        listed = {(lease["task_id"], lease["fencing_token"]): lease for lease in held}
        out = Review()
        with self._lock:
            for key in list(self._suspects):
                if key not in listed:
                    del self._suspects[key]
            self._unlisted(listed, sent_at, out)
            for key, lease in listed.items():
                if key in self._running or key in self._unsettled:
                    # renewed by this beat: the server handled it after it was sent
                    self._ends[key] = max(self._ends.get(key, 0.0), sent_at + self.ttl)
                    if key in self._unsettled:
                        out.unsettled.append(key)  # done here, not heard recorded: resend
                    continue
                if key in self._abandoned:
                    out.give_back.append(lease)
                    continue
                done_at = self._concluded.get(key)
                if done_at is not None and done_at >= sent_at:
                    continue  # its outcome reached the server after this heartbeat did
                first = self._suspects.setdefault(key, now)
                # a claim sent before we first saw the lease may yet answer with it
                if all(started >= first for started in self._calls.values()):
                    out.strays.append(lease)
            for key, learned in self._running.items():
                if learned < sent_at and key not in listed and key not in self._reported_lost:
                    self._reported_lost.add(key)
                    out.lost.append(key)
        return out

    def _unlisted(self, listed: dict[Key, Lease], sent_at: float, out: Review) -> None:
        """Unsettled outcomes whose lease a beat sent after them no longer lists: gone."""
        for key, since in list(self._unsettled.items()):
            if key not in listed and since < sent_at:
                del self._unsettled[key]
                self._ends.pop(key, None)
                out.gone.append(key)
        self._abandoned &= listed.keys()

    def released(self, lease: Lease, now: float) -> None:
        """A stray lease was given back: never release it twice."""
        key = (lease["task_id"], lease["fencing_token"])
        with self._lock:
            self._suspects.pop(key, None)
            self._abandoned.discard(key)
        self.concluded(key, now)
