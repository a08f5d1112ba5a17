"""Huey's RedisHuey with its defaults: blocking dequeue (BRPOP, 1 s read timeout), results
on (a `None` result is not stored), the periodic scheduler on."""

from __future__ import annotations

from typing import Any

from huey import RedisHuey

from . import broker_url, cli, record

huey = RedisHuey("bench", url=broker_url())

noop: Any = huey.task(name="noop")(record)


def enqueue_many(n: int) -> None:
    for _ in range(n):
        noop(None)


def submit(submitted: float | None) -> None:
    noop(submitted)


if __name__ == "__main__":
    cli(submit, enqueue_many)
