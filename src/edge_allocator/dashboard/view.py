"""The dashboard's JSON: one pure function from (snapshot, EdgeTasks, model) to what the page draws.

Kept free of HTTP so a test can check the arithmetic (load fractions, placement rows) on a fixed
snapshot and the page stays a thin renderer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from edge_allocator.cluster.snapshot import ClusterSnapshot, NodeState
from edge_allocator.dashboard.model_card import ModelSummary

EDGETASKS_PATH = "/apis/edge-allocator.io/v1alpha1/edgetasks"

ApiGet = Callable[[str], Mapping[str, Any]]
"""GET a Kubernetes API path and return the decoded JSON (raises on failure)."""


@dataclass(frozen=True)
class DashboardSource:
    """What the dashboard reads; each callable is cheap or does one API call.

    Attributes:
        snapshot: the policy's current view of the cluster (the extender's watch cache).
        api_get: GET on the Kubernetes API, used to list EdgeTasks (placements and why).
        model: the active model and its model-card comparison, or None when unknown.
        max_placements: how many of the most recent placements the page shows.
        page_size: EdgeTasks per LIST call (``limit``; the rest follows ``continue``).
        max_tasks: the most EdgeTasks read per refresh (the page says when it stopped there).
        state_ttl_s: how long one computed state serves every poll (any number of open pages
            then cost the API server one paged LIST per ``state_ttl_s``).
        shadow: the shadow policy's comparison with the active one, when there is a shadow.
    """

    snapshot: Callable[[], ClusterSnapshot | None]
    api_get: ApiGet
    model: Callable[[], ModelSummary | None]
    max_placements: int = 50
    page_size: int = 500
    max_tasks: int = 5000
    state_ttl_s: float = 3.0
    shadow: Callable[[], Mapping[str, Any] | None] | None = None


def _fraction(used: int, allocatable: int) -> float:
    return round(min(max(used / allocatable, 0.0), 1.0), 4) if allocatable > 0 else 0.0


def node_view(node: NodeState) -> dict[str, Any]:
    cpu = _fraction(node.cpu_used_m, node.cpu_allocatable_m)
    mem = _fraction(node.mem_used_mib, node.mem_allocatable_mib)
    return {
        "name": node.name,
        "site": node.site,
        "nodeClass": node.node_class,
        "ready": node.ready,
        "cpuFraction": cpu,
        "memFraction": mem,
        "load": max(cpu, mem),
        "measured": node.cpu_usage_m is not None,
        "cpuAllocatableM": node.cpu_allocatable_m,
        "memAllocatableMib": node.mem_allocatable_mib,
        "runningTasks": node.running_tasks,
    }


def placement_view(task: Mapping[str, Any]) -> dict[str, Any]:
    meta = task.get("metadata") or {}
    spec = task.get("spec") or {}
    status = task.get("status") or {}
    decision = status.get("decision") or {}
    source_site = status.get("dataSourceSite") or (spec.get("dataSource") or {}).get("site")
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "created": meta.get("creationTimestamp", ""),
        "phase": status.get("phase", "Pending"),
        "node": status.get("nodeName"),
        "site": status.get("site"),
        "dataSourceSite": source_site,
        "latencyBudgetMs": spec.get("latencyBudgetMs"),
        "networkLatencyMs": status.get("networkLatencyMs"),
        "policy": decision.get("policy"),
        "modelVersion": decision.get("modelVersion"),
        "chosenNode": decision.get("chosenNode"),
        "score": decision.get("score"),
        "rank": decision.get("rank"),
        "candidateCount": decision.get("candidateCount"),
        "candidates": [
            {"node": c.get("node"), "score": c.get("score"), "raw": c.get("raw")}
            for c in decision.get("candidates") or []
        ],
        "reason": status.get("reason") or decision.get("message"),
    }


def build_state(
    snapshot: ClusterSnapshot | None,
    tasks: Sequence[Mapping[str, Any]],
    model: ModelSummary | None,
    *,
    max_placements: int = 50,
    errors: Sequence[str] = (),
    shadow: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the page draws, newest placements first."""
    rows = sorted(
        (placement_view(t) for t in tasks), key=lambda r: (r["created"], r["name"]), reverse=True
    )
    return {
        "ready": snapshot is not None,
        "sites": [
            {
                "name": s.name,
                "intraLatencyMs": s.intra_latency_ms,
                "intraBandwidthMbps": s.intra_bandwidth_mbps,
            }
            for s in (snapshot.sites if snapshot else ())
        ],
        "links": [
            {"a": lk.a, "b": lk.b, "latencyMs": lk.latency_ms, "bandwidthMbps": lk.bandwidth_mbps}
            for lk in (snapshot.links if snapshot else ())
        ],
        "nodes": [node_view(n) for n in (snapshot.nodes if snapshot else ())],
        "placements": rows[:max_placements],
        "placementCount": len(rows),
        "model": model.to_dict() if model else None,
        "shadow": dict(shadow) if shadow and shadow.get("name") else None,
        "errors": list(errors),
    }


def list_edgetasks(
    api_get: ApiGet, page_size: int = 500, max_tasks: int = 5000
) -> tuple[list[Mapping[str, Any]], bool]:
    """EdgeTasks in pages of ``page_size`` (``limit``/``continue``), at most ``max_tasks``;
    True when more were left unread."""
    tasks: list[Mapping[str, Any]] = []
    cont = ""
    while True:
        limit = min(page_size, max_tasks - len(tasks))
        query = f"?limit={limit}" + (f"&continue={quote(cont, safe='')}" if cont else "")
        body = api_get(EDGETASKS_PATH + query)
        tasks.extend(body.get("items") or [])
        cont = str((body.get("metadata") or {}).get("continue") or "")
        if not cont:
            return tasks, False
        if len(tasks) >= max_tasks:
            return tasks, True


def collect_state(source: DashboardSource) -> dict[str, Any]:
    """Read the source (paged LISTs of the EdgeTasks) and build the state; never raises."""
    errors: list[str] = []
    try:
        tasks, truncated = list_edgetasks(source.api_get, source.page_size, source.max_tasks)
        if truncated:
            errors.append(f"only the first {source.max_tasks} EdgeTasks were read")
    except Exception as exc:  # the page still shows the graph and says why placements are missing
        tasks = []
        errors.append(f"listing EdgeTasks failed: {exc}")
    try:
        model = source.model()
    except Exception as exc:
        model = None
        errors.append(f"reading the model card failed: {exc}")
    shadow = None
    if source.shadow is not None:
        try:
            shadow = source.shadow()
        except Exception as exc:
            errors.append(f"reading the shadow policy's record failed: {exc}")
    return build_state(
        source.snapshot(),
        tasks,
        model,
        max_placements=source.max_placements,
        errors=errors,
        shadow=shadow,
    )


class StateCache:
    """One computed state shared by every poll for ``source.state_ttl_s`` seconds; concurrent
    polls of a stale state wait for one computation instead of each listing EdgeTasks."""

    def __init__(
        self, source: DashboardSource, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self.clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None
        self._at = 0.0

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._state is None or self.clock() - self._at >= self.source.state_ttl_s:
                self._state = collect_state(self.source)
                self._at = self.clock()
            return self._state
