"""The swarm as a whole: status, interrupt, health."""

from __future__ import annotations

from fastapi import APIRouter

from .deps import Caller, Keyed, Operator, Orch, SwarmRoute
from .replies import (
    COMMON,
    EmergencyReply,
    Health,
    InterruptReply,
    SchedulerReply,
    StatusReply,
    errors,
)
from .responses import JSONResp
from .schemas import EmergencyIn, InterruptIn

router = APIRouter(route_class=SwarmRoute, tags=["swarm"], responses=errors(*COMMON))


@router.get("/swarm/status", response_model=StatusReply)
async def status(orch: Orch, _: Caller) -> JSONResp:
    return JSONResp(await orch.status())


@router.get("/swarm/scheduler", response_model=SchedulerReply)
async def scheduler(orch: Orch, _: Caller) -> JSONResp:
    """The scheduling policy at work, how well the learned model predicts durations (recent
    and older windows), and how long a decision takes."""
    return JSONResp(orch.scheduler_view())


@router.post("/swarm/interrupt", response_model=InterruptReply, responses=errors(403))
async def interrupt(body: InterruptIn, orch: Orch, op: Operator) -> JSONResp:
    value = await orch.set_interrupt(body.reason, op.name)
    return JSONResp({"interrupt": value.wire() if value else None})


@router.delete("/swarm/interrupt", response_model=InterruptReply, responses=errors(403))
async def lift_interrupt(orch: Orch, op: Operator) -> JSONResp:
    await orch.set_interrupt(None, op.name)
    return JSONResp({"interrupt": None})


@router.post("/swarm/emergency", status_code=201, response_model=EmergencyReply,
             responses=errors(403, 409))
async def emergency(body: EmergencyIn, orch: Orch, op: Operator, idem: Keyed) -> JSONResp:
    """A task in the emergency class, above every priority: everyone hears
    `swarm.emergency`; it is offered at once to the best idle session able to take it, else
    the best-fitting session running the least important task is preempted; with
    `interrupt`, the other sessions take nothing new until it ends."""
    task, placed = await orch.emergency(body.task.spec(), body.interrupt, body.preempt,
                                        op.name, idem)
    preempted = None if placed.preempted is None else {
        "task_id": placed.preempted[0], "session_id": placed.preempted[1]}
    return JSONResp({"task": task.wire(), "assigned_to": placed.assigned_to,
                     "preempted": preempted}, status_code=201)


@router.get("/healthz", response_model=Health,
            responses={503: {"model": Health, "description": "The store does not answer"}})
async def healthz(orch: Orch) -> JSONResp:
    """Liveness, no auth. `store_ok` false (with 503) when the store does not answer."""
    health = await orch.health()
    body = {"status": "ok", "store": health.store, "replica_id": health.replica_id,
            "leader": health.leader}
    if health.error is not None:
        return JSONResp({**body, "status": "degraded", "error": health.error},
                        status_code=503, headers={"Retry-After": "1"})
    return JSONResp(body)
