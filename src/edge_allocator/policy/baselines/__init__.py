"""Heuristic placement policies: the baselines the learned policy is measured against.

One module per strategy, each a pure scorer with its formula in the class docstring.
"""

from edge_allocator.policy.baselines.est_completion import EstimatedCompletionPolicy
from edge_allocator.policy.baselines.kube_default import KubeDefaultPolicy
from edge_allocator.policy.baselines.latency import LowestLatencyPolicy
from edge_allocator.policy.baselines.network_overhead import NetworkOverheadPolicy
from edge_allocator.policy.baselines.simple import RandomPolicy, RoundRobinPolicy
from edge_allocator.policy.baselines.trimaran import TargetLoadPackingPolicy

__all__ = [
    "EstimatedCompletionPolicy",
    "KubeDefaultPolicy",
    "LowestLatencyPolicy",
    "NetworkOverheadPolicy",
    "RandomPolicy",
    "RoundRobinPolicy",
    "TargetLoadPackingPolicy",
]
