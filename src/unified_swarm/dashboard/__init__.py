"""The dashboard: one static page (HTML, plain ES modules, CSS; no build step) served at `/`.

The page itself needs no token: it holds no data. It reads the operator token from the link
`swarm server` prints (`/#token=...`: a URL fragment never reaches the server or its logs)
or asks once, keeps it in localStorage, and sends it with every API call and on the event
stream (as a WebSocket subprotocol, so it is not in any request line).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
#: strict: only our own scripts, styles and connections (CSP3 'self' covers ws:// same-host)
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


def mount(app: FastAPI) -> None:
    """Serve `/` and the page's assets under `/dashboard/`."""
    app.include_router(router)
    app.mount("/dashboard", StaticFiles(directory=STATIC), name="dashboard")
