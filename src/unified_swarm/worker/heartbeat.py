"""The heartbeat: a thread of its own, so a busy executor (or a blocked event loop) never
starves it. Each beat renews every lease the session holds, releases stray leases (see
leases.py), and hands the answer (directives, lost leases) to the worker's event loop.

It uses its own blocking `Client` and so its own connection: a long-poll in flight on the
worker's connection never delays a beat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..client import Client
from ..client.types import HeartbeatReply, Lease
from ..errors import Conflict, Forbidden, NotFound, SwarmError, Unauthorized
from .leases import LeaseBook, Review


@dataclass(frozen=True, slots=True)
class Beat:
    """One answered heartbeat, as the worker's loop receives it."""

    reply: HeartbeatReply
    review: Review


class SessionGone(Exception):
    """The server no longer knows this session's token (it was removed or revoked)."""


#: called on the heartbeat thread with a Beat, or with SessionGone
Deliver = Callable[["Beat | SessionGone"], None]


class Heartbeat:
    """Beats every `interval` seconds from a daemon thread until `stop()`.

    `status()` says what to report ("draining" once the worker drains, else None);
    `poke()` beats at once (say, to report a drain without waiting an interval).
    """

    def __init__(self, client: Client, interval: float, book: LeaseBook, *,
                 status: Callable[[], str | None], deliver: Deliver,
                 log: logging.LoggerAdapter[logging.Logger], worker_name: str) -> None:
        self.client, self.interval, self.book = client, interval, book
        self._status, self._deliver, self.log = status, deliver, log
        self.worker_name = worker_name
        self._wake = threading.Event()
        self._stopping = False
        self._failing = False
        self.beats = 0
        self._thread = threading.Thread(target=self._run, name="swarm-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating; waits for a beat in flight (bounded by the client's timeout)."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        next_at = time.monotonic() + self.interval
        while True:
            self._wake.wait(max(0.0, next_at - time.monotonic()))
            self._wake.clear()
            if self._stopping:
                return
            # the next beat is due an interval after this one *starts*: a slow answer
            # does not push every later beat (and the lease deadline) back
            next_at = time.monotonic() + self.interval
            try:
                if not self.beat():
                    return
            except Exception:  # a bug must not silently end the beats: log, keep going
                self.log.exception("heartbeat failed unexpectedly")

    def beat(self) -> bool:
        """One heartbeat; False when the session is gone (the thread then ends)."""
        sent = time.monotonic()
        try:
            reply = self.client.heartbeat(self._status())
        except (Unauthorized, NotFound) as exc:
            self._deliver(SessionGone(f"{exc.code}: {exc.message}"))
            return False
        except SwarmError as exc:
            if not self._failing:
                self.log.warning("heartbeat failed (%s: %s); retrying every %.3g s; leases "
                                 "expire %.3g s after the last good one", exc.code,
                                 exc.message, self.interval, 3 * self.interval)
            self._failing = True
            return True
        if self._failing:
            self.log.info("heartbeat answered again")
            self._failing = False
        self.beats += 1
        review = self.book.review(reply["held"], sent, time.monotonic())
        for lease in review.strays:
            self._release(lease, "it did not know it held this lease (the answer to its "
                          "claim was lost)")
        for lease in review.give_back:
            self._release(lease, "its result could not be recorded within the record budget")
        self._deliver(Beat(reply, review))
        return True

    def _release(self, lease: Lease, why: str) -> None:
        task_id, token = lease["task_id"], lease["fencing_token"]
        try:
            self.client.fail(task_id, token, f"released by {self.worker_name}: {why}",
                             retry=True)
        except (Conflict, Forbidden) as exc:  # moved on meanwhile: nothing to give back
            self.log.info("stray lease on %s (token %d) was gone already: %s", task_id,
                          token, exc.message)
        except SwarmError as exc:
            self.log.warning("could not release stray lease on %s (token %d): %s; will "
                             "retry", task_id, token, exc.message)
            return
        else:
            self.log.warning("released the lease on %s (token %d): %s; the task goes back to "
                             "the queue", task_id, token, why)
        self.book.released(lease, time.monotonic())
