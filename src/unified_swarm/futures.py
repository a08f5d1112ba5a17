"""Futures given their outcome by another thread.

A thread that did the work (the SQLite writer, a worker's Python task) hands its outcome to
the event loop with `loop.call_soon_threadsafe(settle, future, value, error)`: by then the
awaiting side may have given up (its await was cancelled), and the outcome is dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any


def settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    """Give `future` its result, or `error` when there is one, unless it is done already
    (cancelled: nobody waits for it any more). Runs on the future's loop."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
