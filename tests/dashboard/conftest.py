"""A real browser for the dashboard: Debian's Chromium, headless, driven by Playwright.

Never downloads a browser. Skipped when /usr/bin/chromium is missing locally; fails when
`CI` is set, so CI cannot go green by skipping (the same rule as the redis fixture).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _need_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing and CI is set: run scripts/system-deps.sh")
        pytest.skip("/usr/bin/chromium is not installed (scripts/system-deps.sh installs it)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is missing and CI is set: pip install -e '.[dev]'")
        pytest.skip("playwright is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught exceptions and console errors of the page; a test may remove the ones it
    caused on purpose."""
    return []


@pytest.fixture
def page(browser: Browser, sqlite_server: LiveServer, page_errors: list[str]) -> Iterator[Page]:
    """A fresh profile per test, closed before its server stops; any error in the page
    fails the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.on("console", lambda msg: page_errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    assert not page_errors, f"errors in the page: {page_errors}"
