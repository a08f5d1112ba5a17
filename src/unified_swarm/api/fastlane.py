"""The fast lane: the calls every session makes all the time, served without the framework's
per-request walk.

A worker makes two calls per task (`GET /work/request`, `POST /work/complete`), or one with
batching, every session heart-beats (`POST /session/heartbeat`), and every task comes in
through `POST /work`, whose time is the first part of a task's submit -> start latency.
Through FastAPI each of them matches the path against every route, solves the route's
dependencies (each with its own walk of path, query, headers and cookies), and passes three
more middleware layers: measured under `bench/throughput.py --profile`, that was three
quarters of the server's CPU per task on FastAPI 0.165, the handlers a quarter.

This ASGI layer sits behind the Guard (so the Host check, head limits, body cap and rate
limit hold as before) and in front of the framework. It serves those calls itself only
when they are plainly well formed: the exact path and method, only the query parameters the
route takes (each once, in plain digits), a JSON object body that parses and validates
against the same schema (or none, where the body is optional). The
handlers are the routes' own (`work.serve_request`, `work.serve_complete`, `work.serve_add`,
`sessions.serve_heartbeat`); the checks are the same, in the same order (the bearer token,
a session's token where the route wants one, the Idempotency-Key a worker sends with every
request for work and a client may send with a submit).
Anything else, and every error of the input, falls through to the framework, with the body
it read handed on: the answer to a malformed call is the one the routes give, word for
word. An error of the call itself (401, 403, 409) is rendered as the app's handler renders
it. Nothing is acted on before the fall-through decision, so nothing is acted on twice.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import orjson
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from ..config import Settings
from ..core import idempotency
from ..core.orchestrator import Orchestrator
from ..errors import InvalidInput, SwarmError
from ..jsonutil import check_depth
from ..models import MAX_CLAIM
from .deps import LONG_DIGITS, Holder, authenticate, hold
from .guard import ASGIApp, Message, Receive, Scope, Send
from .responses import swarm_error_response
from .schemas import (
    CompleteBatch,
    CompleteBody,
    CompleteIn,
    HeartbeatIn,
    TaskBatch,
    TaskIn,
    WorkIn,
)
from .sessions import serve_heartbeat
from .work import serve_add, serve_complete, serve_request

#: what the fast lane takes of a query value: plain digits (no sign, exponent, escapes)
WAIT_VALUE = re.compile(rb"[0-9]{1,6}(?:\.[0-9]{1,6})?")
MAX_VALUE = re.compile(rb"[0-9]{1,4}")
IDEM_HEADER = idempotency.HEADER.lower().encode()
#: GET /work/request's template, as its Idempotency-Key is scoped (`deps._route`)
REQUEST = "/work/request"
#: POST /work's route, as its Idempotency-Key is scoped (`deps._route`)
SUBMIT = "POST /work"
COMPLETE: TypeAdapter[CompleteBatch | CompleteIn] = TypeAdapter(CompleteBody)
HEARTBEAT: TypeAdapter[HeartbeatIn | None] = TypeAdapter(HeartbeatIn)
WORK: TypeAdapter[TaskBatch | TaskIn] = TypeAdapter(WorkIn)
B = TypeVar("B")


class FallThrough(Exception):
    """Not a plainly well-formed call: the framework answers it."""


class FastLane:
    def __init__(self, app: ASGIApp, orch: Orchestrator, settings: Settings) -> None:
        self.app = app
        self.orch = orch
        self.settings = settings
        self.lanes: dict[tuple[str, str], ASGIApp] = {
            ("GET", "/work/request"): self._request,
            ("POST", "/work/complete"): self._complete,
            ("POST", "/session/heartbeat"): self._heartbeat,
            ("POST", "/work"): self._submit,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lanes.get((scope["method"], scope["path"])) \
            if scope["type"] == "http" else None
        await (lane or self.app)(scope, receive, send)

    async def _request(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            wait, max_ = request_query(scope.get("query_string", b""))
            auth, key = _headers(scope)
        except FallThrough:
            return await self.app(scope, receive, send)
        await self._answer(scope, receive, send, auth,
                           lambda call: serve_request(call, wait, max_, receive),
                           key, f"GET {REQUEST}", scope["path"])

    async def _complete(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._with_body(scope, receive, send, COMPLETE, serve_complete)

    async def _heartbeat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._with_body(scope, receive, send, HEARTBEAT, serve_heartbeat, optional=True)

    async def _submit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /work: any caller (operator or session), an optional Idempotency-Key over
        the body, as the route takes them."""
        body = await _read_body(receive)
        if body is None:
            return
        try:
            if scope.get("query_string"):
                raise FallThrough
            auth, key = _headers(scope, json=True)
            work = self._parse(body, WORK)
        except FallThrough:
            return await self.app(scope, _replay(body, receive), send)
        try:
            principal = await authenticate(self.orch, scope, auth)
            idem = (None if key is None
                    else self.orch.idem(principal, SUBMIT, key, scope["path"], body))
            response = await serve_add(self.orch, work, idem)
        except SwarmError as exc:
            response = swarm_error_response(exc)
        await response(scope, receive, send)

    async def _with_body(self, scope: Scope, receive: Receive, send: Send,
                         schema: TypeAdapter[B],
                         serve: Callable[[B, Holder], Awaitable[Response]],
                         optional: bool = False) -> None:
        """A POST whose route takes no query parameter and a body of `schema` (an empty
        body: None, where the route's body is `optional`)."""
        body = await _read_body(receive)
        if body is None:
            return  # the client hung up before its body was in: nobody to answer
        try:
            if scope.get("query_string"):
                raise FallThrough  # the route takes no parameter: the framework says so
            auth, _ = _headers(scope, json=bool(body))  # the route reads no key
            value = cast(B, None) if optional and not body else self._parse(body, schema)
        except FallThrough:
            return await self.app(scope, _replay(body, receive), send)
        await self._answer(scope, receive, send, auth, lambda call: serve(value, call))

    def _parse(self, body: bytes, schema: TypeAdapter[B]) -> B:
        """The body as the route would take it, or FallThrough for the route to refuse it."""
        if LONG_DIGITS.search(body):
            raise FallThrough  # perhaps an integer past 64 bits: the route's exact check
        try:
            value = orjson.loads(body)
            if not isinstance(value, dict):
                raise FallThrough  # e.g. `null`: the framework's reading, not ours
            check_depth(value, self.settings.max_json_depth)
            return schema.validate_python(value)
        except (orjson.JSONDecodeError, InvalidInput, ValidationError):
            raise FallThrough from None

    async def _answer(self, scope: Scope, receive: Receive, send: Send, auth: str,
                      serve: Callable[[Holder], Awaitable[Response]],
                      key: str | None = None, route: str = "", path: str = "") -> None:
        """Check the call as the routes do (`deps.hold`: the token, a session's, then the
        Idempotency-Key `key`, scoped to `route`), run the handler, send its answer (or its
        error, as the app's handler renders it)."""
        try:
            response = await serve(await hold(self.orch, scope, auth, key, route, path))
        except SwarmError as exc:
            response = swarm_error_response(exc)
        await response(scope, receive, send)


def request_query(query: bytes) -> tuple[float, int | None]:
    """`wait` and `max` of GET /work/request when each is given at most once, in plain
    digits and in range; FallThrough for anything else (the route then names the fault)."""
    wait, max_ = None, None
    for pair in query.split(b"&") if query else ():
        name, eq, value = pair.partition(b"=")
        if name == b"wait" and eq and wait is None and WAIT_VALUE.fullmatch(value):
            wait = float(value)
        elif name == b"max" and eq and max_ is None and MAX_VALUE.fullmatch(value):
            max_ = int(value)
            if not 1 <= max_ <= MAX_CLAIM:
                raise FallThrough
        else:
            raise FallThrough
    return (0.0 if wait is None else wait), max_


def _headers(scope: Scope, *, json: bool = False) -> tuple[str, str | None]:
    """The Authorization header's value and the Idempotency-Key's (None without one);
    FallThrough on a key sent twice, or, for a body, on one not declared JSON."""
    auth, key, typed = "", None, not json
    for name, value in scope["headers"]:
        if name == b"authorization":
            auth = value.decode("latin-1")
        elif name == IDEM_HEADER:
            if key is not None:
                raise FallThrough  # sent twice: which one counts is the framework's call
            key = value.decode("latin-1")
        elif json and name == b"content-type":
            typed = value.split(b";", 1)[0].strip().lower() == b"application/json"
    if not typed:
        raise FallThrough
    return auth, key


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (the Guard's receive caps it); None: the client hung up."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands on the body read already, then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay
