"""The one paragraph the demo prints: where the tasks went and why, from their status alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from edge_allocator.demo.manifests import BURST_PREFIX


def _status(t: Mapping[str, Any]) -> Mapping[str, Any]:
    return t.get("status") or {}


def _spec(t: Mapping[str, Any]) -> Mapping[str, Any]:
    return t.get("spec") or {}


def _name(t: Mapping[str, Any]) -> str:
    return str((t.get("metadata") or {}).get("name", "?"))


def _source(t: Mapping[str, Any]) -> str:
    src = _spec(t).get("dataSource") or {}
    return str(_status(t).get("dataSourceSite") or src.get("site") or src.get("node") or "?")


def _where(t: Mapping[str, Any]) -> str:
    s = _status(t)
    lat = s.get("networkLatencyMs")
    away = f", {lat} ms from its data in {_source(t)}" if lat is not None else ""
    return f"{s.get('nodeName')} ({s.get('site', '?')}{away})"


def summarize(tasks: Sequence[Mapping[str, Any]], total_nodes: int, seconds: float) -> str:
    """A paragraph on the placements; every figure in it is read from ``tasks``."""
    placed = [t for t in tasks if _status(t).get("nodeName")]
    failed = [t for t in tasks if _status(t).get("phase") == "Failed"]
    nodes = {_status(t)["nodeName"] for t in placed}
    sites = {_status(t).get("site") for t in placed if _status(t).get("site")}
    parts = [
        f"{len(placed)} of {len(tasks)} EdgeTasks were placed in {seconds:.0f} s, on "
        f"{len(nodes)} of {total_nodes} nodes across {len(sites)} sites"
    ]
    decisions = [_status(t).get("decision") or {} for t in placed]
    recorded = [d for d in decisions if d.get("recorded")]
    policies = Counter(f"{d.get('policy')} {d.get('modelVersion', '')}".strip() for d in recorded)
    if recorded:
        first = sum(1 for d in recorded if d.get("rank") == 1)
        parts[0] += (
            f", scored by {', '.join(p for p, _ in policies.most_common())}; the policy's first "
            f"choice was bound for {first} of {len(recorded)}"
        )
    parts[0] += "."
    budgeted = [t for t in placed if _spec(t).get("latencyBudgetMs") is not None]
    if budgeted:
        met = [
            t
            for t in budgeted
            if _status(t).get("networkLatencyMs") is not None
            and _status(t)["networkLatencyMs"] <= _spec(t)["latencyBudgetMs"]
        ]
        tight = min(budgeted, key=lambda t: _spec(t)["latencyBudgetMs"])
        parts.append(
            f"{len(met)} of {len(budgeted)} tasks with a latency budget landed within it; the "
            f"tightest, {_name(tight)} ({_spec(tight)['latencyBudgetMs']} ms), runs on "
            f"{_where(tight)}."
        )
    tolerant = [
        t
        for t in placed
        if _spec(t).get("latencyBudgetMs") is None and not _name(t).startswith(BURST_PREFIX)
    ]
    if tolerant:
        big = max(tolerant, key=lambda t: float(_spec(t).get("inputMB") or 0))
        parts.append(
            f"{_name(big)} has no budget but {_spec(big).get('inputMB', 0)} MB of input, and "
            f"went to {_where(big)}."
        )
    burst = [t for t in placed if _name(t).startswith(BURST_PREFIX)]
    if burst:
        per_node = Counter(_status(t)["nodeName"] for t in burst)
        burst_sites = {_status(t).get("site") for t in burst}
        parts.append(
            f"The burst of {len(burst)} small inference tasks spread over {len(per_node)} nodes "
            f"in {len(burst_sites)} sites (at most {max(per_node.values())} on one node)."
        )
    if failed:
        reasons = "; ".join(
            f"{_name(t)}: {_status(t).get('reason') or _status(t).get('message', '?')}"
            for t in failed
        )
        parts.append(f"{len(failed)} failed ({reasons}).")
    return " ".join(parts)
