"""The server answers over real HTTP on both stores."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer


def test_healthz_needs_no_token(live_server: LiveServer) -> None:
    r = httpx.get(f"{live_server.url}/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["store"] == live_server.settings.store_kind
