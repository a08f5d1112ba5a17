"""Dramatiq's RedisBroker with its default middleware (AgeLimit, TimeLimit,
ShutdownNotifications, Callbacks, Pipelines, Retries); messages are acknowledged after the
actor returns. An idle consumer polls with a backoff of up to `worker_timeout` (1 s)."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from . import broker_url, cli, record

broker = RedisBroker(url=broker_url())  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop")
def noop(submitted: float | None = None) -> None:
    record(submitted)


def enqueue_many(n: int) -> None:
    for _ in range(n):
        noop.send(None)


def submit(submitted: float | None) -> None:
    noop.send(submitted)


if __name__ == "__main__":
    cli(submit, enqueue_many)
