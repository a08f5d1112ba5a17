"""A small swarm in several states, built over the public HTTP API (for the browser tests
and the README screenshot)."""

from __future__ import annotations

from typing import Any

import httpx


class Swarm:
    """Operator and session calls against one server."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.http = httpx.Client(base_url=url, timeout=10)
        self.tokens: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    def op(self, method: str, path: str, body: Any = None) -> Any:
        r = self.http.request(method, path, json=body,
                              headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        return r.json()

    def as_session(self, sid: str, method: str, path: str, body: Any = None) -> Any:
        r = self.http.request(method, path, json=body,
                              headers={"Authorization": f"Bearer {self.tokens[sid]}"})
        r.raise_for_status()
        return r.json()

    def register(self, sid: str, caps: list[str], name: str | None = None,
                 **extra: Any) -> dict[str, Any]:
        body = {"id": sid, "capabilities": caps, "name": name or sid, **extra}
        r = self.op("POST", "/session/register", body)
        self.tokens[sid] = r["token"]
        session: dict[str, Any] = r["session"]
        return session

    def add(self, *tasks: dict[str, Any]) -> list[dict[str, Any]]:
        added: list[dict[str, Any]] = self.op("POST", "/work", {"tasks": list(tasks)})["tasks"]
        return added

    def claim(self, sid: str, task_id: str) -> int:
        token: int = self.as_session(sid, "POST", "/work/claim",
                                     {"task_id": task_id})["lease"]["fencing_token"]
        return token

    def complete(self, sid: str, task_id: str, fencing: int, result: Any = None) -> None:
        self.as_session(sid, "POST", "/work/complete",
                        {"task_id": task_id, "fencing_token": fencing, "result": result})

    def fail(self, sid: str, task_id: str, fencing: int, error: str) -> None:
        self.as_session(sid, "POST", "/work/fail", {"task_id": task_id, "fencing_token": fencing,
                                                     "error": error, "retry": False})

    def progress(self, sid: str, task_id: str, fencing: int, value: float, msg: str) -> None:
        self.as_session(sid, "POST", "/work/progress", {
            "task_id": task_id, "fencing_token": fencing, "progress": value, "message": msg})


def build_scene(swarm: Swarm) -> None:
    """Five sessions, a dependency graph of eight tasks in every state, two topics."""
    swarm.register("architect", ["architect", "research"], "Claude · architect",
                   metadata={"agent": "claude-code"})
    swarm.register("builder-1", ["build"], "Claude · builder 1")
    swarm.register("builder-2", ["build"], "Claude · builder 2")
    swarm.register("researcher", ["research"], "Research agent")
    swarm.register("marketing", ["marketing"], "Marketing agent")
    swarm.add(
        {"id": "design-api", "type": "architect", "title": "Design the public API",
         "priority": 9, "estimated_hours": 3, "input": {"prompt": "REST + events"}},
        {"id": "build-api", "type": "build", "title": "Implement the API handlers",
         "dependencies": ["design-api"], "priority": 8},
        {"id": "build-ui", "type": "build", "title": "Dashboard page",
         "dependencies": ["design-api"], "priority": 7},
        {"id": "integration", "type": "build", "title": "End-to-end tests",
         "dependencies": ["build-api", "build-ui"]},
        {"id": "launch-copy", "type": "marketing", "title": "Launch announcement",
         "dependencies": ["integration"], "roi": "high"},
        {"id": "market-scan", "type": "research", "title": "Survey agent orchestrators"},
        {"id": "scrape-forums", "type": "research", "title": "Scrape forum threads",
         "max_attempts": 1},
        {"id": "old-campaign", "type": "marketing", "title": "Retired campaign"},
        {"id": "campaign-followup", "type": "marketing", "title": "Campaign follow-up",
         "dependencies": ["old-campaign"]},
    )
    done = swarm.claim("architect", "design-api")
    swarm.complete("architect", "design-api", done,
                   {"endpoints": 21, "doc": "docs/api.md", "notes": "events are resumable"})
    api = swarm.claim("builder-1", "build-api")
    swarm.progress("builder-1", "build-api", api, 0.6, "handlers 13/21")
    swarm.claim("builder-2", "build-ui")
    scan = swarm.claim("researcher", "market-scan")
    swarm.complete("researcher", "market-scan", scan, {"found": 12})
    scrape = swarm.claim("researcher", "scrape-forums")
    swarm.fail("researcher", "scrape-forums", scrape, "HTTP 429 from the forum, gave up")
    swarm.op("POST", "/work/old-campaign/cancel", {"reason": "campaign retired"})
    swarm.op("PUT", "/knowledge/api/contract", {
        "content": {"version": 2, "events": "ws /swarm/realtime"}, "tags": ["api"]})
    swarm.op("PUT", "/knowledge/market/competitors", {
        "content": ["celery", "rq", "arq"], "tags": ["research"]})
    swarm.op("DELETE", "/session/marketing")
