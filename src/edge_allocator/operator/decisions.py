"""Turn the extender's decision record into the EdgeTask's ``status.decision`` (pure).

The record says what the policy ranked; kube-scheduler makes the binding, so the score and
rank reported are those of the node the pod was actually bound to. Without a record the status
says so: the operator never makes up a score.
"""

from __future__ import annotations

import json
from typing import Any

from edge_allocator.cluster.annotations import DecisionRecord


def parse_record(text: str | None) -> DecisionRecord | None:
    """A DecisionRecord from its JSON, or ``None`` if absent or malformed."""
    if not text:
        return None
    try:
        return DecisionRecord.from_json(text)
    except (ValueError, TypeError, KeyError, json.JSONDecodeError):
        return None


def recorded_decision(record: DecisionRecord, bound_node: str, source: str) -> dict[str, Any]:
    """``status.decision`` for a pod bound to ``bound_node`` given the extender's record."""
    out: dict[str, Any] = {
        "recorded": True,
        "source": source,
        "policy": record.policy,
        "modelVersion": record.model_version,
        "chosenNode": record.chosen,
        "candidateCount": record.candidate_count or len(record.candidates),
        "candidates": [{"node": c.node, "score": c.score, "raw": c.raw} for c in record.candidates],
        "at": record.at,
    }
    if record.latency_ms is not None:
        out["latencyMs"] = record.latency_ms
    if bound_node == record.chosen:
        out["score"], out["rank"] = record.score, record.rank
        out["message"] = f"bound to the policy's choice {bound_node}"
        return out
    for rank, cand in enumerate(record.candidates, start=1):
        if cand.node == bound_node:
            out["score"], out["rank"] = cand.score, rank
            break
    out["message"] = (
        f"the policy preferred {record.chosen}; the scheduler bound the pod to {bound_node}"
    )
    return out


def unrecorded_decision(scheduler_name: str, extender_note: str | None = None) -> dict[str, Any]:
    """``status.decision`` when no decision record exists for the pod."""
    msg = f"placed by scheduler {scheduler_name!r} without a recorded decision"
    if extender_note:
        msg += f" ({extender_note})"
    return {"recorded": False, "source": "none", "message": msg}
