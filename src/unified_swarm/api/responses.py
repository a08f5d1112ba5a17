"""JSON responses rendered with orjson, and the one error shape."""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import Response

from ..errors import SwarmError
from ..jsonutil import dumpb

log = logging.getLogger("unified_swarm.app")


class JSONResp(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumpb(content)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(exc: SwarmError) -> JSONResp:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return JSONResp(error_body(exc.code, exc.message), status_code=exc.status, headers=headers)


def swarm_error_response(exc: SwarmError) -> JSONResp:
    """A SwarmError raised by a handler, as the app answers it (a server fault logged)."""
    if exc.status >= 500 and exc.status != 503:
        log.error("internal error: %s", exc.message)
    return error_response(exc)
