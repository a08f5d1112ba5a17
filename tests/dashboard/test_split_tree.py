"""The dashboard draws a split task's tree of subtasks, nested, and follows it live."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import LiveServer
from tests.dashboard.scene import Swarm
from tests.dashboard.test_dashboard import open_dashboard, status_of

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture
def swarm(sqlite_server: LiveServer) -> Iterator[Swarm]:
    s = Swarm(sqlite_server.url, sqlite_server.token)
    yield s
    s.close()


def _split(swarm: Swarm, sid: str, task_id: str, fencing: int, ids: list[str]) -> None:
    swarm.as_session(sid, "POST", f"/work/{task_id}/split", {
        "fencing_token": fencing, "subtasks": [{"id": i, "type": "build"} for i in ids]})


def test_the_split_tree_is_drawn_and_follows_the_subtasks(
        page: Page, sqlite_server: LiveServer, swarm: Swarm) -> None:
    swarm.register("alpha", [], "Alpha", max_concurrent_tasks=5)
    swarm.add({"id": "big", "type": "build", "title": "A big job", "estimated_hours": 20})
    _split(swarm, "alpha", "big", swarm.claim("alpha", "big"), ["part-a", "part-b"])
    _split(swarm, "alpha", "part-a", swarm.claim("alpha", "part-a"), ["part-a1"])
    open_dashboard(page, sqlite_server)
    assert status_of(page, "big") == "waiting"
    assert "of big" in page.locator("#queue [data-task-id='part-b']").inner_text()

    page.locator("#queue [data-task-id='big']").click()
    tree = page.locator("#detail [data-tree='split']").first
    tree.wait_for()
    tree.locator("[data-tree-id='part-a'] [data-tree-id='part-a1']").wait_for()  # nested
    assert tree.locator("[data-tree-id='part-b'] [data-status='ready']").count() == 1

    fencing = swarm.claim("alpha", "part-b")
    swarm.complete("alpha", "part-b", fencing, "b done")
    tree.locator("[data-tree-id='part-b'] [data-status='completed']").wait_for()
    fencing = swarm.claim("alpha", "part-a1")
    swarm.complete("alpha", "part-a1", fencing, "a1 done")
    page.locator("#queue [data-task-id='big'] [data-status='completed']").wait_for()
    page.locator("#detail pre.result", has_text="a1 done").wait_for()

    page.locator("#detail [data-tree-id='part-a'] button").first.click()
    page.locator("#detail [data-detail-id='part-a']").wait_for()
    page.locator("#detail [data-parent='big']").wait_for()  # and back up to its parent
