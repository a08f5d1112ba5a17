"""The Kubernetes spawner's requests, sent by the official `kubernetes` client over real
HTTP to a loopback stand-in for the API server (no cluster here), each checked against the
client's own models (strict: an unknown field is an error): the scale subresource is read
and merge-patched; scale-in drains first, marks the victims' pods cheapest to delete, then
lowers the replicas; a refusal is a clear Unavailable."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client as k8s

from unified_swarm.core.autoscale import Decision, Observation, Policy
from unified_swarm.errors import Unavailable
from unified_swarm.models import Session, SessionStatus
from unified_swarm.scaling.kube import DELETION_COST, MERGE_PATCH, KubernetesSpawner
from unified_swarm.scaling.pools import Pool
from unified_swarm.scaling.spawner import PoolView

NS, DEPLOY = "swarm", "swarm-build"
SCALE = f"/apis/apps/v1/namespaces/{NS}/deployments/{DEPLOY}/scale"
PODS = f"/api/v1/namespaces/{NS}/pods/"


@dataclass
class FakeAPI:
    """What a real API server would answer for these calls, and every request seen."""

    replicas: int = 1
    refuse: bool = False
    requests: list[tuple[str, str, str | None, Any]] = field(default_factory=list)

    def scale_json(self) -> dict[str, Any]:
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": DEPLOY, "namespace": NS},
                "spec": {"replicas": self.replicas}, "status": {"replicas": self.replicas}}

    def answer(self, method: str, path: str, ctype: str | None,
               body: Any) -> tuple[int, dict[str, Any]]:
        self.requests.append((method, path, ctype, body))
        if self.refuse:
            return 403, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "Forbidden", "code": 403}
        if path == SCALE and method == "GET":
            return 200, self.scale_json()
        if path == SCALE and method == "PATCH":
            self.replicas = body["spec"]["replicas"]
            return 200, self.scale_json()
        if path.startswith(PODS) and method == "PATCH":
            return 200, {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": path.removeprefix(PODS), "namespace": NS,
                "annotations": body["metadata"]["annotations"]}}
        return 404, {"kind": "Status", "code": 404}


@pytest.fixture
def api() -> Iterator[tuple[FakeAPI, str]]:
    fake = FakeAPI()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(size)) if size else None
            status, reply = fake.answer(self.command, self.path.split("?")[0],
                                        self.headers.get("Content-Type"), body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = _serve

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def spawner(url: str) -> KubernetesSpawner:
    pool = Pool(name="build", policy=Policy(min=1, max=5), spawner="kubernetes",
                namespace=NS, deployment=DEPLOY)
    api_client = k8s.ApiClient(k8s.Configuration(host=url))
    return KubernetesSpawner(pool, api_client)


def session(sid: str, status: SessionStatus, pod: str) -> Session:
    return Session(id=sid, name=sid, capabilities=["build"], status=status,
                   max_concurrent_tasks=1, heartbeat_interval=10, last_heartbeat=0,
                   registered_at=float(len(sid)), metadata={"pool": "build", "host": pod},
                   current_tasks=["t"] if status == SessionStatus.BUSY else [])


def decision(current: int, desired: int) -> Decision:
    return Decision("build", 0.0, current, desired, desired, "test",
                    Observation(ready=0, idle=0, busy=current))


def scale_patches(fake: FakeAPI) -> list[k8s.V1Scale]:
    return [k8s.V1Scale.model_validate(body) for method, path, _, body in fake.requests
            if method == "PATCH" and path == SCALE]


async def test_grow_patches_the_scale_subresource(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    sp = spawner(url)
    view = PoolView([session("w1", SessionStatus.BUSY, "pod-a")])
    assert await sp.observe(view, 0.0) == 0  # 1 replica, 1 registered: none on its way
    acted = await sp.scale(decision(1, 3), view, _never_drain, 0.0)
    assert acted.replicas == 3 and fake.replicas == 3
    method, path, ctype, body = fake.requests[-1]
    assert (method, path, ctype) == ("PATCH", SCALE, MERGE_PATCH)
    assert body == {"spec": {"replicas": 3}}
    (patch,) = scale_patches(fake)
    assert patch.spec is not None and patch.spec.replicas == 3
    # two pods not registered yet count as on their way, so they are not asked for twice
    assert await sp.observe(view, 1.0) == 2


async def test_shrink_drains_marks_then_scales(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    fake.replicas = 3
    sp = spawner(url)
    view = PoolView([session("idle-1", SessionStatus.IDLE, "pod-a"),
                     session("idle-22", SessionStatus.IDLE, "pod-b"),
                     session("busy-333", SessionStatus.BUSY, "pod-c")])
    await sp.observe(view, 0.0)
    drained: list[str] = []

    async def drain(sid: str) -> None:
        assert not any(m == "PATCH" for m, *_ in fake.requests)  # drained before any patch
        drained.append(sid)

    acted = await sp.scale(decision(3, 1), view, drain, 0.0)
    assert sorted(drained) == ["idle-1", "idle-22"] and acted.replicas == 1
    patches = [(p, b) for m, p, _, b in fake.requests if m == "PATCH"]
    assert [p for p, _ in patches] == [PODS + "pod-a", PODS + "pod-b", SCALE]
    for _, body in patches[:2]:
        pod = k8s.V1Pod.model_validate(body)
        assert pod.metadata is not None and pod.metadata.annotations == {DELETION_COST: "-1000"}
    assert all(c == MERGE_PATCH for m, _, c, _ in fake.requests if m == "PATCH")
    assert fake.replicas == 1

    # the next scale-in picks another pod (the newest idle one): pods marked before get
    # their cost back
    fake.requests.clear()
    view = PoolView([session("idle-1", SessionStatus.IDLE, "pod-a"),
                     session("idle-4444", SessionStatus.IDLE, "pod-d")])
    await sp.scale(decision(2, 1), view, drain, 1.0)
    annotated = {p.removeprefix(PODS): b["metadata"]["annotations"][DELETION_COST]
                 for m, p, _, b in fake.requests if p.startswith(PODS)}
    assert annotated == {"pod-a": "0", "pod-b": "0", "pod-d": "-1000"}


async def test_a_refusal_is_unavailable(api: tuple[FakeAPI, str]) -> None:
    fake, url = api
    fake.refuse = True
    with pytest.raises(Unavailable, match="403"):
        await spawner(url).observe(PoolView(), 0.0)


async def _never_drain(sid: str) -> None:
    raise AssertionError(f"growing drained {sid}")
