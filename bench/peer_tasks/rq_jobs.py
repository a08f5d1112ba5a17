"""RQ with its defaults: the forking `rq.Worker` (a fresh work horse per job), job hashes
and started/finished registries kept with the default result TTL (500 s)."""

from __future__ import annotations

import redis
from rq import Queue

from . import broker_url, cli, record

queue = Queue("default", connection=redis.Redis.from_url(broker_url()))
#: by dotted name: run as `python -m`, this module is `__main__` to the submitting process
NOOP = "peer_tasks.rq_jobs.noop"


def noop(submitted: float | None = None) -> None:
    record(submitted)


def enqueue_many(n: int) -> None:
    for start in range(0, n, 1000):
        batch = [Queue.prepare_data(NOOP, (None,)) for _ in range(start, min(n, start + 1000))]
        queue.enqueue_many(batch)


def submit(submitted: float | None) -> None:
    queue.enqueue(NOOP, submitted)


if __name__ == "__main__":
    cli(submit, enqueue_many)
