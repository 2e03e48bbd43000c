"""Names and records that cross process boundaries: pod labels/annotations and decisions.

The operator writes the task's placement hints on the pod; the extender reads them and writes
back a compact decision record. Both sides import these names from here and nowhere else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

PREFIX = "edge-allocator.io/"

# Labels on an EdgeTask's pod.
LABEL_TASK = PREFIX + "task"  # EdgeTask name
LABEL_ATTEMPT = PREFIX + "attempt"  # 1-based attempt number
LABEL_MANAGED = PREFIX + "managed"  # "true" on every pod the operator creates

# Annotations on an EdgeTask's pod (inputs for the extender).
ANN_DATA_SOURCE_SITE = PREFIX + "data-source-site"
ANN_DATA_SOURCE_NODE = PREFIX + "data-source-node"
ANN_LATENCY_BUDGET_MS = PREFIX + "latency-budget-ms"
ANN_INPUT_MB = PREFIX + "input-mb"
ANN_POLICY = PREFIX + "policy"
ANN_BUDGET_SITES = PREFIX + "budget-sites"  # the sites the pod's required affinity allows

# Annotation the extender writes (off the request path): a DecisionRecord as compact JSON.
ANN_DECISION = PREFIX + "decision"

# Node labels.
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_NODE_CLASS = PREFIX + "node-class"

DEFAULT_INTRA_LATENCY_MS = 1.0
"""Latency inside a site that no EdgeNetwork declares (the CRD's intraLatencyMs default)."""

SCHEDULER_NAME = "edge-allocator"
TOP_CANDIDATES_KEPT = 5


@dataclass(frozen=True, slots=True)
class CandidateScore:
    node: str
    score: int  # the 0..10 extender score sent to kube-scheduler
    raw: float  # the policy's own score (higher is better)


@dataclass(frozen=True)
class DecisionRecord:
    """Why a pod was scored the way it was: what the extender returned to the scheduler.

    ``chosen`` is the policy's top-ranked node; kube-scheduler makes the binding, and the
    operator compares it with the pod's actual node.
    """

    policy: str
    model_version: str
    chosen: str
    score: int
    rank: int
    latency_ms: float | None
    candidates: tuple[CandidateScore, ...] = field(default_factory=tuple)
    candidate_count: int = 0
    at: str = ""

    def to_json(self) -> str:
        d: dict[str, Any] = asdict(self)
        d["candidates"] = [asdict(c) for c in self.candidates]
        return json.dumps(d, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DecisionRecord:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DecisionRecord:
        d = dict(d)
        d["candidates"] = tuple(CandidateScore(**c) for c in d.get("candidates", ()))
        return cls(**d)
