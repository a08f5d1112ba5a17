"""A few JSON calls to the server over urllib: what the hooks need, and no more.

The hooks run at every prompt and every stop of an agent CLI, so they import neither httpx
nor pydantic (the SDK's client); urllib starts in milliseconds.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


class CallFailed(Exception):
    """The server could not be reached, or answered with an error status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # the decoded JSON (None for an empty body)


def call(url: str, method: str, path: str, token: str | None, body: Any = None,
         timeout: float = 5.0) -> Answer:
    """One request; a 2xx is an Answer, anything else CallFailed (with the status and the
    server's error message when it sent one)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return Answer(response.status, json.loads(raw) if raw else None)
    except urllib.error.HTTPError as exc:
        raise CallFailed(f"{method} {path}: {exc.code} {_message(exc)}", exc.code) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CallFailed(f"{method} {path}: cannot reach {url} ({reason})") from None


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return exc.reason or ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    return str(exc.reason or "")
