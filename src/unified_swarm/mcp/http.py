"""`/mcp` on the server: the swarm's tools over streamable HTTP, for remote agents and
clients that want them (a local agent CLI spawns `swarm mcp` instead).

- Who calls: the bearer token, checked in front of the SDK's app by a pure ASGI guard (a
  `BaseHTTPMiddleware` breaks when a client drops a streaming call): 401 without a valid
  one; the operator token may call the tools that need no session (status, tasks,
  knowledge), a session's token acts as that session. The Host allow-list, the body cap and
  the rate limit are the API's own (`Guard` runs in front of every route); a foreign
  `Origin` is refused here as on the event stream.
- The tools reach the swarm through the SDK over an in-process ASGI transport onto this very
  app, with the caller's token: every call is checked exactly as the HTTP API checks it.
- Responses stream (SSE, never `json_response`): a claim that waits reports progress, and
  a client cut at a first-byte timeout would otherwise leave the call running.
- Stateless on the legacy protocol as on 2026-07-28: any replica serves any request.
- The MCP SDK is imported and its session manager started on the first `/mcp` request, not
  when the app is made: a server that nobody asks over MCP does not pay for it at start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..api.guard import AUTHENTICATED
from ..api.realtime import origin_allowed
from ..api.responses import error_response
from ..client import AsyncClient
from ..client.base import NO_RETRY
from ..core.orchestrator import Orchestrator
from ..errors import Forbidden, SwarmError, Unauthorized
from ..tokens import hash_token

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from .tools import Link

PATH = "/mcp"
#: the base URL of the in-process transport (a loopback name: the Host allow-list takes it)
SELF_URL = "http://127.0.0.1"


def token_of(headers: Any) -> str | None:
    auth = (headers.get("authorization") if headers is not None else None) or ""
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class McpGuard:
    """Pure ASGI: a foreign Origin is 403, a missing or wrong token 401, before the SDK."""

    def __init__(self, app: ASGIApp, orch: Orchestrator) -> None:
        self.app, self.orch = app, orch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        try:
            if not origin_allowed(headers.get("origin"), headers.get("host", "")):
                raise Forbidden(f"Origin {headers.get('origin')!r} may not call /mcp")
            await self.orch.authenticate(token_of(headers))
        except SwarmError as exc:
            response = error_response(exc)
            if isinstance(exc, Unauthorized):
                response.headers["WWW-Authenticate"] = "Bearer"
            return await response(scope, receive, send)
        scope[AUTHENTICATED] = True  # the Guard's rate limit: a real token, a bucket of its own
        await self.app(scope, receive, send)


class McpEndpoint:
    """The MCP server of one app: its route, its lifespan, and how a call finds its caller."""

    def __init__(self, orch: Orchestrator, max_body_bytes: int) -> None:
        self.orch, self.max_body_bytes = orch, max_body_bytes
        self._client: AsyncClient | None = None
        self._handler: ASGIApp | None = None
        self._starting = asyncio.Lock()
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def route(self) -> Route:
        # POST only: stateless, there is no session to DELETE and no GET stream (the
        # 2026-07-28 revision listens over POST; a legacy client takes the 405 as "none")
        return Route(PATH, endpoint=McpGuard(self._serve, self.orch), methods=["POST"],
                     include_in_schema=False)

    @contextlib.asynccontextmanager
    async def running(self, app: ASGIApp) -> AsyncIterator[None]:
        """For the app's lifespan: the loopback client; on the way out, the SDK's task group
        (if a request started it)."""
        self._client = AsyncClient(SELF_URL, "", retry=NO_RETRY, timeout=120.0,
                                   transport=httpx.ASGITransport(app=app))
        try:
            yield
        finally:
            self._stop.set()
            if self._runner is not None:
                await self._runner
            await self._client.aclose()
            self._client = None

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._handler or await self._start()
        await handler(scope, receive, send)

    async def _start(self) -> ASGIApp:
        """Build the MCP server and run its session manager in a task of its own (it lives
        until the app stops), once."""
        async with self._starting:
            if self._handler is not None:
                return self._handler
            from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
            from mcp.server.transport_security import TransportSecuritySettings

            from .tools import make_server

            server = make_server(self.connect)
            # builds the SDK's session manager; our own guard does Host and Origin, so the
            # SDK's loopback-only default (which would refuse SWARM_ALLOWED_HOSTS) is off
            server.streamable_http_app(
                streamable_http_path=PATH, json_response=False, stateless_http=True,
                max_request_body_size=self.max_body_bytes,
                transport_security=TransportSecuritySettings(
                    enable_dns_rebinding_protection=False))
            manager = server.session_manager
            ready = asyncio.Event()

            async def run() -> None:
                async with manager.run():
                    ready.set()
                    await self._stop.wait()

            self._runner = asyncio.create_task(run(), name="mcp-session-manager")
            waiting = asyncio.create_task(ready.wait())
            await asyncio.wait({waiting, self._runner}, return_when=asyncio.FIRST_COMPLETED)
            if not ready.is_set():
                waiting.cancel()
                await self._runner  # raises what stopped it
                raise RuntimeError("the MCP session manager stopped before it started")
            self._handler = StreamableHTTPASGIApp(manager)
            return self._handler

    async def connect(self, ctx: Context[Any, Any]) -> Link:
        from .tools import Link

        token = token_of(ctx.headers)
        if self._client is None or token is None:
            raise Unauthorized("missing bearer token")
        principal = await self.orch.authenticate(token)
        client = self._client.with_token(token)
        if principal.session is not None:
            return Link(client, who=principal.session.id)
        orch = self.orch

        def interrupt() -> dict[str, Any] | None:
            return None if orch.interrupt is None else orch.interrupt.wire()
        return Link(client, who="operator:" + hash_token(token)[:16], session=False,
                    interrupt=interrupt)
