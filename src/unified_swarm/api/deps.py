"""What every handler needs: the orchestrator, who is calling, and checked JSON."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from ..core.orchestrator import Orchestrator, Principal, require_holder
from ..errors import Forbidden, InvalidInput, PayloadTooLarge
from ..jsonutil import check_depth, dumpb
from ..models import JSON, Session


class SwarmRequest(Request):
    """Parses bodies with orjson (refuses NaN, lone surrogates) and caps their depth."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = orjson.loads(body)  # JSONDecodeError subclasses json's: FastAPI's 422
            try:
                check_depth(value, self.app.state.settings.max_json_depth)
            except InvalidInput as exc:
                raise HTTPException(400, exc.message) from None
            self._json = value
        return self._json


class SwarmRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(SwarmRequest(request.scope, request.receive))
        return route


async def get_orchestrator(request: Request) -> Orchestrator:
    # async on purpose: FastAPI runs plain `def` dependencies in a thread pool (a hop each)
    orch: Orchestrator = request.app.state.orchestrator
    return orch


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def get_principal(request: Request) -> Principal:
    orch: Orchestrator = request.app.state.orchestrator
    principal: Principal = await orch.authenticate(bearer(request))
    return principal


async def get_operator(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if principal.role != "operator":
        raise Forbidden("this call takes the operator token")
    return principal


async def get_session(principal: Annotated[Principal, Depends(get_principal)]) -> Session:
    return require_holder(principal)


Orch = Annotated[Orchestrator, Depends(get_orchestrator)]
Caller = Annotated[Principal, Depends(get_principal)]
Operator = Annotated[Principal, Depends(get_operator)]
SessionCaller = Annotated[Session, Depends(get_session)]


def check_size(value: JSON, limit: int, what: str) -> None:
    """A task's input or result past the limit is refused before it reaches the store."""
    size = len(dumpb(value))
    if size > limit:
        raise PayloadTooLarge(f"{what} is {size} bytes, over the {limit} byte limit")
