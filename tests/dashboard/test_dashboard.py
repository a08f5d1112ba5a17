"""The dashboard in a real browser against a real server: it loads, shows what the test
made, follows the event stream without reloading, and adds and cancels tasks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import LiveServer
from tests.dashboard.scene import Swarm, build_scene

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


def status_of(page: Page, task_id: str) -> str:
    return page.locator(f"#queue [data-task-id='{task_id}'] [data-status]").inner_text()


def test_index_is_static_and_strict(sqlite_server: LiveServer) -> None:
    r = httpx.get(f"{sqlite_server.url}/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    js = httpx.get(f"{sqlite_server.url}/dashboard/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]


def test_shows_a_session_and_follows_a_task_live(page: Page, sqlite_server: LiveServer,
                                                 swarm: Swarm) -> None:
    swarm.register("alpha", ["build"], "Alpha builder")
    swarm.add({"id": "job-1", "type": "build", "title": "Compile everything"})
    open_dashboard(page, sqlite_server)
    assert "token" not in page.url  # the link's token is dropped from the address bar
    assert page.locator("#pools-card").is_hidden()  # this server scales no pools
    row = page.locator("#sessions [data-session-id='alpha']")
    assert "Alpha builder" in row.inner_text() and "idle" in row.inner_text()
    assert status_of(page, "job-1") == "ready"
    page.evaluate("window.__same_page = true")

    fencing = swarm.claim("alpha", "job-1")
    page.locator("#queue [data-task-id='job-1'] [data-status='in_progress']").wait_for()
    page.locator("#sessions [data-session-id='alpha'] [data-status='busy']").wait_for()
    swarm.complete("alpha", "job-1", fencing, {"artifacts": 3})
    page.locator("#queue [data-task-id='job-1'] [data-status='completed']").wait_for()
    page.locator("#feed li", has_text="task.completed").wait_for()
    assert page.evaluate("window.__same_page") is True  # no reload happened

    page.locator("#queue [data-task-id='job-1']").click()
    detail = page.locator("#detail [data-detail-id='job-1']")
    detail.wait_for()
    page.locator("#detail pre.result", has_text='"artifacts": 3').wait_for()
    assert "alpha" in page.locator("#detail table").inner_text()


def test_add_a_task_from_the_page(page: Page, sqlite_server: LiveServer, swarm: Swarm) -> None:
    open_dashboard(page, sqlite_server)
    form = page.locator("#add-task")
    form.locator("[name=type]").fill("build")
    form.locator("[name=id]").fill("from-page")
    form.locator("[name=title]").fill("Made in the browser")
    form.locator("[name=priority]").select_option("9")
    form.locator("[name=input]").fill('{"prompt": "hello"}')
    form.locator("button[type=submit]").click()
    page.locator("#queue [data-task-id='from-page'] [data-status='ready']").wait_for()
    page.locator("#detail [data-detail-id='from-page']").wait_for()
    task = swarm.op("GET", "/work/from-page")["task"]
    assert (task["title"], task["priority"], task["input"]) == (
        "Made in the browser", 9, {"prompt": "hello"})

    form.locator("[name=type]").fill("build")
    form.locator("[name=input]").fill("{not json")
    form.locator("button[type=submit]").click()
    page.locator("#add-msg.error", has_text="not JSON").wait_for()


def test_cancel_a_task_from_the_page(page: Page, sqlite_server: LiveServer,
                                     swarm: Swarm) -> None:
    swarm.add({"id": "doomed", "type": "build"},
              {"id": "after-doomed", "type": "build", "dependencies": ["doomed"]})
    open_dashboard(page, sqlite_server)
    page.locator("#graph [data-node-id='doomed']").click()
    page.locator("#detail [data-detail-id='doomed']").wait_for()
    page.locator("#detail [data-action='cancel']").click()
    page.locator("#detail [data-action='confirm-cancel']").click()
    page.locator("#queue [data-task-id='doomed'] [data-status='cancelled']").wait_for()
    page.locator("#queue [data-task-id='after-doomed'] [data-status='blocked']").wait_for()
    assert swarm.op("GET", "/work/doomed")["task"]["status"] == "cancelled"


def test_asks_for_the_token_once_and_refuses_a_wrong_one(
        page: Page, sqlite_server: LiveServer, page_errors: list[str]) -> None:
    page.goto(sqlite_server.url + "/")
    page.locator("#login").wait_for()
    page.locator("#login-token").fill("not-the-token")
    page.locator("#login-form button").click()
    page.locator("#login-msg", has_text="refused").wait_for()
    assert page_errors and all("401" in e for e in page_errors)  # the browser logs the 401
    page_errors.clear()
    page.locator("#login-token").fill(sqlite_server.token)
    page.locator("#login-form button").click()
    page.locator("#conn[data-state='live']").wait_for()
    page.reload()  # remembered: no second prompt
    page.locator("#conn[data-state='live']").wait_for()
    assert page.locator("#login").is_hidden()


def restarted(server: LiveServer, **changes: str) -> LiveServer:
    """The same data directory served again on the same port (as after a restart)."""
    import uvicorn

    again = LiveServer(server.settings.replace(**changes))
    config = uvicorn.Config(again.app, host="127.0.0.1", port=server.settings.port,
                            log_level="warning", lifespan="on")
    again.server, again.url = uvicorn.Server(config), server.url
    return again.start()


def test_reconnects_after_a_restart_and_resumes(page: Page, sqlite_server: LiveServer,
                                                swarm: Swarm, page_errors: list[str]) -> None:
    swarm.register("beta", ["build"])
    swarm.add({"id": "before", "type": "build"})
    open_dashboard(page, sqlite_server)
    page.evaluate("window.__same_page = true")
    sqlite_server.stop()
    page.locator("#conn[data-state='reconnecting']").wait_for()
    again = restarted(sqlite_server)
    try:
        swarm.add({"id": "after", "type": "build"})
        page.locator("#queue [data-task-id='after'] [data-status='ready']").wait_for()
        page.locator("#conn[data-state='live']").wait_for()
        assert page.evaluate("window.__same_page") is True
        seqs = page.locator("#feed li").evaluate_all("els => els.map(e => +e.dataset.seq)")
        assert seqs == list(range(len(seqs), 0, -1))  # every event once, none missing
        page.close()  # before the server goes: its reconnect attempts are not errors
    finally:
        again.stop()
    # the browser logs its failed attempts while the server was down; nothing else
    assert all("ERR_CONNECTION_REFUSED" in e or "WebSocket" in e for e in page_errors)
    page_errors.clear()


def test_a_changed_token_brings_back_the_prompt(page: Page, sqlite_server: LiveServer,
                                                page_errors: list[str]) -> None:
    open_dashboard(page, sqlite_server)
    sqlite_server.stop()
    again = restarted(sqlite_server, token="a-new-operator-token")
    try:
        page.locator("#login-msg", has_text="refused").wait_for(timeout=20_000)
        assert page.evaluate("localStorage.getItem('swarm.token')") is None
        page.close()
    finally:
        again.stop()
    page_errors.clear()  # the refused handshakes and the 401 are logged by the browser


def test_a_full_scene_renders(page: Page, sqlite_server: LiveServer, swarm: Swarm,
                              tmp_path: Path) -> None:
    build_scene(swarm)
    open_dashboard(page, sqlite_server)
    page.locator("#sessions [data-session-id='marketing'] [data-status='offline']").wait_for()
    for task_id, status in [("design-api", "completed"), ("build-api", "in_progress"),
                            ("integration", "pending"), ("scrape-forums", "failed"),
                            ("old-campaign", "cancelled"), ("campaign-followup", "blocked")]:
        assert status_of(page, task_id) == status.replace("_", " ")
    assert page.locator("#graph [data-node-id]").count() == 9
    assert page.locator("#graph path.edge").count() == 6
    page.locator("#knowledge [data-topic='api/contract']").wait_for()
    page.locator("[data-metric='completed'] .metric-value", has_text="2").wait_for()
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


def test_shows_who_is_fast_at_what(page: Page, sqlite_server: LiveServer,
                                   swarm: Swarm) -> None:
    """The learned speeds, per session and capability, follow outcomes live; a session
    whose breaker opened says so."""
    swarm.register("quick", ["build"], "Quick")
    swarm.register("steady", ["build"], "Steady")
    open_dashboard(page, sqlite_server)
    page.locator("#skills .empty").wait_for()
    for n, sid in enumerate(["quick", "steady", "quick", "steady"]):
        swarm.add({"id": f"s{n}", "type": "build"})
        token = swarm.claim(sid, f"s{n}")
        swarm.complete(sid, f"s{n}", token, None)
    # the cell shows up with quick's first outcome: wait for its second
    cell = page.locator("#skills [data-session-id='quick'] "
                        "td[data-capability='build'][title*='2 attempts']")
    cell.wait_for()
    assert "\u00d7" in cell.inner_text() and "%" in cell.inner_text()  # the speed, a x
    for n in range(5):  # five failures in a row open the breaker
        swarm.add({"id": f"f{n}", "type": "build", "max_attempts": 1})
        swarm.fail("steady", f"f{n}", swarm.claim("steady", f"f{n}"), "boom")
    page.locator("#sessions [data-session-id='steady'] .quarantined").wait_for()


def test_shows_what_agents_spent_and_who_waits_on_the_api(
        page: Page, sqlite_server: LiveServer, swarm: Swarm) -> None:
    swarm.register("alpha", ["build"], "Alpha builder")
    swarm.add({"id": "job-1", "type": "build"})
    open_dashboard(page, sqlite_server)
    fencing = swarm.claim("alpha", "job-1")
    swarm.as_session("alpha", "POST", "/work/progress", {
        "task_id": "job-1", "fencing_token": fencing, "progress": 0.2,
        "rate_limit": {"attempt": 1, "retry_in_s": 4, "error_status": 429,
                       "error": "rate_limit"}})
    # live, from the event: the session's row says it waits on the API
    badge = page.locator("#sessions [data-session-id='alpha'] .rate-limited")
    badge.wait_for()
    assert "rate_limit 429" in (badge.get_attribute("title") or "")
    swarm.as_session("alpha", "POST", "/work/complete", {
        "task_id": "job-1", "fencing_token": fencing, "result": 1,
        "usage": {"cost_usd": 0.0321, "input_tokens": 1500, "output_tokens": 500,
                  "num_turns": 2}})
    badge.wait_for(state="detached")
    spent = page.locator("#metrics [data-metric='spent']")
    spent.wait_for()
    page.locator("#metrics [data-metric='spent']", has_text="$0.0321").wait_for()
    assert "2.0k tokens · 1 runs" in spent.inner_text()
    page.locator("#sessions [data-session-id='alpha'] .spent", has_text="$0.0321").wait_for()
