"""What to do next for one EdgeTask, as a pure function of what the operator observes.

Level-triggered: the plan depends only on the task (spec and status), its pods, the nodes and
the sites at this instant, never on which event woke the operator. So a restarted operator, or
a second replica, reaches the same plan, and deterministic pod names make creation idempotent.

Life of a task::

    (new) --validate source--> Pending --pod bound--> Scheduled --pod running--> Running
      |                          ^  |                     |                          |
      | unknown site             |  +-- pod failed, evicted, deleted, node lost ----+
      v                          |       (attempt < maxAttempts: backoff, next attempt)
    Failed <-- attempts used up -+                                   Succeeded <-- pod done
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_allocator.cluster.affinity import BudgetPlacement, budget_placement
from edge_allocator.cluster.annotations import DecisionRecord
from edge_allocator.operator.conditions import set_condition
from edge_allocator.operator.config import OperatorConfig
from edge_allocator.operator.decisions import parse_record, recorded_decision, unrecorded_decision
from edge_allocator.operator.podspec import pod_name
from edge_allocator.operator.replacement import Trigger, Verdict
from edge_allocator.operator.topology import Topology
from edge_allocator.operator.views import (
    TERMINAL_TASK_PHASES,
    NodeView,
    PodView,
    TaskView,
    format_time,
    parse_time,
)

COND_SCHEDULED = "Scheduled"
COND_READY = "Ready"
COND_COMPLETED = "Completed"
COND_FAILED = "Failed"
COND_REPLACED = "Replaced"

BUDGET_RECHECK_S = 30.0
"""How often a task held for an unsatisfiable budget looks again (EdgeNetwork and node changes
wake it sooner)."""


@dataclass(frozen=True)
class Observed:
    """Everything the planner may look at."""

    task: TaskView
    pods: Mapping[int, PodView]  # this task's pods by attempt number
    nodes: Mapping[str, NodeView]
    topology: Topology
    now: dt.datetime
    pod_gone_confirmed: bool = False  # a direct GET found the current attempt's pod absent
    extender_record: DecisionRecord | None = None
    extender_note: str | None = None
    move: tuple[Trigger, Verdict] | None = None  # start this move (decided by the sweep)
    replacement_note: Mapping[str, Any] | None = None  # a kept or dry-run verdict to record
    move_timeout_s: float = 120.0


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Plan:
    """The actions for one reconcile; the executor carries them out in this order:
    delete pods, create the pod, write status, post events, re-check after ``requeue_after``."""

    status: dict[str, Any]
    delete_pods: list[PodView] = field(default_factory=list)
    create_attempt: int | None = None
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    confirm_absent: str | None = None  # GET this pod before believing it is gone
    rescheduled: str | None = None  # reason, when an attempt ended and another will follow
    placed: bool = False  # the pod was seen bound for the first time
    create_budget: BudgetPlacement | None = None  # the budget affinity of the pod to create
    create_avoid: str | None = None  # keep the pod to create off this node (a move)
    evict_pods: list[PodView] = field(default_factory=list)  # via the Eviction API (PDBs)
    moved: str | None = None  # reason, when a move completed
    move_started: str | None = None  # reason, when a move started


def plan(obs: Observed, cfg: OperatorConfig) -> Plan:
    """The next actions for ``obs.task`` (see the module docstring for the life cycle)."""
    return _Planner(obs, cfg).run()


def fail(obs: Observed, cfg: OperatorConfig, reason: str, message: str) -> Plan:
    """A plan that ends the task as Failed (for errors found while carrying out a plan)."""
    planner = _Planner(obs, cfg)
    planner._fail_for_good(reason, message)
    return planner.finish()


class _Planner:
    def __init__(self, obs: Observed, cfg: OperatorConfig) -> None:
        self.obs = obs
        self.cfg = cfg
        self.task = obs.task
        self.out = Plan(status=dict(obs.task.status))
        self.conds: list[dict[str, Any]] = list(self.out.status.get("conditions") or [])

    # -- entry -------------------------------------------------------------------------------

    def run(self) -> Plan:
        task = self.task
        if task.deleting or task.phase in TERMINAL_TASK_PHASES:
            return self.out
        n = task.attempts
        if n == 0:
            site = self._resolve_source()
            if site is not None:
                self._start_attempt(1, site)
        else:
            self._follow(n)
        return self.finish()

    def finish(self) -> Plan:
        self._delete_strays()
        self.out.status["observedGeneration"] = self.task.generation
        self.out.status["conditions"] = self.conds
        return self.out

    # -- steps -------------------------------------------------------------------------------

    def _resolve_source(self) -> str | None:
        """The data source's site, or ``None`` after failing the task with the reason."""
        task, topo = self.task, self.obs.topology
        if task.data_source_node:
            node = task.data_source_node
            if node not in self.obs.nodes:
                self._fail_for_good(
                    "DataSourceNotFound", f"spec.dataSource.node: node {node!r} does not exist"
                )
                return None
            site = topo.site_of(node)
            if site is None:
                self._fail_for_good(
                    "DataSourceSiteUnknown",
                    f"spec.dataSource.node: node {node!r} has no topology.kubernetes.io/zone "
                    "label and no EdgeNetwork nodeOverride, so its site is unknown",
                )
            return site
        site = task.data_source_site or ""
        if not topo.has_site(site):
            self._fail_for_good(
                "DataSourceNotFound",
                f"spec.dataSource.site: site {site!r} is not declared by any EdgeNetwork and "
                f"no node has the label topology.kubernetes.io/zone={site}",
            )
            return None
        return site

    def _follow(self, n: int) -> None:
        st, obs = self.out.status, self.obs
        move = st.get("move")
        if isinstance(move, dict):
            self._follow_move(n, move)
            return
        pending_next = parse_time(st.get("nextAttemptTime"))
        if pending_next is not None:
            self._wait_or_start_next(n, pending_next)
            return
        pod = obs.pods.get(n)
        if pod is None:
            if not st.get("podUID"):
                self._create(n)  # created but not confirmed (e.g. restart): retry
            elif not obs.pod_gone_confirmed:
                self.out.confirm_absent = pod_name(self.task.name, n)
            else:
                self._attempt_ended(n, "PodDeleted", f"pod {st.get('podName')} was deleted")
            return
        if pod.owner_uid != self.task.uid:
            self._fail_for_good(
                "PodNameTaken", f"pod {pod.name} exists and is not controlled by this EdgeTask"
            )
            return
        if pod.deleting:
            self._attempt_ended(n, "PodDeleted", f"pod {pod.name} is being deleted")
            return
        if pod.phase == "Succeeded":
            self._observe_placement(pod)
            self._succeed(pod)
            return
        if pod.phase == "Failed":
            reason = pod.reason or "PodFailed"
            self._observe_placement(pod)
            self._attempt_ended(n, reason, pod.message or f"pod {pod.name} failed")
            return
        if pod.node_name:
            node = obs.nodes.get(pod.node_name)
            if node is None:
                self.out.delete_pods.append(pod)
                self._attempt_ended(n, "NodeLost", f"node {pod.node_name} was deleted")
                return
            if node.ready is False:
                since = node.ready_changed or obs.now
                left = self.cfg.node_lost_grace_s - (obs.now - since).total_seconds()
                if left <= 0:
                    self.out.delete_pods.append(pod)
                    self._attempt_ended(
                        n,
                        "NodeNotReady",
                        f"node {node.name} has been NotReady for more than "
                        f"{self.cfg.node_lost_grace_s:g}s",
                    )
                    return
                self._requeue(left)
        self._observe_placement(pod)
        self._observe_progress(pod)
        self._replacement(pod)

    # -- re-placement (make-before-break) ---------------------------------------------------

    def _replacement(self, pod: PodView) -> None:
        """Start the move the sweep decided, or record a kept / dry-run verdict."""
        st, obs = self.out.status, self.obs
        if self.out.create_attempt is not None or st.get("phase") != "Running":
            return
        if obs.move is not None:
            trig, verdict = obs.move
            if trig.pod.uid == pod.uid and verdict.move:
                self._start_move(trig, verdict)
                return
        note = obs.replacement_note
        if note is not None and note.get("pod") == pod.uid:
            old = st.get("replacementCheck") or {}
            st["replacementCheck"] = {**note, "at": format_time(obs.now)}
            dry = note.get("outcome") == "would-move"
            reason = "DryRun" if dry else "Kept"
            message = str(note.get("message") or "")
            self._cond(COND_REPLACED, False, reason, message)
            if old.get("message") != message:
                self._event("Normal", "WouldMove" if dry else "Kept", message)

    def _start_move(self, trig: Trigger, verdict: Verdict) -> None:
        st, task, now = self.out.status, self.task, self.obs.now
        n = task.attempts
        if not self._create(n + 1, avoid=trig.node):
            return
        name = pod_name(task.name, n + 1)
        st.update(
            {
                "attempts": n + 1,
                "podName": name,
                "podUID": None,
                "createdPodTime": format_time(now),
                "reason": "Moving",
                "message": f"moving from {trig.node}: {verdict.message}",
                "move": {
                    "reason": verdict.reason.value,
                    "message": verdict.message,
                    "fromAttempt": n,
                    "fromPod": trig.pod.name,
                    "fromNode": trig.node,
                    "predictedNode": verdict.target,
                    "predictedGainRatio": verdict.gain_ratio,
                    "startedAt": format_time(now),
                },
            }
        )
        self.out.move_started = verdict.reason.value
        self._cond(COND_REPLACED, False, "Moving", st["message"])
        self._event("Normal", "Moving", f"pod {name} created to move the task: {verdict.message}")
        self._requeue(self.obs.move_timeout_s)

    def _follow_move(self, n: int, move: Mapping[str, Any]) -> None:
        """A move in flight: the old pod runs until the new one does (make-before-break)."""
        st, obs = self.out.status, self.obs
        old = obs.pods.get(_int(move.get("fromAttempt"), -1))
        new = obs.pods.get(n)
        if old is not None and old.phase == "Succeeded":
            # the work finished where it was: the move is moot
            st["move"] = None
            st["attempts"], st["podName"], st["podUID"] = old.attempt, old.name, old.uid
            if new is not None and new.live:
                self.out.delete_pods.append(new)
            self._observe_placement(old)
            self._succeed(old)
            return
        if new is None:
            if not st.get("podUID"):
                if not self._create(n, avoid=str(move.get("fromNode") or "")):
                    self._abort_move(move, old, None, "no site is within the budget any more")
            elif not obs.pod_gone_confirmed:
                self.out.confirm_absent = pod_name(self.task.name, n)
            else:
                self._abort_move(move, old, None, f"pod {st.get('podName')} was deleted")
            return
        if st.get("podUID") != new.uid:
            st["podUID"] = new.uid
        if new.deleting or new.phase in ("Failed", "Succeeded"):
            if new.phase == "Succeeded":
                st["move"] = None
                if old is not None and old.live:
                    self.out.delete_pods.append(old)
                self._observe_placement(new)
                self._succeed(new)
                return
            self._abort_move(move, old, new, f"pod {new.name} {new.phase.lower()}")
            return
        if new.phase == "Running" and new.node_name:
            self._complete_move(move, old, new)
            return
        started = parse_time(move.get("startedAt")) or obs.now
        left = obs.move_timeout_s - (obs.now - started).total_seconds()
        if left <= 0:
            why = new.unschedulable_message or f"still {new.phase} on {new.node_name or 'no node'}"
            self._abort_move(
                move, old, new, f"pod {new.name} not running after {obs.move_timeout_s:g}s: {why}"
            )
            return
        if old is not None and not old.live:
            # the old pod ended (its node died, say): the new pod is the task now
            self._observe_placement(new)
            self._observe_progress(new)
        self._requeue(min(left, 5.0))

    def _complete_move(self, move: Mapping[str, Any], old: PodView | None, new: PodView) -> None:
        st, now = self.out.status, self.obs.now
        if old is not None and old.live:
            self.out.evict_pods.append(old)
        from_node = str(move.get("fromNode") or "")
        reason = str(move.get("reason") or "Moved")
        st["move"] = None
        st["moves"] = _int(st.get("moves")) + 1
        st["previousNode"] = from_node
        st["lastMoveTime"] = format_time(now)
        st["lastMoveReason"] = reason
        st["startTime"] = None
        st["scheduledTime"] = None
        self._observe_placement(new)
        self._observe_progress(new)
        gain = move.get("predictedGainRatio")
        gain_text = f" (predicted gain {gain:.0%})" if isinstance(gain, (int, float)) else ""
        message = f"moved from {from_node} to {new.node_name}{gain_text}: {move.get('message')}"
        self._cond(COND_REPLACED, True, reason, message)
        self._event("Normal", "Moved", message)
        self.out.moved = reason

    def _abort_move(
        self, move: Mapping[str, Any], old: PodView | None, new: PodView | None, why: str
    ) -> None:
        """Give the move up: the old pod stays the task's, the new one goes."""
        st, now = self.out.status, self.obs.now
        if new is not None and new.live:
            self.out.delete_pods.append(new)
        st["move"] = None
        st["attempts"] = _int(move.get("fromAttempt"), self.task.attempts)
        st["podName"] = move.get("fromPod")
        st["podUID"] = old.uid if old is not None else None
        st["lastMoveTime"] = format_time(now)  # the cooldown applies to failed moves too
        if old is not None:
            self._observe_placement(old)
            self._observe_progress(old)
        st["reason"] = "MoveAborted"
        st["message"] = f"move from {move.get('fromNode')} given up: {why}"
        self._cond(COND_REPLACED, False, "MoveAborted", st["message"])
        self._event("Warning", "MoveAborted", st["message"])

    def _wait_or_start_next(self, n: int, due: dt.datetime) -> None:
        left = (due - self.obs.now).total_seconds()
        if left > 0:
            self._requeue(left)
            return
        self._start_attempt(n + 1, str(self.out.status.get("dataSourceSite") or ""))

    def _budget(self, source_site: str) -> BudgetPlacement | None:
        budget = self.task.latency_budget_ms
        if budget is None:
            return None
        return budget_placement(
            self.obs.topology, source_site, self.task.data_source_node, float(budget)
        )

    def _create(self, attempt: int, avoid: str | None = None) -> bool:
        """Plan pod ``attempt`` with the budget affinity; False (and the task held Pending
        with the reason) when no site is within the budget."""
        st = self.out.status
        source = str(st.get("dataSourceSite") or "")
        placement = self._budget(source)
        if placement is not None and not placement.satisfiable:
            budget = float(self.task.latency_budget_ms or 0)
            message = placement.unsatisfiable_message(source, budget)
            if st.get("reason") != "BudgetUnsatisfiable" or st.get("message") != message:
                self._event("Warning", "BudgetUnsatisfiable", message)
            st.update({"phase": "Pending", "reason": "BudgetUnsatisfiable", "message": message})
            self._cond(COND_SCHEDULED, False, "BudgetUnsatisfiable", message)
            self._requeue(BUDGET_RECHECK_S)
            return False
        self.out.create_attempt = attempt
        self.out.create_budget = placement
        self.out.create_avoid = avoid
        return True

    def _start_attempt(self, attempt: int, source_site: str) -> None:
        st, task, now = self.out.status, self.task, self.obs.now
        name = pod_name(task.name, attempt)
        st["dataSourceSite"] = source_site
        if not self._create(attempt):
            return
        for key in (
            "podUID",
            "nodeName",
            "site",
            "networkLatencyMs",
            "decision",
            "nextAttemptTime",
            "scheduledTime",
            "startTime",
        ):
            st[key] = None
        st.update(
            {
                "attempts": attempt,
                "podName": name,
                "dataSourceSite": source_site,
                "createdPodTime": format_time(now),
                "phase": "Pending",
                "reason": "PodCreated",
                "message": f"created pod {name} (attempt {attempt} of {task.max_attempts})",
            }
        )
        self._cond(COND_SCHEDULED, False, "Pending", f"waiting for {self.cfg.scheduler_name}")
        self._cond(COND_READY, False, "PodPending", f"pod {name} is not running yet")
        self._event("Normal", "PodCreated", st["message"])

    def _observe_placement(self, pod: PodView) -> None:
        """Node, site, latency and decision once the pod is bound."""
        st, topo = self.out.status, self.obs.topology
        if st.get("podUID") != pod.uid:
            st["podUID"] = pod.uid
        if not pod.node_name:
            return
        site = topo.site_of(pod.node_name)
        first_time = st.get("nodeName") != pod.node_name
        st["nodeName"] = pod.node_name
        st["site"] = site
        source = str(st.get("dataSourceSite") or "")
        if self.task.data_source_node and self.task.data_source_node == pod.node_name:
            st["networkLatencyMs"] = 0
        else:
            st["networkLatencyMs"] = topo.latency_ms(source, site) if site else None
        st["scheduledTime"] = st.get("scheduledTime") or format_time(
            pod.scheduled_at or self.obs.now
        )
        st["decision"] = self._decision(pod)
        where = f"{pod.node_name} (site {site})" if site else pod.node_name
        self._cond(COND_SCHEDULED, True, "Scheduled", f"pod {pod.name} bound to {where}")
        if first_time:
            self.out.placed = True
            self._event("Normal", "Scheduled", f"Pod {pod.name} bound to {where}")

    def _decision(self, pod: PodView) -> dict[str, Any]:
        node = pod.node_name or ""
        record = parse_record(pod.decision_json)
        if record is not None:
            return recorded_decision(record, node, "annotation")
        if self.obs.extender_record is not None:
            return recorded_decision(self.obs.extender_record, node, "extender")
        previous = self.out.status.get("decision") or {}
        if previous.get("recorded"):
            return dict(previous)
        return unrecorded_decision(self.cfg.scheduler_name, self.obs.extender_note)

    def _observe_progress(self, pod: PodView) -> None:
        st = self.out.status
        old_phase = self.task.phase
        if not pod.node_name:
            # Waiting for the scheduler: the status written at creation already says so; only
            # an Unschedulable verdict is news (one write less per task on the busy path).
            st["phase"] = "Pending"
            if pod.unschedulable_message:
                st["reason"] = "Unschedulable"
                st["message"] = f"pod {pod.name}: {pod.unschedulable_message}"
                self._cond(COND_SCHEDULED, False, "Unschedulable", st["message"])
            return
        if pod.phase == "Running":
            st["phase"], st["reason"] = "Running", "PodRunning"
            st["message"] = f"pod {pod.name} is running on {pod.node_name}"
            st["startTime"] = st.get("startTime") or format_time(pod.started_at or self.obs.now)
            if pod.ready:
                self._cond(COND_READY, True, "PodReady", st["message"])
            else:
                self._cond(COND_READY, False, "ContainersNotReady", f"pod {pod.name} is not ready")
            if old_phase != "Running":
                self._event("Normal", "Running", st["message"])
            return
        st["phase"], st["reason"] = "Scheduled", "PodScheduled"
        st["message"] = f"pod {pod.name} is starting on {pod.node_name}"

    def _succeed(self, pod: PodView) -> None:
        st = self.out.status
        st.update(
            {
                "phase": "Succeeded",
                "reason": "PodSucceeded",
                "message": f"pod {pod.name} completed on {pod.node_name}",
                "completionTime": format_time(self.obs.now),
            }
        )
        self._cond(COND_COMPLETED, True, "PodSucceeded", st["message"])
        self._cond(COND_READY, False, "PodCompleted", st["message"])
        self._event("Normal", "Completed", st["message"])

    def _attempt_ended(self, n: int, reason: str, message: str) -> None:
        """Attempt ``n`` is over without success: retry after a backoff, or give up."""
        st, task, now = self.out.status, self.task, self.obs.now
        st["lastFailure"] = f"attempt {n}: {reason}: {message}"
        self._cond(COND_READY, False, reason, message)
        if n - _int(st.get("moves")) >= task.max_attempts:
            self._fail_for_good(
                reason, f"gave up after {n} of {task.max_attempts} attempts; last: {message}"
            )
            return
        delay = self.cfg.backoff_s(n)
        self.out.rescheduled = reason
        due = now + dt.timedelta(seconds=math.ceil(delay))
        st.update(
            {
                "phase": "Pending",
                "reason": "Rescheduling",
                "message": f"attempt {n} ended ({reason}: {message}); attempt {n + 1} "
                f"of {task.max_attempts} in {math.ceil(delay)}s",
                "nextAttemptTime": format_time(due),
            }
        )
        self._cond(COND_SCHEDULED, False, "Rescheduling", st["message"])
        self._event("Warning", "Rescheduling", st["message"])
        if delay <= 0:
            st["nextAttemptTime"] = None
            self.out.create_attempt = None
            self.out.create_budget = None
            self._start_attempt(n + 1, str(st.get("dataSourceSite") or ""))
        else:
            self._requeue(math.ceil(delay))

    def _fail_for_good(self, reason: str, message: str) -> None:
        st = self.out.status
        st.update(
            {
                "phase": "Failed",
                "reason": reason,
                "message": message,
                "completionTime": format_time(self.obs.now),
                "nextAttemptTime": None,
            }
        )
        self._cond(COND_FAILED, True, reason, message)
        self._cond(COND_READY, False, reason, message)
        if not any(
            c.get("type") == COND_SCHEDULED and c.get("status") == "True" for c in self.conds
        ):
            self._cond(COND_SCHEDULED, False, reason, message)
        self.out.create_attempt = None
        self._event("Warning", "Failed", message)

    def _delete_strays(self) -> None:
        """Live pods of other attempts must go: one live pod per task, at most."""
        st = self.out.status
        keep = (
            _int(st.get("attempts")) if self.out.create_attempt is None else self.out.create_attempt
        )
        also = _int((st.get("move") or {}).get("fromAttempt"), -1)
        if st.get("phase") in TERMINAL_TASK_PHASES:
            keep = also = -1
        gone = self.out.delete_pods + self.out.evict_pods
        for attempt, pod in self.obs.pods.items():
            mine = pod.owner_uid == self.task.uid
            if attempt not in (keep, also) and pod.live and mine and pod not in gone:
                self.out.delete_pods.append(pod)

    # -- helpers -----------------------------------------------------------------------------

    def _cond(self, type_: str, status: bool, reason: str, message: str) -> None:
        self.conds = set_condition(
            self.conds, type_, status, reason, message, self.obs.now, self.task.generation
        )

    def _event(self, type_: str, reason: str, message: str) -> None:
        self.out.events.append(Event(type_, reason, message))

    def _requeue(self, seconds: float) -> None:
        current = self.out.requeue_after
        self.out.requeue_after = seconds if current is None else min(current, seconds)


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def status_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch for ``status`` that turns ``old`` into ``new`` (``None`` deletes a key)."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if value is None:
            if old.get(key) is not None:
                patch[key] = None
        elif old.get(key) != value:
            patch[key] = value
    return patch
