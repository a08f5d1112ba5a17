"""The campaign's watchdog tells a stall (no task completed for a while, tasks open) from
a slow run or a finished one."""

from __future__ import annotations

import time

from unified_swarm.chaos.campaign import Watchdog


def status(completed: int, ready: int = 0, in_progress: int = 0) -> dict[str, int]:
    return {"tasks_completed": completed, "tasks_ready": ready, "tasks_pending": 0,
            "tasks_assigned": 0, "tasks_in_progress": in_progress}


def test_no_completion_while_tasks_are_open_is_a_stall() -> None:
    watch = Watchdog(0.05)
    assert not watch.saw(status(10, ready=3))
    time.sleep(0.06)
    assert watch.saw(status(10, ready=3))
    assert watch.stalled and watch.completed == 10


def test_progress_restarts_the_clock() -> None:
    watch = Watchdog(0.05)
    watch.saw(status(10, ready=3))
    time.sleep(0.06)
    assert not watch.saw(status(11, ready=3))
    assert not watch.saw(status(11, in_progress=1))


def test_nothing_open_is_not_a_stall() -> None:
    """Between two submissions the swarm may sit idle: that is not the swarm's fault."""
    watch = Watchdog(0.05)
    watch.saw(status(10))
    time.sleep(0.06)
    assert not watch.saw(status(10))
