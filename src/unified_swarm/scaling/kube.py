"""`spawner = "kubernetes"`: the pool is a Deployment; the scaler sets its scale
subresource through the official `kubernetes` client (`pip install
'unified-swarm[kubernetes]'`), in-cluster config first, then the local kubeconfig.

Growing sets `spec.replicas`. Shrinking first drains the chosen sessions (idle ones first,
so they take nothing new from this moment), marks their pods cheapest to delete
(`controller.kubernetes.io/pod-deletion-cost: "-1000"`), then lowers `spec.replicas`: the
ReplicaSet deletes those pods, whose workers get SIGTERM, which `swarm worker` treats as
drain (give the pod a `terminationGracePeriodSeconds` longer than your longest task). A
session's pod is its `metadata.host` (the worker's hostname, the pod's name).

The service account needs `get` and `patch` on `deployments/scale` and `patch` on `pods`
(docs/scaling.md has the Role). No cluster is used in the tests: they run this client
against a loopback HTTP server and check each request against the client's own models.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ..core.autoscale import Decision
from ..errors import InvalidInput, Unavailable
from .pools import Pool
from .spawner import Acted, Drain, PoolView, scale_in_order

try:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException
except ImportError:  # pragma: no cover - the extra is not installed
    k8s = None  # type: ignore[assignment]

log = logging.getLogger("unified_swarm.scaling")
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
CHEAPEST, DEFAULT_COST = "-1000", "0"
#: a merge patch: the client's default for a PATCH is a JSON patch, which takes a list of
#: operations, not an object
MERGE_PATCH = "application/merge-patch+json"
T = TypeVar("T")


class KubernetesSpawner:
    kind = "kubernetes"

    def __init__(self, pool: Pool, api: Any) -> None:
        assert pool.deployment is not None
        self.pool, self.name, self.namespace = pool, pool.deployment, pool.namespace
        self.apps = k8s.AppsV1Api(api)
        self.core = k8s.CoreV1Api(api)
        self.replicas: int | None = None
        self.marked: set[str] = set()
        self.events: list[tuple[str, dict[str, Any]]] = []

    @classmethod
    def from_config(cls, pool: Pool) -> KubernetesSpawner:
        if k8s is None:
            raise InvalidInput(f"pool {pool.name!r} uses the kubernetes spawner, which needs "
                               "the kubernetes client: pip install 'unified-swarm[kubernetes]'")
        try:
            k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        except ConfigException:
            try:
                k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
            except (ConfigException, OSError) as exc:
                raise InvalidInput(f"pool {pool.name!r}: no Kubernetes configuration (not in "
                                   f"a cluster, and no kubeconfig): {exc}") from None
        return cls(pool, k8s.ApiClient())

    async def _call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kw)
        except k8s.ApiException as exc:
            raise Unavailable(f"kubernetes API refused {fn.__name__} ({exc.status} "
                              f"{exc.reason})", retry_after=5.0) from None
        except OSError as exc:  # urllib3's connection errors are OSErrors
            raise Unavailable(f"kubernetes API unreachable: {exc}", retry_after=5.0) from None

    async def observe(self, view: PoolView, now: float) -> int:
        scale = await self._call(self.apps.read_namespaced_deployment_scale, self.name,
                                 self.namespace)
        self.replicas = (scale.spec.replicas if scale.spec is not None else None) or 0
        return max(0, self.replicas - len(view.idle) - len(view.busy))

    async def scale(self, decision: Decision, view: PoolView, drain: Drain,
                    now: float) -> Acted:
        replicas = self.replicas or 0
        change = decision.desired - decision.current
        if change == 0:
            return Acted()
        acted = Acted()
        if change < 0:
            victims = scale_in_order(view)[:-change]
            for session in victims:
                await drain(session.id)
                acted.drained.append(session.id)
            await self._mark({str(s.metadata.get("host")) for s in victims
                              if s.metadata.get("host")})
        acted.replicas = max(0, replicas + change)
        body = k8s.V1Scale(spec=k8s.V1ScaleSpec(replicas=acted.replicas))
        await self._call(self.apps.patch_namespaced_deployment_scale, self.name,
                         self.namespace, body, _content_type=MERGE_PATCH)
        self.replicas = acted.replicas
        return acted

    async def _mark(self, pods: set[str]) -> None:
        """Victims' pods cheapest to delete; pods marked before and kept (the ReplicaSet
        deleted others), back to the default cost."""
        for pod in sorted(self.marked - pods):
            await self._annotate(pod, DEFAULT_COST)
        for pod in sorted(pods):
            await self._annotate(pod, CHEAPEST)
        self.marked = set(pods)

    async def _annotate(self, pod: str, cost: str) -> None:
        body = k8s.V1Pod(metadata=k8s.V1ObjectMeta(annotations={DELETION_COST: cost}))
        try:
            await self._call(self.core.patch_namespaced_pod, pod, self.namespace, body,
                             _content_type=MERGE_PATCH)
        except Unavailable as exc:  # a pod gone already: the ReplicaSet's order decides
            log.info("pool %s: could not mark pod %s: %s", self.pool.name, pod, exc.message)

    def status(self) -> dict[str, Any]:
        return {"deployment": self.name, "namespace": self.namespace,
                "replicas": self.replicas, "marked_for_deletion": sorted(self.marked)}

    async def close(self, on_exit: str, drain: Drain, within: float) -> None:
        return None  # the Deployment's pods are the cluster's, not this process's
