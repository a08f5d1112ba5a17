"""The composition root: `create_app(settings)` builds the store, the orchestrator and the
FastAPI app; the lifespan opens and closes them. No module globals."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from . import __version__, dashboard
from .api import knowledge, metrics, realtime, scaling, sessions, swarm, work
from .api.events_hub import EventHub
from .api.fastlane import FastLane
from .api.guard import Guard
from .api.responses import JSONResp, error_body, swarm_error_response
from .config import Settings
from .core.orchestrator import Orchestrator
from .errors import SwarmError
from .mcp.http import McpEndpoint
from .scaling.factory import make_scaler
from .store import make_store
from .store.base import Store
from .tokens import operator_token

log = logging.getLogger("unified_swarm.app")
HTTP_CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    run_loop: bool = True,
) -> FastAPI:
    """Build the app. Tests pass a store or a clock; the server passes neither."""
    store = store or make_store(settings)
    token, _ = operator_token(settings)
    orch = Orchestrator(store, settings, token, clock)
    hub = EventHub(orch)
    scaler = make_scaler(orch, settings, token)
    mcp = McpEndpoint(orch, settings.max_body_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        await orch.start(run_loop=run_loop)
        hub.open()
        if scaler is not None and run_loop:
            scaler.start()
        try:
            async with mcp.running(app):
                yield
        finally:
            hub.close()
            if scaler is not None:
                await scaler.stop()
            await orch.stop()
            await store.close()

    app = FastAPI(title="Unified Swarm", version=__version__, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.orchestrator = orch
    app.state.hub = hub
    app.state.scaler = scaler
    app.state.metrics = metrics.make_metrics(orch, hub)
    for module in (sessions, work, knowledge, swarm, scaling, realtime, metrics):
        app.include_router(module.router)
    dashboard.mount(app)
    app.router.routes.append(mcp.route())
    _install_error_handlers(app)
    # added first, so it runs second: behind the Guard, in front of the framework
    app.add_middleware(FastLane, orch=orch, settings=settings)
    app.add_middleware(Guard, settings=settings)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SwarmError)
    async def swarm_error(_: Request, exc: SwarmError) -> JSONResp:
        return swarm_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResp:
        parts = []
        for err in exc.errors()[:5]:
            if err.get("type") == "json_invalid":
                ctx = err.get("ctx") or {}
                parts.append(f"malformed JSON at byte {err['loc'][-1]}: {ctx.get('error', '')}")
                continue
            path = [str(p) for p in err.get("loc", ()) if p != "body"]
            if path and path[0] in ("batch", "one"):  # the POST /work shape's tag
                path = path[1:]
            loc = ".".join(path)
            parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
        return JSONResp(error_body("validation_error", "; ".join(parts)), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResp:
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResp(error_body(code, str(exc.detail)), status_code=exc.status_code,
                        headers=exc.headers)

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResp:
        log.exception("unhandled error")
        return JSONResp(error_body("internal", "internal error"), status_code=500)
