"""Take the README's screenshot of the dashboard: `python -m tests.dashboard.screenshot`.

Starts a server on a temporary data directory, builds the scene of `scene.py` over HTTP,
opens the page in Debian's Chromium (never a downloaded browser) and writes a PNG
(default docs/dashboard.png).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.conftest import LiveServer
from tests.dashboard.conftest import ARGS, CHROMIUM
from tests.dashboard.scene import Swarm, build_scene
from unified_swarm.config import Settings


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Settings(data_dir=Path(tmp), token="screenshot", rate_limit=0))
        server.start()
        swarm = Swarm(server.url, server.token)
        try:
            build_scene(swarm)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 1000},
                                        device_scale_factor=1, color_scheme="light")
                page.goto(f"{server.url}/#token={server.token}")
                page.locator("#conn[data-state='live']").wait_for()
                page.locator("#queue [data-task-id='build-api']").click()
                page.locator("#detail [data-detail-id='build-api']").wait_for()
                page.wait_for_timeout(500)  # let the refetches after the replay settle
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            swarm.close()
            server.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/dashboard.png"))
