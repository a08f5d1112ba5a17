"""Celery on the Redis broker, library defaults except where noted.

Defaults kept: prefork pool, `task_acks_late=False` (the message is acknowledged when a
worker receives it, before it runs), prefetch multiplier 4, no result backend (results are
not stored). `BENCH_CELERY_ACKS_LATE=1` switches to `task_acks_late=True` (acknowledged
after it runs: the closest to a lease that must be completed).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from . import broker_url, cli, record

app = Celery("bench", broker=broker_url())
# only silences Celery 5's start-up deprecation warning; no effect once connected
app.conf.broker_connection_retry_on_startup = True
app.conf.task_acks_late = os.environ.get("BENCH_CELERY_ACKS_LATE") == "1"

noop: Any = app.task(name="noop")(record)


def enqueue_many(n: int) -> None:
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            noop.apply_async((None,), producer=producer)


def submit(submitted: float | None) -> None:
    noop.apply_async((submitted,))


if __name__ == "__main__":
    cli(submit, enqueue_many)
