"""Carry out the planner's decisions over the API: the only place where the operator writes.

One reconcile per task at a time (a per-task lock), any number of tasks at once. Reads come
from the in-memory ``ClusterCache``, primed by LIST calls before kopf starts, so a restarted
operator sees every existing pod before it thinks of creating one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import kopf

from edge_allocator.operator.cache import ClusterCache, TaskKey
from edge_allocator.operator.config import OperatorConfig
from edge_allocator.operator.extender_client import ExtenderDecisions
from edge_allocator.operator.kubeapi import ApiError, KubeApi
from edge_allocator.operator.metrics import OperatorMetrics, count_reschedule
from edge_allocator.operator.network_status import network_status
from edge_allocator.operator.planner import Observed, Plan, fail, plan, status_changes
from edge_allocator.operator.podspec import build_pod
from edge_allocator.operator.views import (
    API_VERSION,
    TASK_KIND,
    PodView,
    TaskView,
)
from edge_allocator.operator.workqueue import WorkQueue

log = logging.getLogger(__name__)

FLUSH_DELAY_S = 1.0
"""How long the status written right after a pod is created may wait: usually the pod is bound
(and running) within it, and one status write then carries Pending, Scheduled and Running at
once. Safe across crashes: the pod's name is its attempt's, so a restarted operator adopts it."""

WORKERS = 32
"""Reconciles in flight at once (each makes at most a few API calls)."""


def _rv(view: TaskView) -> int:
    try:
        return int(view.resource_version)
    except ValueError:
        return -1


class Controller:
    def __init__(
        self,
        api: KubeApi,
        cache: ClusterCache,
        cfg: OperatorConfig,
        metrics: OperatorMetrics,
        extender: ExtenderDecisions | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.api = api
        self.cache = cache
        self.cfg = cfg
        self.metrics = metrics
        self.extender = extender
        self.clock = clock
        self.queue: WorkQueue[TaskKey] = WorkQueue()
        self._workers: list[asyncio.Task[None]] = []
        self._written: dict[TaskKey, TaskView] = {}
        self._pending: dict[TaskKey, tuple[dict[str, Any], float]] = {}  # status, due (loop time)
        self._timers: dict[TaskKey, tuple[float, asyncio.TimerHandle]] = {}
        self._asked_extender: dict[TaskKey, str] = {}

    # -- state -------------------------------------------------------------------------------

    def task(self, key: TaskKey) -> TaskView | None:
        seen = self.cache.tasks.get(key)
        written = self._written.get(key)
        if seen is None:
            return None
        if written is not None and written.uid == seen.uid and _rv(written) > _rv(seen):
            return written
        self._written.pop(key, None)
        return seen

    def forget(self, key: TaskKey) -> None:
        self._written.pop(key, None)
        self._pending.pop(key, None)
        self._asked_extender.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()
        self.metrics.phases.forget(key)

    # -- scheduling of work ------------------------------------------------------------------

    def spawn(self, key: TaskKey) -> None:
        """Reconcile ``key`` soon, without making the caller wait (workers start on first use,
        inside kopf's context, so that they can post Kubernetes events through kopf)."""
        if not self._workers:
            self._workers = [
                asyncio.get_running_loop().create_task(self._work(), name=f"reconciler-{i}")
                for i in range(WORKERS)
            ]
        self.queue.add(key)

    async def stop(self) -> None:
        for job in self._workers:
            job.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile(key)
            finally:
                self.queue.done(key)

    def requeue(self, key: TaskKey, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay_s
        current = self._timers.get(key)
        if current is not None:
            if current[0] <= due and not current[1].cancelled():
                return
            current[1].cancel()
        handle = loop.call_at(due, self._fire, key)
        self._timers[key] = (due, handle)

    def _fire(self, key: TaskKey) -> None:
        self._timers.pop(key, None)
        self.spawn(key)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: TaskKey) -> None:
        """One reconcile of ``key``; errors are logged, counted and retried after the task's own
        backoff, which grows while it keeps failing and starts over after a success (so one
        broken task is not retried every few seconds forever).
        (Called by the workers, which never run two reconciles of one task at once.)"""
        started = time.perf_counter()
        backoff = self.queue.backoff
        try:
            await self._reconcile(key)
        except ApiError as err:
            self.metrics.errors.labels("api").inc()
            delay = backoff.failed(key)
            log.warning("task %s/%s: API error, retrying in %.1fs: %s", *key, delay, err)
            self.requeue(key, delay)
        except (OSError, TimeoutError) as err:
            self.metrics.errors.labels("network").inc()
            delay = backoff.failed(key)
            log.warning("task %s/%s: network error, retrying in %.1fs: %s", *key, delay, err)
            self.requeue(key, delay)
        except Exception:
            self.metrics.errors.labels("internal").inc()
            delay = backoff.failed(key)
            log.exception("task %s/%s: reconcile failed, retrying in %.1fs", *key, delay)
            self.requeue(key, delay)
        else:
            backoff.forget(key)
        finally:
            self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
            self.metrics.backing_off.set(len(backoff))

    async def _reconcile(self, key: TaskKey) -> None:
        server = self.task(key)
        if server is None or server.deleting:
            return
        pending = self._pending.get(key)
        task = server if pending is None else dataclasses.replace(server, status=pending[0])
        self.metrics.phases.set(key, task.phase)
        nodes, topo = self.cache.nodes, self.cache.topology()
        pods = {
            p.attempt: p
            for p in self.cache.pods_of(key)
            if p.owner_uid in (None, task.uid) or p.attempt == task.attempts
        }
        record, note = await self._ask_extender(task, pods.get(task.attempts))
        obs = Observed(task, pods, nodes, topo, self.clock(), False, record, note)
        p = plan(obs, self.cfg)
        if p.confirm_absent is not None:
            if await self.api.get_pod(task.namespace, p.confirm_absent) is not None:
                self.requeue(key, 2.0)  # it exists; the watch has not caught up yet
                return
            p = plan(dataclasses.replace(obs, pod_gone_confirmed=True), self.cfg)
        for pod in p.delete_pods:
            log.info("task %s/%s: deleting pod %s", task.namespace, task.name, pod.name)
            await self.api.delete_pod(pod.namespace, pod.name, pod.uid)
        if p.create_attempt is not None:
            p = await self._create_pod(task, obs, p, p.create_attempt)
        await self._apply(server, task, p)

    async def _ask_extender(self, task: TaskView, pod: PodView | None) -> tuple[Any, str | None]:
        """Fetch the decision record once per pod when the pod does not carry it."""
        if self.extender is None or pod is None or not pod.node_name or pod.decision_json:
            return None, None
        if (task.status.get("decision") or {}).get("recorded"):
            return None, None
        if self._asked_extender.get(task.key) == pod.uid:
            return None, "the extender held no record when asked"
        self._asked_extender[task.key] = pod.uid
        return await self.extender.fetch(pod.namespace, pod.name, pod.uid)

    async def _create_pod(self, task: TaskView, obs: Observed, p: Plan, attempt: int) -> Plan:
        site = str(p.status.get("dataSourceSite") or "")
        body = build_pod(task, attempt, site, self.cfg.scheduler_name)
        name = body["metadata"]["name"]
        try:
            created = await self.api.create_pod(task.namespace, body)
            self.metrics.pods_created.inc()
            p.status["podUID"] = created["metadata"]["uid"]
            return p
        except ApiError as err:
            if err.status in (400, 422):
                return fail(
                    obs,
                    self.cfg,
                    "PodRejected",
                    f"the API server rejected pod {name}: {err.message}",
                )
            if err.status != 409:
                raise
        existing = await self.api.get_pod(task.namespace, name)
        if existing is None:
            raise ApiError(409, "Conflict", f"pod {name} exists and vanished; retrying")
        owners = existing["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == task.uid and o.get("controller") for o in owners):
            return fail(
                obs,
                self.cfg,
                "PodNameTaken",
                f"pod {name} exists and is not controlled by this EdgeTask",
            )
        p.status["podUID"] = existing["metadata"]["uid"]  # ours from before: adopt it
        if p.events and p.events[0].reason == "PodCreated":
            p.events.pop(0)
        return p

    async def _apply(self, server: TaskView, task: TaskView, p: Plan) -> None:
        """Write the planned status (``server`` is what the API holds, ``task`` what was planned
        from), then log, count, post events and requeue."""
        key = task.key
        now = asyncio.get_running_loop().time()
        pending = self._pending.get(key)
        patch = status_changes(server.status, p.status)
        settled = p.status.get("phase") in ("Succeeded", "Failed")
        hold = not settled and (
            p.create_attempt is not None or (pending is not None and now < pending[1])
        )
        if patch and hold:
            due = pending[1] if pending is not None else now + FLUSH_DELAY_S
            self._pending[key] = (p.status, due)
            self.requeue(key, max(0.0, due - now))
        elif patch:
            resp = await self.api.patch_task_status(task.namespace, task.name, patch)
            self._pending.pop(key, None)
            written = TaskView.from_body(resp)
            if _rv(written) > _rv(server):
                self._written[key] = written
        else:
            self._pending.pop(key, None)
        new_phase = p.status.get("phase")
        if new_phase != task.phase:
            log.info(
                "task %s/%s: %s -> %s (%s)",
                task.namespace,
                task.name,
                task.phase or "-",
                new_phase,
                p.status.get("message", ""),
                extra={
                    "task": f"{task.namespace}/{task.name}",
                    "phase": new_phase,
                    "previous_phase": task.phase,
                    "reason": p.status.get("reason"),
                    "attempt": p.status.get("attempts"),
                    "node": p.status.get("nodeName"),
                },
            )
        self.metrics.phases.set(key, new_phase if isinstance(new_phase, str) else None)
        if p.placed:
            self.metrics.placements.inc()
        if p.rescheduled:
            count_reschedule(self.metrics, p.rescheduled)
        ref = kopf.Body(
            {
                "apiVersion": API_VERSION,
                "kind": TASK_KIND,
                "metadata": {"name": task.name, "namespace": task.namespace, "uid": task.uid},
            }
        )
        for ev in p.events:
            kopf.event(ref, type=ev.type, reason=ev.reason, message=ev.message)
        if p.requeue_after is not None:
            self.requeue(key, p.requeue_after)

    # -- EdgeNetwork status ------------------------------------------------------------------

    async def update_networks(self) -> None:
        """Refresh every EdgeNetwork's counts and Ready condition (only when they change)."""
        topo = self.cache.topology()
        now = self.clock()
        for net in list(self.cache.networks.values()):
            patch = status_changes(net.status, network_status(net, topo, now))
            if not patch:
                continue
            try:
                await self.api.patch_network_status(net.name, patch)
            except ApiError as err:
                if err.status != 404:
                    self.metrics.errors.labels("api").inc()
                    log.warning("edgenetwork %s: status update failed: %s", net.name, err)
