"""What every handler needs: the orchestrator, who is calling, and checked JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, HTTPException, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from ..core import idempotency
from ..core.auth import Principal, require_holder, require_operator
from ..core.orchestrator import Orchestrator
from ..errors import InvalidInput
from ..jsonutil import check_depth
from ..models import Idem, Session
from .guard import AUTHENTICATED

#: a run of 19 digits: perhaps an integer past 64 bits (-2**63-1 has 19), which orjson
#: reads as a float
LONG_DIGITS = re.compile(rb"\d{19,}")


class _BigInt(ValueError):
    pass


def _int64(literal: str) -> int:
    value = int(literal)
    if not -(2**63) <= value < 2**64:
        raise _BigInt(literal)
    return value


def refuse_big_integers(body: bytes) -> None:
    """orjson turns an integer past 64 bits into a float, silently changing the value (a
    task's input would come back different): refuse it, as malformed JSON is (422)."""
    if not LONG_DIGITS.search(body):
        return
    try:  # exact, and only for the rare body that has such a run of digits
        json.loads(body, parse_int=_int64)
    except _BigInt as exc:
        literal = str(exc)
        raise json.JSONDecodeError(
            f"integer {literal[:24]}... is past 64 bits (send it as a string)",
            body.decode("utf-8", "replace"), max(body.find(literal.encode()), 0)) from None


class SwarmRequest(Request):
    """Parses bodies with orjson (refuses NaN, lone surrogates, integers past 64 bits) and
    caps their depth."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = orjson.loads(body)  # JSONDecodeError subclasses json's: FastAPI's 422
            refuse_big_integers(body)
            try:
                check_depth(value, self.app.state.settings.max_json_depth)
            except InvalidInput as exc:
                raise HTTPException(400, exc.message) from None
            self._json = value
        return self._json


class SwarmRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        known = query_names(self.dependant)

        async def route(request: Request) -> Response:
            refuse_unknown_query(request, known)
            return await handler(SwarmRequest(request.scope, request.receive))
        return route

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette's 405 names only this route's methods; a path served by several routes
        # (GET and POST /work) must list them all in `Allow`, as the OpenAPI document does
        if self.methods and scope["method"] not in self.methods:
            allowed = allowed_methods(scope)
            raise HTTPException(405, "Method Not Allowed", headers={"Allow": ", ".join(allowed)})
        await super().handle(scope, receive, send)


def query_names(dependant: Dependant) -> set[str]:
    """Every query parameter a route reads, through its dependencies."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= query_names(sub)
    return names


def refuse_unknown_query(request: Request, known: set[str]) -> None:
    """A misspelt parameter (`?stauts=ready`) would otherwise be ignored, and a repeated one
    cut to its last value: the caller would get an answer to a question it did not ask."""
    given = request.query_params
    unknown = sorted(set(given) - known)
    if unknown:
        names = ", ".join(repr(name) for name in unknown[:5])
        expected = ", ".join(sorted(known)) or "none"
        raise HTTPException(400, f"unknown query parameter {names} (this route takes: {expected})")
    # every parameter here is one value: of `?tag=a&tag=b` the framework would keep the last
    repeated = sorted(name for name in set(given) if len(given.getlist(name)) > 1)
    if repeated:
        raise HTTPException(400, f"query parameter {repeated[0]!r} given more than once")


def allowed_methods(scope: Scope) -> list[str]:
    """The methods of the most specific path template matching this path, as the OpenAPI
    document lists them: /session/register is POST, though /session/{id:path} matches it."""
    best: dict[str, set[str]] = {}
    for route in _routes(scope.get("router")):
        if (isinstance(route, Route) and route.methods
                and route.matches(scope)[0] is not Match.NONE):
            best.setdefault(route.path, set()).update(route.methods)
    if not best:
        return []
    literal = {t: len(re.sub(r"\{[^}]*\}", "", t)) for t in best}
    top = max(literal.values())
    return sorted(set().union(*(m for t, m in best.items() if literal[t] == top)))


def _routes(router: Any) -> Iterator[Any]:
    """The app's routes, through included routers (recent FastAPI keeps them nested)."""
    for route in getattr(router, "routes", ()):
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner)
        else:
            yield route


async def get_orchestrator(request: Request) -> Orchestrator:
    # async on purpose: FastAPI runs plain `def` dependencies in a thread pool (a hop each)
    orch: Orchestrator = request.app.state.orchestrator
    return orch


def bearer(request: Request) -> str | None:
    return bearer_of(request.headers.get("authorization", ""))


def bearer_of(auth: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value (None without one)."""
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


#: declares the bearer token in the OpenAPI document; the token itself is read by `bearer`
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="The operator token, or a session's token from register")
Declared = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


async def get_principal(request: Request, _: Declared) -> Principal:
    return await _authenticate(request)


async def _authenticate(request: Request) -> Principal:
    return await authenticate(request.app.state.orchestrator, request.scope,
                              request.headers.get("authorization", ""))


async def authenticate(orch: Orchestrator, scope: Scope, auth: str) -> Principal:
    """The caller of the `Authorization` header value `auth` (the routes, the fast lane)."""
    principal = await orch.authenticate(bearer_of(auth))
    scope[AUTHENTICATED] = True  # the Guard's rate limit: a real token, own bucket
    return principal


async def get_operator(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    return require_operator(principal)


async def get_session(principal: Annotated[Principal, Depends(get_principal)]) -> Session:
    return require_holder(principal)


KeyHeader = Annotated[str | None, Header(
    alias=idempotency.HEADER.lower(),
    description="Makes this call safe to retry: the same key (in the caller's scope, per "
                "route) gets the first answer again, never a second effect "
                "(docs/api.md, Idempotency-Key)",
    json_schema_extra={"pattern": idempotency.KEY_PATTERN})]


async def get_idem(request: Request, principal: Annotated[Principal, Depends(get_principal)],
                   key: KeyHeader = None) -> Idem | None:
    """The call's Idempotency-Key, scoped to the caller and the route (400 when it is not
    1..255 printable ASCII characters); None without one: then nothing else is done."""
    return None if key is None else await _idem(request, principal, key)


async def _idem(request: Request, principal: Principal, key: str) -> Idem:
    orch: Orchestrator = request.app.state.orchestrator
    return orch.idem(principal, _route(request), key, request.url.path, await request.body())


def _route(request: Request) -> str:
    """The call's route, as its Idempotency-Key is scoped: `GET /work/request`."""
    template = getattr(request.scope.get("route"), "path", request.url.path)
    return f"{request.method} {template}"


Orch = Annotated[Orchestrator, Depends(get_orchestrator)]
Caller = Annotated[Principal, Depends(get_principal)]
Operator = Annotated[Principal, Depends(get_operator)]
SessionCaller = Annotated[Session, Depends(get_session)]
Keyed = Annotated[Idem | None, Depends(get_idem)]


# -- the hot path ----------------------------------------------------------------------------
# FastAPI solves every dependency of a route on every request, each with its own walk of
# its parameters (path, query, headers, cookies) and cache key, and a dependency used twice
# (the principal, under both the session and the Idempotency-Key) is walked twice. On the
# two calls a busy worker makes per task (GET /work/request, POST /work/complete) that walk
# was a third of the server's CPU, so there one dependency gives the handler everything:
# the same checks, the same OpenAPI document (the bearer scheme, the Idempotency-Key header).


@dataclass(frozen=True, slots=True)
class Holder:
    """A session's call on the hot path: the orchestrator, the calling session, and the
    call's Idempotency-Key (None without one, or on a route that takes none)."""

    orch: Orchestrator
    session: Session
    idem: Idem | None = None


async def hold(orch: Orchestrator, scope: Scope, auth: str, key: str | None = None,
               route: str = "", path: str = "", body: bytes = b"") -> Holder:
    """A session's call (the routes below, and the fast lane): the token of `auth` first,
    a session's, then the call's Idempotency-Key `key` scoped to `route` (None: none)."""
    principal = await authenticate(orch, scope, auth)
    session = require_holder(principal)
    idem = None if key is None else orch.idem(principal, route, key, path, body)
    return Holder(orch, session, idem)


async def get_holder(request: Request, _: Declared) -> Holder:
    """`Orch` and `SessionCaller` in one dependency."""
    return await hold(request.app.state.orchestrator, request.scope,
                      request.headers.get("authorization", ""))


async def get_keyed_holder(request: Request, _: Declared, key: KeyHeader = None) -> Holder:
    """`Orch`, `SessionCaller` and `Keyed` in one dependency."""
    body = b"" if key is None else await request.body()
    return await hold(request.app.state.orchestrator, request.scope,
                      request.headers.get("authorization", ""), key, _route(request),
                      request.url.path, body)


HolderCall = Annotated[Holder, Depends(get_holder)]
KeyedHolderCall = Annotated[Holder, Depends(get_keyed_holder)]

