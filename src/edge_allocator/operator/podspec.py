"""The pod for one attempt of an EdgeTask: a pure function of the task and the attempt number.

The name is deterministic (``<task>-<attempt>``), so two operators, or one that restarted
half-way, that try to create the same attempt collide on the name instead of duplicating it.
"""

from __future__ import annotations

import copy
from typing import Any

from edge_allocator.cluster.affinity import BudgetPlacement, avoid_node_term, require_terms
from edge_allocator.cluster.annotations import (
    ANN_BUDGET_SITES,
    ANN_DATA_SOURCE_NODE,
    ANN_DATA_SOURCE_SITE,
    ANN_INPUT_MB,
    ANN_LATENCY_BUDGET_MS,
    ANN_POLICY,
    LABEL_ATTEMPT,
    LABEL_MANAGED,
    LABEL_TASK,
)
from edge_allocator.operator.views import API_VERSION, TASK_KIND, TaskView


def pod_name(task: str, attempt: int) -> str:
    """``<task>-<attempt>``: unique per attempt, and never equal to another task's pod name
    (the attempt is the digits after the last dash)."""
    return f"{task}-{attempt}"


def build_pod(
    task: TaskView,
    attempt: int,
    data_source_site: str,
    scheduler_name: str,
    budget: BudgetPlacement | None = None,
    avoid_node: str | None = None,
) -> dict[str, Any]:
    """The pod manifest for ``attempt`` (1-based) of ``task``.

    Carries the placement inputs for the extender as annotations, the task and attempt as
    labels, and a controller owner reference so that deleting the task deletes its pods.
    ``budget`` becomes a required node affinity (kube-scheduler enforces it, with or without
    the extender); ``avoid_node`` keeps a moved task off the node it is leaving.
    """
    template = task.template
    tmeta = template.get("metadata") or {}
    spec: dict[str, Any] = copy.deepcopy(dict(template.get("spec") or {}))
    spec["schedulerName"] = scheduler_name
    spec.setdefault("restartPolicy", "Never")
    if budget is not None:
        require_terms(spec, budget.terms)
    if avoid_node:
        require_terms(spec, [avoid_node_term(avoid_node)])
    labels = {str(k): str(v) for k, v in (tmeta.get("labels") or {}).items()}
    labels.update({LABEL_TASK: task.name, LABEL_ATTEMPT: str(attempt), LABEL_MANAGED: "true"})
    annotations = {str(k): str(v) for k, v in (tmeta.get("annotations") or {}).items()}
    annotations[ANN_DATA_SOURCE_SITE] = data_source_site
    annotations[ANN_INPUT_MB] = str(task.input_mb)
    if task.data_source_node:
        annotations[ANN_DATA_SOURCE_NODE] = task.data_source_node
    if task.latency_budget_ms is not None:
        annotations[ANN_LATENCY_BUDGET_MS] = str(task.latency_budget_ms)
    if task.policy:
        annotations[ANN_POLICY] = task.policy
    if budget is not None:
        annotations[ANN_BUDGET_SITES] = ",".join(budget.allowed_sites)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(task.name, attempt),
            "namespace": task.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": TASK_KIND,
                    "name": task.name,
                    "uid": task.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
