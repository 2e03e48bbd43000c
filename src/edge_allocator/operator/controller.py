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

import aiohttp
import kopf

from edge_allocator.cluster.quantity import QuantityError, cpu_millicores
from edge_allocator.operator.cache import ClusterCache, TaskKey
from edge_allocator.operator.config import OperatorConfig
from edge_allocator.operator.extender_client import ExtenderDecisions, WhatIfError
from edge_allocator.operator.kubeapi import ApiError, KubeApi
from edge_allocator.operator.metrics import OperatorMetrics, count_reschedule
from edge_allocator.operator.network_status import network_status
from edge_allocator.operator.planner import Observed, Plan, fail, plan, status_changes
from edge_allocator.operator.podspec import build_pod
from edge_allocator.operator.replacement import (
    PRIORITY,
    NodeLoad,
    Reason,
    Trigger,
    Verdict,
    decide,
    trigger,
)
from edge_allocator.operator.views import (
    API_VERSION,
    TASK_KIND,
    PodView,
    TaskView,
    parse_time,
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
        self._loops: list[asyncio.Task[None]] = []
        self._sweeping = False
        self._stopped = False
        self.load = NodeLoad()
        self._moves: dict[TaskKey, tuple[Trigger, Verdict]] = {}  # decided, not yet started
        self._notes: dict[TaskKey, dict[str, Any]] = {}  # kept / dry-run verdicts to record
        self._last_move_from: dict[str, dt.datetime] = {}  # node -> when a task last left it
        self._asked_at: dict[TaskKey, dt.datetime | None] = {}  # newest sample when last asked

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
        self._moves.pop(key, None)
        self._notes.pop(key, None)
        self._asked_at.pop(key, None)
        self.queue.backoff.forget(key)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()
        self.metrics.phases.forget(key)

    # -- scheduling of work ------------------------------------------------------------------

    def spawn(self, key: TaskKey) -> None:
        """Reconcile ``key`` soon, without making the caller wait (workers start on first use,
        inside kopf's context, so that they can post Kubernetes events through kopf). Once
        stopped (deposed, shutting down), nothing starts again."""
        if self._stopped:
            return
        if not self._workers:
            self._workers = [
                asyncio.get_running_loop().create_task(self._work(), name=f"reconciler-{i}")
                for i in range(WORKERS)
            ]
            if self.cfg.replacement.mode != "off":
                loop = asyncio.get_running_loop()
                self._loops = [
                    loop.create_task(self._every(self.sweep, "interval_s"), name="replacement"),
                    loop.create_task(
                        self._every(self.poll_node_metrics, "metrics_interval_s"),
                        name="node-metrics",
                    ),
                ]
        self.queue.add(key)

    async def stop(self) -> None:
        self._stopped = True
        for job in self._workers + self._loops:
            job.cancel()
        await asyncio.gather(*self._workers, *self._loops, return_exceptions=True)
        self._workers = []
        self._loops = []
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
        except (OSError, TimeoutError, aiohttp.ClientError) as err:
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
        obs = Observed(
            task,
            pods,
            nodes,
            topo,
            self.clock(),
            False,
            record,
            note,
            move=self._moves.pop(key, None),
            replacement_note=self._notes.pop(key, None),
            move_timeout_s=self.cfg.replacement.move_timeout_s,
        )
        p = plan(obs, self.cfg)
        if p.confirm_absent is not None:
            if await self.api.get_pod(task.namespace, p.confirm_absent) is not None:
                self.requeue(key, 2.0)  # it exists; the watch has not caught up yet
                return
            p = plan(dataclasses.replace(obs, pod_gone_confirmed=True), self.cfg)
        for pod in p.delete_pods:
            log.info("task %s/%s: deleting pod %s", task.namespace, task.name, pod.name)
            await self.api.delete_pod(pod.namespace, pod.name, pod.uid)
        for pod in p.evict_pods:
            log.info("task %s/%s: evicting pod %s (moved)", task.namespace, task.name, pod.name)
            if not await self.api.evict_pod(pod.namespace, pod.name, pod.uid):
                # both pods run until the budget allows it; the status waits with them
                raise ApiError(429, "TooManyRequests", f"a PodDisruptionBudget holds {pod.name}")
            if pod.node_name:
                self._last_move_from[pod.node_name] = obs.now
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
        body = build_pod(
            task, attempt, site, self.cfg.scheduler_name, p.create_budget, p.create_avoid
        )
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
        # A move's record is written at once: the old pod may be evicted on the next
        # reconcile, and a restarted operator must find the move, not a stray pod.
        hold = (
            not settled
            and p.move_started is None
            and (p.create_attempt is not None or (pending is not None and now < pending[1]))
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
        if p.moved:
            self.metrics.moves.labels(p.moved).inc()
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

    # -- re-placement --------------------------------------------------------------------------

    async def _every(self, job: Callable[[], Any], interval_attr: str) -> None:
        """Run ``job`` every ``cfg.replacement.<interval_attr>`` seconds; errors never end it."""
        while True:
            await asyncio.sleep(getattr(self.cfg.replacement, interval_attr))
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except (ApiError, OSError, TimeoutError) as err:
                log.warning("%s: %s", interval_attr, err)
            except Exception:
                log.exception("%s failed", interval_attr)

    async def poll_node_metrics(self) -> None:
        """Read node usage from metrics.k8s.io into the load tracker (stale samples dropped,
        requests of this operator's pods bound since the sample added)."""
        rc, now = self.cfg.replacement, self.clock()
        try:
            page = await self.api.request("GET", "/apis/metrics.k8s.io/v1beta1/nodes")
        except ApiError as err:
            if err.status in (404, 503):
                return  # no metrics API here: overload detection is off until there is one
            raise
        for item in page.get("items") or []:
            name = str((item.get("metadata") or {}).get("name", ""))
            at = parse_time(item.get("timestamp"))
            node = self.cache.nodes.get(name)
            if at is None or node is None or not node.cpu_allocatable_m:
                continue
            if (now - at).total_seconds() > rc.metrics_max_age_s:
                continue
            try:
                used = cpu_millicores((item.get("usage") or {}).get("cpu", "0"))
            except QuantityError:
                continue
            for key in self.cache.tasks_on(name):
                for pod in self.cache.pods_of(key):
                    since = pod.scheduled_at
                    if pod.node_name == name and pod.live and since is not None and since > at:
                        used += pod.cpu_request_m
            self.load.observe(name, at, used / node.cpu_allocatable_m)

    def _in_flight(self) -> tuple[int, dict[str, int]]:
        total, per_node = 0, dict[str, int]()
        for key in self.cache.tasks:
            task = self.task(key)
            move = (task.status.get("move") if task is not None else None) or {}
            if move:
                total += 1
                node = str(move.get("fromNode") or "")
                per_node[node] = per_node.get(node, 0) + 1
        for trig, _ in self._moves.values():
            total += 1
            per_node[trig.node] = per_node.get(trig.node, 0) + 1
        return total, per_node

    def topology_changed(self) -> None:
        """Sites, links or node sites changed: tasks held for their budget look again at once,
        and a sweep looks for running tasks the change put beyond their budget."""
        for key, task in list(self.cache.tasks.items()):
            if task.status.get("reason") == "BudgetUnsatisfiable":
                self.spawn(key)
        if self.cfg.replacement.mode != "off" and not self._sweeping:
            asyncio.get_running_loop().create_task(self.sweep())

    async def sweep(self) -> None:
        """One pass of re-placement: find candidates, ask the policy, start the moves that
        clear the margin within the disruption limits (budget repairs first)."""
        if self._sweeping:
            return
        self._sweeping = True
        try:
            await self._sweep()
        finally:
            self._sweeping = False

    async def _sweep(self) -> None:
        rc, now, topo = self.cfg.replacement, self.clock(), self.cache.topology()
        found: list[tuple[int, str, TaskView, Trigger]] = []
        for key in list(self.cache.tasks):
            task = self.task(key)
            if task is None:
                continue
            pod = next((p for p in self.cache.pods_of(key) if p.attempt == task.attempts), None)
            trig = trigger(task, pod, topo, self.load, rc, now, self._last_move_from)
            if trig is not None:
                found.append((PRIORITY[trig.reason], f"{key[0]}/{key[1]}", task, trig))
        for reason in Reason:
            self.metrics.move_candidates.labels(reason.value).set(
                sum(1 for *_, t in found if t.reason is reason)
            )
        found.sort(key=lambda f: (f[0], f[1]))
        total, per_node = self._in_flight()
        asked = 0
        for _, _, task, trig in found:
            key = task.key
            if key in self._moves or asked >= rc.max_checks_per_sweep:
                continue
            if rc.mode == "on" and total >= rc.max_in_flight:
                break
            if rc.mode == "on" and per_node.get(trig.node, 0) >= rc.max_in_flight_per_node:
                continue
            newest = self.load.newest(trig.node)
            if trig.reason is Reason.OVERLOADED and self._asked_at.get(key) == newest:
                continue  # kept on this very sample already: ask again on the next one
            asked += 1
            verdict, reachable = await self._verdict(task, trig)
            if verdict is None:
                if not reachable:
                    break  # the extender is down: no point asking for the others now
                continue
            self._asked_at[key] = newest
            outcome = "would-move" if verdict.move and rc.mode == "dry-run" else "kept"
            if verdict.move and rc.mode == "on":
                pdb_ok = await self.api.evict_pod(
                    task.namespace, trig.pod.name, trig.pod.uid, dry_run=True
                )
                if pdb_ok:
                    self._moves[key] = (trig, verdict)
                    total += 1
                    per_node[trig.node] = per_node.get(trig.node, 0) + 1
                    self.spawn(key)
                    continue
                verdict = dataclasses.replace(
                    verdict,
                    move=False,
                    message=verdict.message + "; a PodDisruptionBudget refuses the eviction now",
                )
            self._notes[key] = {
                "pod": trig.pod.uid,
                "outcome": outcome,
                "reason": verdict.reason.value,
                "message": verdict.message,
            }
            self.spawn(key)

    async def _verdict(self, task: TaskView, trig: Trigger) -> tuple[Verdict | None, bool]:
        """The policy's verdict on a move (``None`` when it cannot be had now), and whether
        the extender could be reached at all."""
        reachable = False
        if self.extender is not None:
            try:
                answer = await self.extender.where_now(task, trig.pod.uid)
                return decide(trig, answer, self.cfg.replacement), True
            except WhatIfError as err:
                self.metrics.errors.labels("extender").inc()
                note, reachable = str(err), err.reachable
        else:
            note = "no extender is configured"
        if trig.reason is Reason.BUDGET_BROKEN:
            # a correctness fault is repaired without the policy: the new pod's required
            # affinity keeps it within the budget wherever kube-scheduler puts it
            return Verdict(
                True,
                trig.reason,
                f"{trig.detail}; the policy cannot be asked ({note}), so kube-scheduler "
                "places it by the budget affinity alone",
            ), reachable
        log.info("task %s/%s: re-placement check deferred: %s", *task.key, note)
        return None, reachable

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
