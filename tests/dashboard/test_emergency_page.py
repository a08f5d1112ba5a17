"""The emergency banner and the questions panel in a real browser: an emergency is
impossible to miss until it ends, and a holder's question is answered from the page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import LiveServer
from tests.dashboard.scene import Swarm

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture
def swarm(sqlite_server: LiveServer) -> Iterator[Swarm]:
    s = Swarm(sqlite_server.url, sqlite_server.token)
    yield s
    s.close()


def open_dashboard(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/#token={server.token}")
    page.locator("#conn[data-state='live']").wait_for()


def test_the_emergency_banner_shows_until_the_task_ends(page: Page, sqlite_server: LiveServer,
                                                        swarm: Swarm) -> None:
    swarm.register("medic", ["ops"], "Medic")
    open_dashboard(page, sqlite_server)
    assert page.locator("#emergency").is_hidden()
    placed = swarm.op("POST", "/swarm/emergency",
                      {"task": {"id": "outage", "type": "ops", "title": "Site is down"}})
    assert placed["assigned_to"] == "medic"
    banner = page.locator("#emergency [data-emergency-id='outage']")
    banner.wait_for()
    assert "EMERGENCY" in banner.inner_text() and "Site is down" in banner.inner_text()
    assert page.locator("#emergency").get_attribute("style") is None  # CSP: classes only
    fencing = swarm.claim("medic", "outage")
    page.locator("#emergency [data-status='in_progress']").wait_for()
    swarm.complete("medic", "outage", fencing, "fixed")
    page.locator("#emergency").wait_for(state="hidden")


def test_a_question_is_answered_from_the_page(page: Page, sqlite_server: LiveServer,
                                              swarm: Swarm) -> None:
    swarm.register("asker", ["build"], "Asker")
    swarm.add({"id": "early", "type": "build"}, {"id": "later", "type": "build"})
    fencing = swarm.claim("asker", "early")
    swarm.as_session("asker", "POST", "/work/input-request",
                     {"task_id": "early", "fencing_token": fencing, "question": "Which DB?"})
    open_dashboard(page, sqlite_server)  # a question asked before the page loaded
    form = page.locator("#questions [data-question-id='early']")
    form.locator(".question", has_text="Which DB?").wait_for()
    form.locator("[name=answer]").fill("postgres")
    form.locator("button[type=submit]").click()
    page.locator("#questions-card").wait_for(state="hidden")
    task = swarm.op("GET", "/work/early")["task"]
    assert task["status"] == "in_progress" and task["assigned_to"] == "asker"
    assert task["context"]["notes"][-1]["text"] == "postgres"
    # one asked while the page is open arrives with its event
    swarm.complete("asker", "early", fencing, "ok")
    f2 = swarm.claim("asker", "later")
    swarm.as_session("asker", "POST", "/work/input-request",
                     {"task_id": "later", "fencing_token": f2, "question": "Ship it?"})
    page.locator("#questions [data-question-id='later'] .question",
                 has_text="Ship it?").wait_for()
