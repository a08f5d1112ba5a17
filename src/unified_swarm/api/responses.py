"""JSON responses rendered with orjson, and the one error shape."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..errors import SwarmError
from ..jsonutil import dumpb


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
