"""The swarm's MCP tools (names pinned by DESIGN "Agents join"), written once for the stdio
bridge (`swarm mcp`) and the server's own `/mcp`.

Every tool talks to the swarm through the SDK (`AsyncClient`), so a tool call is checked
exactly as the HTTP call it makes: the bridge's client points at the server's URL, the
server's at its own app through an in-process ASGI transport. A `Link` says which client acts
for the caller of one tool call and how that caller's directives are read.

- Every result is typed (an output schema, structured content) and carries the caller's
  `directives`: interrupt, drain, preempt, offer (read with a heartbeat, which also proves
  the session alive).
- An outcome call with a stale fencing token is a tool error with code `stale_lease`; a
  stale `expected_version` on knowledge is `version_conflict` (with the current version);
  nothing is recorded either way (the server refuses before it records).
- A tool waits at most `MAX_TOOL_WAIT` seconds, and reports progress while it waits.
- `claim_task` is safe to retry and to cancel: a `request_key` answers a repeat with the
  first claim's lease (here, and on the server as an `Idempotency-Key`); a waiting claim
  waits for an *offer* (which holds no lease) and claims it only at the end, in a shielded
  step after which a cancelled caller's claim is let go at once.
- A tool whose endpoint this server does not have yet (split, input requests, release)
  answers the tool error `not_available`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio
import anyio.lowlevel
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field

from ..client import AsyncClient
from ..client.base import Call
from ..client.types import Claimed
from ..errors import (
    Forbidden,
    LeaseLost,
    NotFound,
    StaleVersion,
    SwarmError,
)

T = TypeVar("T")
JSON = Any
#: the longest a tool call waits (DESIGN: clients cut calls at 60 s, some sooner)
MAX_TOOL_WAIT = 25.0
#: seconds between progress notifications while a tool waits
PROGRESS_EVERY = 5.0
#: claims remembered per server for `request_key` repeats
REMEMBERED_CLAIMS = 1000
#: the answer of a server without an endpoint a tool needs (the route is not there)
ROUTE_MISSING = frozenset({"Not Found", "Method Not Allowed"})

INSTRUCTIONS = (
    "Unified Swarm: a shared work queue. claim_task gets a task and its lease (fencing_token); "
    "report_progress while working, then complete_task or fail_task with that fencing_token "
    "(release_task hands it back with a note). Every result carries `directives`: obey "
    "interrupt and drain (take no new work), preempt (checkpoint, then release_task), and an "
    "offer names a task held for you: claim it with claim_task(task_id=...).")


# -- results ---------------------------------------------------------------------------------


class Offer(BaseModel):
    task_id: str
    session_id: str
    expires_at: str | None = None


class Directives(BaseModel):
    """What the swarm asks of the caller now."""

    #: the swarm-wide interrupt in force (take no new work), or null
    interrupt: dict[str, Any] | None = None
    #: this session is draining: finish what it holds, take nothing new
    drain: bool = False
    #: tasks to checkpoint and release within grace_s: [{"task_id", "grace_s"}]
    preempt: list[dict[str, Any]] = Field(default_factory=list)
    #: a task held for this session: claim it with claim_task(task_id=...)
    offer: Offer | None = None


class Directed(BaseModel):
    """Every tool result carries the session's directives (interrupt, drain, preempt)."""

    directives: Directives


class StatusResult(Directed):
    session: dict[str, Any] | None
    held: list[dict[str, Any]]
    swarm: dict[str, Any]


class ClaimResult(Directed):
    task: dict[str, Any] | None
    lease: dict[str, Any] | None
    #: a repeat of an earlier claim (same request_key): the same lease
    duplicate: bool = False
    #: nothing came: when to ask again
    retry_after_s: float | None = None


class TaskResult(Directed):
    task: dict[str, Any]
    history: list[dict[str, Any]]


class RecordedResult(Directed):
    task: dict[str, Any]
    duplicate: bool


class OneTaskResult(Directed):
    task: dict[str, Any]


class TasksResult(Directed):
    tasks: list[dict[str, Any]]


class SplitResult(Directed):
    task: dict[str, Any]
    subtasks: list[dict[str, Any]]


class EntryResult(Directed):
    entry: dict[str, Any]


class NewTask(BaseModel):
    """A task to add (the API's task object; the server checks it)."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    type: str
    title: str | None = None
    input: JSON = None
    required_capability: str | None = None
    priority: int | None = None
    dependencies: list[str] | None = None
    estimated_hours: float | None = None

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


# -- who calls -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """The caller of one tool call: the client acting for it, whether its token is a
    session's, and (for the operator) where the interrupt in force is read."""

    client: AsyncClient
    #: who, for `request_key` memory (a session id, or a token's digest)
    who: str
    session: bool = True
    interrupt: Callable[[], dict[str, Any] | None] | None = None


Connector = Callable[[Context], Awaitable[Link]]


class ToolFailure(Exception):
    """A tool error with a code (stale_lease, version_conflict, not_available, ...)."""

    def __init__(self, code: str, message: str, **extra: JSON) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def failure_of(exc: SwarmError, *, outcome: bool = False) -> ToolFailure:
    """The tool error for a refusal of the server."""
    if exc.message in ROUTE_MISSING and type(exc) in (NotFound, SwarmError):
        return ToolFailure("not_available", "not available on this server")
    if outcome and isinstance(exc, LeaseLost | Forbidden):
        return ToolFailure("stale_lease", f"{exc.message} (nothing was recorded)")
    return ToolFailure(exc.code, exc.message)


def ok(result: BaseModel) -> CallToolResult:
    data = result.model_dump(mode="json")
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(data))],
                          structured_content=data)


def refused(failure: ToolFailure, directives: Directives | None) -> CallToolResult:
    data: dict[str, Any] = {"error": {"code": failure.code, "message": failure.message,
                                      **failure.extra}}
    if directives is not None:
        data["directives"] = directives.model_dump(mode="json")
    text = f"{failure.code}: {failure.message}"
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=data, is_error=True)


# -- the tools -------------------------------------------------------------------------------


class SwarmTools:
    """The tools over a connector; `install(server)` registers them."""

    def __init__(self, connect: Connector) -> None:
        self.connect = connect
        #: (who, request_key) -> the claim it answered, newest last
        self.claims: OrderedDict[tuple[str, str], ClaimResult] = OrderedDict()

    # -- plumbing ------------------------------------------------------------------------

    async def directives(self, link: Link) -> tuple[Directives, dict[str, Any] | None]:
        """The caller's directives, and (for a session) its heartbeat answer."""
        if not link.session:
            return Directives(interrupt=link.interrupt() if link.interrupt else None), None
        beat: dict[str, Any] = dict(await link.client.heartbeat())
        d = beat.get("directives") or {}
        offers = [t for t in d.get("assignments") or () if t.get("status") == "assigned"]
        offer = (Offer(task_id=offers[0]["id"], session_id=offers[0]["assigned_to"],
                       expires_at=offers[0].get("lease_expires_at")) if offers else None)
        return Directives(interrupt=d.get("interrupt"), drain=bool(d.get("drain")),
                          preempt=list(d.get("preempt") or []), offer=offer), beat

    async def run(self, ctx: Context, body: Callable[[Link], Awaitable[BaseModel]],
                  *, outcome: bool = False) -> CallToolResult:
        """Run one tool: its body, then the caller's directives on the answer (on an error
        too, when they can be read)."""
        link = await self.connect(ctx)
        try:
            return ok(await body(link))
        except ToolFailure as failure:
            return refused(failure, await self._directives_or_none(link))
        except SwarmError as exc:
            return refused(failure_of(exc, outcome=outcome), await self._directives_or_none(link))

    async def _directives_or_none(self, link: Link) -> Directives | None:
        try:
            return (await self.directives(link))[0]
        except SwarmError:
            return None

    async def waiting(self, ctx: Context, wait: float, call: Awaitable[T]) -> T:
        """Await `call`, reporting progress every PROGRESS_EVERY seconds until it answers (so
        a streaming client sees the call alive, and its idle timers do not fire)."""
        result: list[T] = []

        async def tick() -> None:
            waited = 0.0
            while True:
                await ctx.report_progress(waited, wait, "waiting for work")
                await anyio.sleep(PROGRESS_EVERY)
                waited = min(waited + PROGRESS_EVERY, wait)

        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            result.append(await call)
            tg.cancel_scope.cancel()
        return result[0]

    async def claim_named(self, link: Link, task_id: str, key: str | None) -> Claimed:
        """Claim in one shielded step; a caller cancelled meanwhile lets the claim go at once
        (a lease nobody will hear of would sit until it expires)."""
        with anyio.CancelScope(shield=True):
            claimed = await link.client.claim(task_id, idempotency_key=key)
        try:
            await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.let_go(link, claimed)
            raise
        return claimed

    async def let_go(self, link: Link, claimed: Claimed) -> None:
        """Give a claim back: `POST /work/release` where the server has it, else a retried
        failure (DESIGN: how a client gives back a lease it does not want)."""
        lease = claimed["lease"]
        note = "claim abandoned: the caller cancelled before it heard of it"
        try:
            await link.client.send(release_call(lease["task_id"], lease["fencing_token"], note))
        except SwarmError as exc:
            if failure_of(exc).code != "not_available":
                return
            with contextlib.suppress(SwarmError):  # gone already: nothing to give back
                await link.client.fail(lease["task_id"], lease["fencing_token"], note,
                                       retry=True)

    def remember(self, who: str, key: str | None, result: ClaimResult) -> None:
        if key is None:
            return
        self.claims[(who, key)] = result
        self.claims.move_to_end((who, key))
        while len(self.claims) > REMEMBERED_CLAIMS:
            self.claims.popitem(last=False)

    # -- registration --------------------------------------------------------------------

    def install(self, server: MCPServer) -> None:
        for fn in (self.swarm_status, self.claim_task, self.get_task, self.report_progress,
                   self.complete_task, self.fail_task, self.release_task, self.add_tasks,
                   self.split_task, self.ask_operator, self.knowledge_get, self.knowledge_put):
            server.add_tool(fn, name=fn.__name__, description=(fn.__doc__ or "").strip())

    # -- the tools (their docstrings are what the model reads) ----------------------------

    async def swarm_status(self, ctx: Context) -> Annotated[CallToolResult, StatusResult]:
        """Who you are in the swarm, the leases you hold, the queue's numbers, and your
        directives (an offer waiting for you, interrupt, drain, preempt)."""
        async def body(link: Link) -> StatusResult:
            directives, beat = await self.directives(link)
            swarm = dict(await link.client.status())
            return StatusResult(session=beat["session"] if beat else None,
                                held=list(beat["held"]) if beat else [], swarm=swarm,
                                directives=directives)
        return await self.run(ctx, body)

    async def claim_task(
        self, ctx: Context, task_id: str | None = None,
        wait_s: Annotated[float, Field(ge=0)] = 0.0,
        request_key: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
    ) -> Annotated[CallToolResult, ClaimResult]:
        """Claim a task: the one named (an offer in your directives), else the best one for
        you, waiting up to wait_s seconds (at most 25) for one. Answers the task and its
        lease; keep lease.fencing_token for progress and outcome calls. Pass a fresh
        request_key and repeat the same call after an error: it answers the same lease."""
        async def body(link: Link) -> ClaimResult:
            if request_key is not None and (link.who, request_key) in self.claims:
                earlier = self.claims[(link.who, request_key)]
                directives, _ = await self.directives(link)
                return earlier.model_copy(update={"duplicate": True, "directives": directives})
            wait = min(wait_s, MAX_TOOL_WAIT)
            claimed: Claimed | None
            if task_id is not None:
                claimed = await self.claim_named(link, task_id, request_key)
            elif wait <= 0:
                claimed = await link.client.request_work(0, idempotency_key=request_key)
            else:
                offered = await self.waiting(ctx, wait, link.client.offer_work(wait))
                claimed = (None if offered is None else
                           await self.claim_named(link, offered["task"]["id"], request_key))
            directives, _ = await self.directives(link)
            if claimed is None:
                return ClaimResult(task=None, lease=None, retry_after_s=max(wait, 5.0),
                                   directives=directives)
            result = ClaimResult(task=dict(claimed["task"]), lease=dict(claimed["lease"]),
                                 directives=directives)
            self.remember(link.who, request_key, result)
            return result
        return await self.run(ctx, body)

    async def get_task(self, ctx: Context, task_id: str) -> Annotated[CallToolResult, TaskResult]:
        """One task with its history (one entry per attempt)."""
        async def body(link: Link) -> TaskResult:
            detail = await link.client.get_task(task_id)
            directives, _ = await self.directives(link)
            return TaskResult(task=dict(detail["task"]),
                              history=[dict(a) for a in detail["history"]],
                              directives=directives)
        return await self.run(ctx, body)

    async def report_progress(
        self, ctx: Context, task_id: str, fencing_token: int,
        progress: Annotated[float, Field(ge=0, le=1)], message: str | None = None,
    ) -> Annotated[CallToolResult, RecordedResult]:
        """Report progress (0..1) on a task you hold; it also renews your lease."""
        async def body(link: Link) -> RecordedResult:
            rec = await link.client.progress(task_id, fencing_token, progress, message)
            return await self._recorded(link, dict(rec))
        return await self.run(ctx, body, outcome=True)

    async def complete_task(self, ctx: Context, task_id: str, fencing_token: int,
                            result: JSON = None) -> Annotated[CallToolResult, RecordedResult]:
        """Record the result (any JSON) of a task you hold, with its lease's fencing_token.
        A stale token is the error stale_lease and records nothing."""
        async def body(link: Link) -> RecordedResult:
            rec = await link.client.complete(task_id, fencing_token, result)
            return await self._recorded(link, dict(rec))
        return await self.run(ctx, body, outcome=True)

    async def fail_task(self, ctx: Context, task_id: str, fencing_token: int, error: str,
                        retry: bool = True) -> Annotated[CallToolResult, RecordedResult]:
        """Record that a task you hold failed; with retry it runs again (until its
        max_attempts), else it fails for good."""
        async def body(link: Link) -> RecordedResult:
            rec = await link.client.fail(task_id, fencing_token, error, retry=retry)
            return await self._recorded(link, dict(rec))
        return await self.run(ctx, body, outcome=True)

    async def release_task(self, ctx: Context, task_id: str, fencing_token: int,
                           note: str | None = None) -> Annotated[CallToolResult, OneTaskResult]:
        """Hand a task you hold back to the queue (preempted, out of context, the user took
        over); the note reaches its next holder. Does not count as a failed attempt."""
        async def body(link: Link) -> OneTaskResult:
            reply = await link.client.send(release_call(task_id, fencing_token, note))
            directives, _ = await self.directives(link)
            return OneTaskResult(task=reply["task"], directives=directives)
        return await self.run(ctx, body, outcome=True)

    async def add_tasks(self, ctx: Context,
                        tasks: Annotated[list[NewTask], Field(min_length=1)],
                        ) -> Annotated[CallToolResult, TasksResult]:
        """Add tasks, all or nothing; dependencies may name tasks of the same batch (give
        them ids). required_capability defaults to type."""
        async def body(link: Link) -> TasksResult:
            added = await link.client.add_tasks([t.wire() for t in tasks])  # type: ignore[misc]
            directives, _ = await self.directives(link)
            return TasksResult(tasks=[dict(t) for t in added], directives=directives)
        return await self.run(ctx, body)

    async def split_task(
        self, ctx: Context, task_id: str, fencing_token: int,
        subtasks: Annotated[list[NewTask], Field(min_length=1)],
        merge: str | dict[str, Any] = "list",
    ) -> Annotated[CallToolResult, SplitResult]:
        """Split a task you hold into subtasks (they may depend on each other); it completes
        when they do, with their results merged: "list", "object", or {"task": {...}} (a
        merge task). Your lease ends."""
        async def body(link: Link) -> SplitResult:
            reply = await link.client.send(Call(
                "POST", f"/work/{task_id}/split", _as_dict,
                body={"fencing_token": fencing_token, "subtasks": [t.wire() for t in subtasks],
                      "merge": merge}, idempotent=True))
            directives, _ = await self.directives(link)
            return SplitResult(task=reply["task"], subtasks=list(reply["subtasks"]),
                               directives=directives)
        return await self.run(ctx, body, outcome=True)

    async def ask_operator(self, ctx: Context, task_id: str, fencing_token: int,
                           question: str) -> Annotated[CallToolResult, OneTaskResult]:
        """Ask the operator a question about a task you hold; it waits (input_required, its
        lease clock stopped) until the answer comes, in the task's context.notes."""
        async def body(link: Link) -> OneTaskResult:
            reply = await link.client.send(Call(
                "POST", "/work/input-request", _as_dict,
                body={"task_id": task_id, "fencing_token": fencing_token, "question": question},
                idempotent=True))
            directives, _ = await self.directives(link)
            return OneTaskResult(task=reply["task"], directives=directives)
        return await self.run(ctx, body, outcome=True)

    async def knowledge_get(self, ctx: Context, topic: str,
                            version: int | None = None) -> Annotated[CallToolResult, EntryResult]:
        """Read a shared knowledge topic (the latest version, or the one given)."""
        async def body(link: Link) -> EntryResult:
            entry = await link.client.get_knowledge(topic, version)
            directives, _ = await self.directives(link)
            return EntryResult(entry=dict(entry), directives=directives)
        return await self.run(ctx, body)

    async def knowledge_put(
        self, ctx: Context, topic: str, content: JSON, expected_version: int | None = None,
        tags: list[str] | None = None,
    ) -> Annotated[CallToolResult, EntryResult]:
        """Write the next version of a knowledge topic. With expected_version (0: the topic
        must not exist yet) a stale one is the error version_conflict, with the current
        version: read it, merge, write again."""
        async def body(link: Link) -> EntryResult:
            try:
                entry = await link.client.put_knowledge(
                    topic, content, expected_version=expected_version, tags=tags or ())
            except StaleVersion as exc:
                raise await self._conflict(link, topic, exc) from None
            directives, _ = await self.directives(link)
            return EntryResult(entry=dict(entry), directives=directives)
        return await self.run(ctx, body)

    async def _recorded(self, link: Link, rec: dict[str, Any]) -> RecordedResult:
        directives, _ = await self.directives(link)
        return RecordedResult(task=rec["task"], duplicate=bool(rec.get("duplicate")),
                              directives=directives)

    async def _conflict(self, link: Link, topic: str, exc: StaleVersion) -> ToolFailure:
        try:
            current = dict(await link.client.get_knowledge(topic))
        except NotFound:
            current = None
        return ToolFailure("version_conflict", exc.message,
                           current_version=current["version"] if current else 0,
                           current=current)


def release_call(task_id: str, fencing_token: int, note: str | None) -> Call[dict[str, Any]]:
    body: dict[str, Any] = {"task_id": task_id, "fencing_token": fencing_token}
    if note is not None:
        body["note"] = note
    return Call("POST", "/work/release", _as_dict, body=body, idempotent=True)


def _as_dict(body: Any) -> dict[str, Any]:
    return dict(body or {})


def make_server(connect: Connector) -> MCPServer:
    """An MCP server offering the swarm's tools, each call acting as `connect` says."""
    from .. import __version__

    root = logging.getLogger()
    kept = (list(root.handlers), root.level)
    # the SDK configures the root logger when a server is made: the host's logging is not
    # its to set (a server keeps its own, the bridge logs to stderr as it chose)
    server: MCPServer = MCPServer("unified-swarm", instructions=INSTRUCTIONS,
                                  version=__version__, log_level="WARNING")
    root.handlers[:], root.level = kept[0], kept[1]
    SwarmTools(connect).install(server)
    return server
