"""A tiny raw-HTTP driver for wire-contract tests (deliberately not the SDK)."""

from __future__ import annotations

from typing import Any

import httpx


class Wire:
    def __init__(self, url: str, token: str | None) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30)

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.call(method, path, **kw)
        assert r.status_code < 300, (r.status_code, r.text)
        return r.json() if r.content else None

    def register(self, sid: str, caps: list[str], **kw: Any) -> str:
        body = self.ok("POST", "/session/register", json={"id": sid, "capabilities": caps, **kw})
        token: str = body["token"]
        return token
