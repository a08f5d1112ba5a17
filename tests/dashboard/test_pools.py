"""The dashboard's Pools card, in Chromium, against a server scaling two pools: each pool's
current and desired size and why, a pin showing up live, and a crash-looping pool flagged."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import LiveServer
from tests.scaling.helpers import write_pools
from unified_swarm.config import Settings

from .test_dashboard import open_dashboard

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The shared `sqlite_server` (and so `page`) serves these pools."""
    pools = write_pools(tmp_path / "pools.toml", {
        "review": {"capabilities": ["review"], "min": 1, "max": 3, "spawner": "none",
                   "interval": 0.2},
        "broken": {"min": 1, "max": 2, "interval": 0.05, "command": ["sh", "-c", "exit 3"]}})
    return Settings(data_dir=tmp_path / "swarm", token="operator-token", rate_limit=0,
                    pools=pools)


def test_pools_show_size_reason_pin_and_crash_loop(page: Page,
                                                   sqlite_server: LiveServer) -> None:
    open_dashboard(page, sqlite_server)
    review = page.locator("#pools [data-pool='review']")
    review.wait_for()
    assert page.locator("#pools-card").is_visible()
    assert review.locator("[data-field='desired']").inner_text() == "1"
    assert "min 1" in review.locator("[data-field='why']").inner_text()

    r = httpx.post(f"{sqlite_server.url}/swarm/pools/review/scale", json={"desired": 3},
                   headers={"Authorization": f"Bearer {sqlite_server.token}"})
    assert r.status_code == 200
    # live: the pool.pinned event brings the new decision without a reload
    page.locator("#pools [data-pool='review'] [data-field='desired']", has_text="3").wait_for()
    assert "pinned" in review.inner_text()

    broken = page.locator("#pools [data-pool='broken'] [data-field='crashloop']")
    broken.wait_for(timeout=60_000)
    assert "failed starts in a row (exit 3)" in broken.inner_text()
