"""Turn a pod into the TaskSpec a policy scores: requests from the spec, hints from annotations.

The operator writes the task's placement hints on the pod (names in ``cluster.annotations``);
this is the one place that reads them back. A pod without a data source is not an EdgeTask pod
and gets a neutral answer from the extender.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from edge_allocator.cluster import annotations as ann
from edge_allocator.cluster.quantity import cpu_millicores, memory_mib
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec

Requests = Mapping[str, str | int | float]


class TaskInputError(ValueError):
    """A pod's placement hints cannot be read; the message names the annotation and the rule."""


def effective_requests(
    containers: Iterable[Requests],
    init_containers: Iterable[tuple[Requests, bool]],
    overhead: Requests,
    pod_level: Requests | None = None,
) -> tuple[int, int]:
    """(millicores, MiB) a pod asks for, the way kube-scheduler (v1.34) adds it up.

    ``init_containers`` are ``(requests, is_sidecar)`` in spec order; a sidecar is an init
    container with ``restartPolicy: Always``. Per resource: the containers' sum plus every
    sidecar's, or the largest need while init containers run (a regular init container plus
    the sidecars started before it), whichever is larger; a pod-level request
    (``spec.resources.requests``) replaces that total; then the pod overhead is added.
    """
    cpu = mem = 0
    for req in containers:
        cpu += cpu_millicores(req.get("cpu", 0))
        mem += memory_mib(req.get("memory", 0))
    side_cpu = side_mem = init_cpu = init_mem = 0
    for req, sidecar in init_containers:
        c, m = cpu_millicores(req.get("cpu", 0)), memory_mib(req.get("memory", 0))
        if sidecar:
            cpu, mem = cpu + c, mem + m
            side_cpu, side_mem = side_cpu + c, side_mem + m
            c, m = side_cpu, side_mem
        else:
            c, m = c + side_cpu, m + side_mem
        init_cpu, init_mem = max(init_cpu, c), max(init_mem, m)
    cpu, mem = max(cpu, init_cpu), max(mem, init_mem)
    if pod_level:
        if "cpu" in pod_level:
            cpu = cpu_millicores(pod_level["cpu"])
        if "memory" in pod_level:
            mem = memory_mib(pod_level["memory"])
    cpu += cpu_millicores(overhead.get("cpu", 0))
    mem += memory_mib(overhead.get("memory", 0))
    return cpu, mem


def is_edge_task(annotations: Mapping[str, str]) -> bool:
    """Whether the pod carries a data source, the one hint every EdgeTask pod has."""
    return ann.ANN_DATA_SOURCE_SITE in annotations or ann.ANN_DATA_SOURCE_NODE in annotations


def _number(annotations: Mapping[str, str], key: str, *, allow_zero: bool) -> float | None:
    raw = annotations.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise TaskInputError(f"annotation {key}: {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        rule = ">= 0" if allow_zero else "> 0"
        raise TaskInputError(f"annotation {key}: {raw!r} must be a finite number {rule}")
    return value


def input_mb_hint(annotations: Mapping[str, str]) -> float:
    """The pod's input size for bookkeeping (transfers in flight): its annotation read as
    :func:`task_from_pod` reads it, 0 when absent or unusable (it then counts for nothing)."""
    try:
        return _number(annotations, ann.ANN_INPUT_MB, allow_zero=True) or 0.0
    except TaskInputError:
        return 0.0


def task_from_pod(
    annotations: Mapping[str, str],
    requests: tuple[int, int],
    snapshot: ClusterSnapshot,
) -> TaskSpec:
    """The TaskSpec of an EdgeTask pod (``is_edge_task`` must hold).

    The data-source site comes from its annotation, or else from the data-source node's site in
    ``snapshot``. Raises TaskInputError naming the annotation when a hint is unusable.
    """
    site = annotations.get(ann.ANN_DATA_SOURCE_SITE) or None
    source_node = annotations.get(ann.ANN_DATA_SOURCE_NODE) or None
    if source_node is not None and snapshot.has_node(source_node):
        node_site = snapshot.node(source_node).site
        if site is None:
            site = node_site
    if site is None:
        raise TaskInputError(
            f"annotation {ann.ANN_DATA_SOURCE_NODE}: node {source_node!r} is unknown and "
            f"{ann.ANN_DATA_SOURCE_SITE} is not set"
        )
    if site not in snapshot.site_index:
        raise TaskInputError(
            f"annotation {ann.ANN_DATA_SOURCE_SITE}: site {site!r} is not a known site "
            "(no node is labelled with it and no EdgeNetwork declares it)"
        )
    budget = _number(annotations, ann.ANN_LATENCY_BUDGET_MS, allow_zero=False)
    input_mb = _number(annotations, ann.ANN_INPUT_MB, allow_zero=True)
    cpu, mem = requests
    return TaskSpec(
        cpu_request_m=cpu,
        mem_request_mib=mem,
        data_source_site=site,
        data_source_node=source_node,
        input_mb=input_mb or 0.0,
        latency_budget_ms=budget,
    )
