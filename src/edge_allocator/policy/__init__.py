"""Placement policies: the learned GNN, heuristic baselines, model files and the registry."""

from edge_allocator.policy.base import PlacementPolicy

__all__ = ["PlacementPolicy"]
