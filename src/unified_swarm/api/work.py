"""The work queue: add, list, request and offer (long-polls), claim, progress, complete, fail,
cancel."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from starlette.responses import Response
from starlette.types import Receive

from ..core.collab import Merge
from ..core.orchestrator import Orchestrator, Success
from ..core.waiters import Waiter
from ..errors import SwarmError
from ..models import MAX_CLAIM, MAX_WAIT, Claimed, Idem, Recorded, Task, TaskStatus, iso
from .deps import (
    Caller,
    Holder,
    HolderCall,
    Keyed,
    KeyedHolderCall,
    Operator,
    Orch,
    SessionCaller,
    SwarmRoute,
)
from .replies import (
    COMMON,
    ClaimedBatchReply,
    ClaimedReply,
    CompleteBatchReply,
    OfferedReply,
    RecordedReply,
    SplitReply,
    TaskDetail,
    TaskPage,
    TaskReply,
    TasksReply,
    errors,
)
from .responses import JSONResp, error_body
from .schemas import (
    CancelIn,
    ClaimIn,
    CompleteBatch,
    CompleteBody,
    CompleteIn,
    FailIn,
    IdPath,
    InputIn,
    InputRequestIn,
    ProgressIn,
    ReleaseIn,
    SplitIn,
    TaskBatch,
    TaskIn,
    UsageIn,
    WorkIn,
)

router = APIRouter(route_class=SwarmRoute, tags=["work"], responses=errors(*COMMON))
#: ids may hold "/" (core.limits.ID_RE), so they take a path converter to stay addressable
ONE = "/work/{task_id:path}"
#: what an outcome call (progress, complete, fail) may answer besides 200
OUTCOME = errors(403, 404, 409)
#: the protocol's longest long-poll (checked by core); a server may cut it shorter with
#: `max_wait`, and then answers 204 sooner rather than refusing the call
Wait = Annotated[float, Query(ge=0, json_schema_extra={"maximum": MAX_WAIT})]
#: claim up to this many tasks in one step (a worker with that many free slots); the answer
#: is then `{"claimed": [...]}`
MaxQuery = Annotated[int | None, Query(alias="max", ge=1, le=MAX_CLAIM)]
#: a position this server gave (`next_cursor`; empty: the start); the store refuses others (400)
Cursor = Annotated[str | None, Query(json_schema_extra={"pattern": r"^[0-9]{0,18}$"})]


def _claimed(c: Claimed) -> JSONResp:
    return JSONResp({"task": c.task.wire(), "lease": c.lease.wire()})


def _recorded(r: Recorded) -> JSONResp:
    return JSONResp({"task": r.task.wire(), "duplicate": r.duplicate})


@router.post("/work", status_code=201, response_model=TasksReply, responses=errors(409))
async def add_work(body: WorkIn, orch: Orch, _: Caller, idem: Keyed) -> JSONResp:
    return await serve_add(orch, body, idem)


async def serve_add(orch: Orchestrator, body: TaskBatch | TaskIn, idem: Idem | None) -> JSONResp:
    """POST /work once its body and caller are checked (the route, and the fast lane)."""
    items = body.tasks if isinstance(body, TaskBatch) else [body]
    tasks = await orch.add_tasks([item.spec() for item in items], idem)
    return JSONResp({"tasks": [t.wire() for t in tasks]}, status_code=201)


@router.get("/work", response_model=TaskPage)
async def list_work(
    orch: Orch, _: Caller,
    status: TaskStatus | None = None,
    capability: str | None = None,
    session: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> JSONResp:
    tasks, nxt = await orch.list_tasks(
        status=status.value if status else None, capability=capability, session=session,
        limit=limit, cursor=cursor)
    return JSONResp({"tasks": [t.wire() for t in tasks], "next_cursor": nxt})


async def _watch_disconnect(receive: Receive, waiter: Waiter) -> None:
    """A long-poll whose client hung up must not claim a task for nobody."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            waiter.abandon()
            return


@router.get("/work/request", response_model=ClaimedReply | ClaimedBatchReply,
            responses={204: {"description": "nothing came in time"}, **errors(403, 409)})
async def request_work(request: Request, call: KeyedHolderCall, wait: Wait = 0.0,
                       max_: MaxQuery = None) -> Response:
    return await serve_request(call, wait, max_, request.receive)


async def serve_request(call: Holder, wait: float, max_: int | None,
                        receive: Receive) -> Response:
    """GET /work/request once its parameters are checked (the route, and the fast lane)."""
    session = call.session
    waiter = Waiter(session.id, frozenset(session.capabilities))
    watcher = asyncio.create_task(_watch_disconnect(receive, waiter)) if wait > 0 else None
    try:
        got = await call.orch.request_batch(session, wait, max_, waiter, call.idem)
    finally:
        if watcher is not None:
            watcher.cancel()
    if not got:
        return Response(status_code=204)
    # without `max`, the single shape of phase 1; with it, a list (even of one)
    return _claimed(got[0]) if max_ is None else JSONResp({"claimed": _claims(got)})


def offered(task: Task) -> dict[str, object]:
    """`{"task", "offer"}`: an offer of `task` (assigned to its session until it lapses)."""
    return {"task": task.wire(), "offer": {"task_id": task.id, "session_id": task.assigned_to,
                                           "expires_at": iso(task.lease_expires_at)}}


@router.get("/work/offer", response_model=OfferedReply,
            responses={204: {"description": "nothing came in time, or a newer wait of this "
                                            "session took over"}, **errors(403, 409)})
async def offer_work(request: Request, orch: Orch, session: SessionCaller,
                     wait: Wait = 0.0) -> Response:
    waiter = Waiter(session.id, frozenset(session.capabilities))
    watcher = (asyncio.create_task(_watch_disconnect(request.receive, waiter))
               if wait > 0 else None)
    try:
        got = await orch.offer_work(session, wait, waiter)
    finally:
        if watcher is not None:
            watcher.cancel()
    return Response(status_code=204) if got is None else JSONResp(offered(got))


@router.post("/work/claim", response_model=ClaimedReply, responses=errors(403, 404, 409))
async def claim(body: ClaimIn, orch: Orch, session: SessionCaller, idem: Keyed) -> JSONResp:
    return _claimed(await orch.claim(session, body.task_id, idem))


@router.post("/work/progress", response_model=RecordedReply, responses=OUTCOME)
async def progress(body: ProgressIn, orch: Orch, session: SessionCaller) -> JSONResp:
    rec = await orch.progress(session, body.task_id, body.fencing_token, body.progress,
                              body.message, _spent(body.usage),
                              None if body.rate_limit is None else body.rate_limit.report())
    return _recorded(rec)


@router.post("/work/complete", response_model=RecordedReply | CompleteBatchReply,
             responses=OUTCOME)
async def complete(body: CompleteBody, call: HolderCall) -> JSONResp:
    return await serve_complete(body, call)


async def serve_complete(body: CompleteBatch | CompleteIn, call: Holder) -> JSONResp:
    """POST /work/complete once its body is checked (the route, and the fast lane)."""
    orch, session, then = call.orch, call.session, body.then()
    if isinstance(body, CompleteBatch):
        return _batch_done(*await orch.complete_batch(
            session, [Success(o.task_id, o.fencing_token, o.result, _spent(o.usage))
                      for o in body.outcomes], then))
    if then is None:  # phase 1's call, answered as it always was
        return _recorded(await orch.complete(session, body.task_id, body.fencing_token,
                                             body.result, _spent(body.usage)))
    (one,), claimed = await orch.complete_batch(
        session, [Success(body.task_id, body.fencing_token, body.result, _spent(body.usage))],
        then)
    if isinstance(one, SwarmError):
        raise one  # the outcome was refused: so was the call (nothing was claimed)
    return JSONResp({"task": one.task.wire(), "duplicate": one.duplicate,
                     "claimed": _claims(claimed)})


def _spent(given: UsageIn | None) -> dict[str, float] | None:
    return None if given is None else given.report()


def _claims(got: list[Claimed]) -> list[dict[str, object]]:
    return [{"task": c.task.wire(), "lease": c.lease.wire()} for c in got]


def _batch_done(answers: list[Recorded | SwarmError], claimed: list[Claimed]) -> JSONResp:
    results = [error_body(a.code, a.message) if isinstance(a, SwarmError)
               else {"task": a.task.wire(), "duplicate": a.duplicate} for a in answers]
    return JSONResp({"results": results, "claimed": _claims(claimed)})


@router.post("/work/fail", response_model=RecordedReply, responses=OUTCOME)
async def fail(body: FailIn, orch: Orch, session: SessionCaller) -> JSONResp:
    rec = await orch.fail(session, body.task_id, body.fencing_token, body.error, body.retry,
                          _spent(body.usage))
    return _recorded(rec)


@router.post(ONE + "/split", status_code=201, response_model=SplitReply,
             responses=errors(403, 404, 409))
async def split(task_id: IdPath, body: SplitIn, orch: Orch, session: SessionCaller) -> JSONResp:
    """The holder splits its task: the parent waits (no lease) and completes with the
    merged results of the subtasks. A retry of the same split answers the same subtasks."""
    merge = (Merge(body.merge) if isinstance(body.merge, str)
             else Merge("task", body.merge.task.spec()))
    done = await orch.split(session, task_id, body.fencing_token,
                            [s.spec() for s in body.subtasks], merge)
    return JSONResp({"task": done.task.wire(), "subtasks": [t.wire() for t in done.subtasks],
                     "duplicate": done.duplicate}, status_code=201)


@router.post("/work/release", response_model=RecordedReply, responses=OUTCOME)
async def release(body: ReleaseIn, orch: Orch, session: SessionCaller) -> JSONResp:
    """The holder lets go of its lease (a `preempt` directive honoured, or its own
    choice): not counted against max_attempts; `note` reaches the next holder in
    `context.notes`."""
    return _recorded(await orch.release(session, body.task_id, body.fencing_token, body.note))


@router.post("/work/input-request", response_model=RecordedReply, responses=OUTCOME)
async def input_request(body: InputRequestIn, orch: Orch, session: SessionCaller) -> JSONResp:
    """The holder asks the operator: the task is `input_required`, its lease clock
    stopped until `POST /work/{id}/input` answers."""
    rec = await orch.request_input(session, body.task_id, body.fencing_token, body.question)
    return _recorded(rec)


@router.post(ONE + "/input", response_model=TaskReply, responses=errors(403, 404, 409))
async def give_input(task_id: IdPath, body: InputIn, orch: Orch, op: Operator) -> JSONResp:
    """The operator answers: back to `in_progress` for the same holder when it is alive,
    else `ready`; the answer joins `context.notes`."""
    return JSONResp({"task": (await orch.give_input(task_id, body.answer, op.name)).wire()})


@router.get(ONE, response_model=TaskDetail, responses=errors(404))
async def get_work(task_id: IdPath, orch: Orch, _: Caller) -> JSONResp:
    task, history = await orch.get_task(task_id)
    return JSONResp({"task": task.wire(), "history": [a.wire() for a in history]})


@router.post(ONE + "/cancel", response_model=TaskReply, responses=errors(403, 404, 409))
async def cancel(task_id: IdPath, orch: Orch, _: Operator,
                 body: Annotated[CancelIn | None, Body()] = None) -> JSONResp:
    reason = body.reason if body else "cancelled by operator"
    return JSONResp({"task": (await orch.cancel(task_id, reason)).wire()})
