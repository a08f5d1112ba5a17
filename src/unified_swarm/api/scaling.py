"""Autoscaling: the decisions (GET /swarm/scaling, which KEDA's metrics-api scaler reads)
and the operator's pin of a pool's size."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from ..errors import NotFound
from ..scaling.pools import POOL_NAME_RE
from ..scaling.scaler import Scaler
from .deps import Operator, Orch, SwarmRoute
from .replies import COMMON, errors
from .responses import JSONResp
from .schemas import Body, Integral

router = APIRouter(route_class=SwarmRoute, tags=["scaling"], responses=errors(*COMMON))
PoolName = Annotated[str, Path(json_schema_extra={"pattern": POOL_NAME_RE.pattern})]


class ScaleIn(Body):
    """`desired`: the size to pin the pool to, within its [min, max]; null lifts the pin."""

    desired: Annotated[int, Field(ge=0, le=1000), Integral] | None


class PoolOut(BaseModel):
    name: str
    spawner: str
    capabilities: list[str]
    min: int
    max: int
    current: int | None
    desired: int
    reason: str
    pinned: int | None
    limited_by: list[str]
    sessions: dict[str, int]
    decisions: list[dict[str, Any]]


class ScalingReply(BaseModel):
    leader: bool
    replica_id: str
    pools: dict[str, PoolOut]


class PoolReply(BaseModel):
    pool: PoolOut


def _scaler(request: Request) -> Scaler:
    scaler: Scaler | None = request.app.state.scaler
    if scaler is None:
        raise NotFound("this server scales no pools (start it with --pools FILE)")
    return scaler


@router.get("/swarm/scaling", response_model=ScalingReply, responses=errors(403))
async def scaling(request: Request, orch: Orch, _: Operator) -> JSONResp:
    """Every pool's current and desired size, why, and the decisions behind it.
    `pools.<name>.desired` is an integer: KEDA's metrics-api `valueLocation`."""
    scaler: Scaler | None = request.app.state.scaler
    if scaler is None:
        return JSONResp({"leader": orch.leader, "replica_id": orch.settings.replica_id,
                         "pools": {}})
    return JSONResp(scaler.view())


@router.post("/swarm/pools/{pool}/scale", response_model=PoolReply,
             responses=errors(403, 404))
async def scale(pool: PoolName, body: ScaleIn, request: Request, _: Operator) -> JSONResp:
    """Pin the pool's size within [min, max] until the pin is lifted (`desired`: null);
    the autoscaler's rule resumes then. The budget still caps a pinned pool."""
    return JSONResp({"pool": await _scaler(request).pin(pool, body.desired)})
