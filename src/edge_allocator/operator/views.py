"""Small immutable views of the objects the operator watches, parsed once per watch event.

The operator keeps thousands of tasks and pods in memory; keeping only what it decides on
(not whole bodies) bounds memory and makes the planner a pure function of these views.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_allocator.cluster.annotations import ANN_DECISION, LABEL_ATTEMPT, LABEL_TASK, LABEL_ZONE
from edge_allocator.cluster.quantity import QuantityError, cpu_millicores
from edge_allocator.cluster.snapshot import Link, Site
from edge_allocator.cluster.topology import NetworkDecl, parse_network

GROUP = "edge-allocator.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
TASK_KIND = "EdgeTask"
TASK_PLURAL = "edgetasks"
NETWORK_KIND = "EdgeNetwork"
NETWORK_PLURAL = "edgenetworks"

TERMINAL_TASK_PHASES = frozenset({"Succeeded", "Failed"})


def parse_time(value: object) -> dt.datetime | None:
    """An RFC 3339 timestamp as an aware datetime (``None`` if absent or malformed)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with second precision, as the API server writes it."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


@dataclass(frozen=True)
class TaskView:
    """An EdgeTask: identity, the spec fields the operator acts on, and its current status."""

    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    created: dt.datetime | None
    template: Mapping[str, Any]
    data_source_site: str | None
    data_source_node: str | None
    input_mb: int
    latency_budget_ms: int | None
    max_attempts: int
    policy: str | None
    status: Mapping[str, Any] = field(default_factory=dict)
    deleting: bool = False
    replacement: str | None = None  # Never | BudgetOnly | Auto (None: the CRD default)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def phase(self) -> str | None:
        value = self.status.get("phase")
        return value if isinstance(value, str) else None

    @property
    def attempts(self) -> int:
        return _int_or_none(self.status.get("attempts")) or 0

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TaskView:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        source = spec.get("dataSource") or {}
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            resource_version=str(meta.get("resourceVersion", "")),
            created=parse_time(meta.get("creationTimestamp")),
            template=spec.get("template") or {},
            data_source_site=source.get("site"),
            data_source_node=source.get("node"),
            input_mb=int(spec.get("inputMB") or 0),
            latency_budget_ms=_int_or_none(spec.get("latencyBudgetMs")),
            max_attempts=int(spec.get("maxAttempts") or 3),
            policy=spec.get("policy"),
            status=dict(body.get("status") or {}),
            deleting=bool(meta.get("deletionTimestamp")),
            replacement=spec.get("replacement"),
        )


@dataclass(frozen=True)
class PodView:
    """A pod the operator created for some attempt of an EdgeTask."""

    namespace: str
    name: str
    uid: str
    task: str
    attempt: int
    phase: str
    node_name: str | None
    deleting: bool
    reason: str | None
    message: str | None
    scheduled_at: dt.datetime | None
    started_at: dt.datetime | None
    ready: bool
    unschedulable_message: str | None
    decision_json: str | None
    owner_uid: str | None
    cpu_request_m: int = 0  # the containers' CPU requests (what a new pod adds to its node)

    @property
    def terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def live(self) -> bool:
        """Counts towards "one live pod per task": not finished and not being deleted."""
        return not self.terminal and not self.deleting

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PodView | None:
        """The view, or ``None`` if the pod does not carry the operator's task labels."""
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        task = labels.get(LABEL_TASK)
        attempt = _int_or_none(labels.get(LABEL_ATTEMPT))
        if not task or attempt is None:
            return None
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        conds = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
        sched = conds.get("PodScheduled") or {}
        ready = conds.get("Ready") or {}
        unsched = (
            sched.get("message")
            if sched.get("status") == "False" and sched.get("reason") == "Unschedulable"
            else None
        )
        owner_uid = next(
            (o.get("uid") for o in meta.get("ownerReferences") or [] if o.get("controller")),
            None,
        )
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            task=str(task),
            attempt=attempt,
            phase=str(status.get("phase") or "Pending"),
            node_name=spec.get("nodeName") or None,
            deleting=bool(meta.get("deletionTimestamp")),
            reason=status.get("reason"),
            message=status.get("message") or _container_failure(status),
            scheduled_at=parse_time(sched.get("lastTransitionTime"))
            if sched.get("status") == "True"
            else None,
            started_at=parse_time(status.get("startTime")),
            ready=ready.get("status") == "True",
            unschedulable_message=unsched,
            decision_json=(meta.get("annotations") or {}).get(ANN_DECISION),
            owner_uid=owner_uid,
            cpu_request_m=_cpu_requests(spec),
        )


def _cpu_requests(spec: Mapping[str, Any]) -> int:
    total = 0
    for c in spec.get("containers") or []:
        value = ((c.get("resources") or {}).get("requests") or {}).get("cpu")
        if value is not None:
            try:
                total += cpu_millicores(value)
            except QuantityError:
                continue
    return total


def _container_failure(status: Mapping[str, Any]) -> str | None:
    """A short description of the first terminated-with-error container, if any."""
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated") or {}
        if term and term.get("exitCode", 0) != 0:
            reason = term.get("reason") or "Error"
            return f"container {cs.get('name')} exited {term.get('exitCode')} ({reason})"
    return None


@dataclass(frozen=True)
class NodeView:
    """A node: its site label and readiness (with the time it last changed)."""

    name: str
    zone: str | None
    ready: bool | None  # None: no Ready condition yet
    ready_changed: dt.datetime | None
    unschedulable: bool = False
    cpu_allocatable_m: int | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> NodeView:
        meta = body.get("metadata") or {}
        status = body.get("status") or {}
        ready_cond = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
        )
        ready: bool | None = None
        changed = None
        if ready_cond is not None:
            ready = ready_cond.get("status") == "True"
            changed = parse_time(ready_cond.get("lastTransitionTime"))
        return cls(
            name=str(meta.get("name", "")),
            zone=(meta.get("labels") or {}).get(LABEL_ZONE),
            ready=ready,
            ready_changed=changed,
            unschedulable=bool((body.get("spec") or {}).get("unschedulable")),
            cpu_allocatable_m=_cpu_or_none((status.get("allocatable") or {}).get("cpu")),
        )


def _cpu_or_none(value: object) -> int | None:
    if value is None:
        return None
    try:
        return cpu_millicores(value)  # type: ignore[arg-type]
    except QuantityError:
        return None


@dataclass(frozen=True)
class NetworkView:
    """One EdgeNetwork's declarations (parsed by the one topology model) and its status."""

    name: str
    generation: int
    decl: NetworkDecl
    status: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sites(self) -> tuple[Site, ...]:
        return self.decl.sites

    @property
    def links(self) -> tuple[Link, ...]:
        return self.decl.links

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> NetworkView:
        meta = body.get("metadata") or {}
        return cls(
            name=str(meta.get("name", "")),
            generation=int(meta.get("generation") or 0),
            decl=parse_network(body),
            status=dict(body.get("status") or {}),
        )
