"""The active policy and its hot swap: load, validate, then switch in one reference assignment.

Request handlers read ``manager.active`` once per request, so a swap never fails or drops a
scheduler request: a request in flight finishes with the policy it started with, the next one
uses the new policy. A candidate that cannot be loaded, or that fails validation (it must score
a probe snapshot - and the live one when there is one - with one finite score per candidate),
is refused and the old policy stays active.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, NodeState, Site, TaskSpec
from edge_allocator.policy.base import PlacementPolicy
from edge_allocator.policy.model_file import ModelLoadError
from edge_allocator.policy.registry import (
    GNN,
    UnknownPolicyError,
    get_policy,
    policy_names,
)

PROBE_NODES = 50


class ModelValidationError(Exception):
    """A policy loaded but does not score correctly; the message says how."""


@dataclass(frozen=True)
class Active:
    """The active policy and the name it was activated by."""

    name: str
    policy: PlacementPolicy
    activated_at: float


def probe_snapshot() -> tuple[ClusterSnapshot, TaskSpec]:
    """A tiny fixed cluster every policy must be able to score."""
    sites = (Site("probe-a", 0.5), Site("probe-b", 1.0))
    nodes = tuple(
        NodeState(
            name=f"probe-{i}",
            site=sites[i % 2].name,
            node_class="default",
            cpu_capacity_m=4000,
            mem_capacity_mib=8192,
            cpu_allocatable_m=3800,
            mem_allocatable_mib=7800,
            cpu_requested_m=500 * i,
            mem_requested_mib=256 * i,
            cpu_usage_m=400 * i if i % 2 else None,
            mem_usage_mib=200 * i if i % 2 else None,
            running_tasks=i,
        )
        for i in range(3)
    )
    links = (Link("probe-a", "probe-b", 5.0, 100.0),)
    task = TaskSpec(cpu_request_m=250, mem_request_mib=128, data_source_site="probe-a", input_mb=2)
    return ClusterSnapshot(nodes, sites, links), task


def validate(policy: PlacementPolicy, live: ClusterSnapshot | None) -> None:
    """Raise ModelValidationError unless ``policy`` scores the probe (and live) snapshot."""
    cases = [probe_snapshot()]
    if live is not None and live.nodes and live.sites:
        task = TaskSpec(cpu_request_m=100, mem_request_mib=64, data_source_site=live.nodes[0].site)
        cases.append((live, task))
    for snap, task in cases:
        names = [n.name for n in snap.nodes[:PROBE_NODES]]
        try:
            scores = policy.score(snap, task, names)
        except Exception as exc:
            raise ModelValidationError(f"scoring a probe cluster raised {exc!r}") from exc
        if len(scores) != len(names):
            raise ModelValidationError(f"returned {len(scores)} scores for {len(names)} candidates")
        bad = [s for s in scores if not isinstance(s, int | float) or not math.isfinite(s)]
        if bad:
            raise ModelValidationError(f"returned non-finite scores such as {bad[0]!r}")


def load_validated(name: str, live: ClusterSnapshot | None) -> PlacementPolicy:
    """The policy called ``name``, once it scores the probe (and live) snapshot; raises
    UnknownPolicyError, ModelLoadError or ModelValidationError."""
    policy = get_policy(name)
    validate(policy, live)
    return policy


def allowed_name(name: str) -> bool:
    """Names a request may select: registry names and ``gnn@<version>``, never a file path."""
    return name in policy_names() or (name.startswith(GNN + "@") and "/" not in name)


class ModelManager:
    """Owns the active policy; ``activate`` is serialised, reads are lock-free."""

    def __init__(self, initial: str, live: ClusterSnapshot | None = None) -> None:
        self._lock = threading.Lock()
        self._overrides: dict[str, PlacementPolicy] = {}
        self.active = self._load(initial, live)

    def _load(self, name: str, live: ClusterSnapshot | None) -> Active:
        return Active(name=name, policy=load_validated(name, live), activated_at=time.time())

    def activate(self, name: str, live: ClusterSnapshot | None) -> Active:
        """Load and validate ``name``, then make it active; on any error the old one stays."""
        if not allowed_name(name):
            raise UnknownPolicyError(
                f"unknown policy {name!r}; known: {', '.join(policy_names())} or gnn@<version>"
            )
        with self._lock:
            new = self._load(name, live)
            self.active = new
            self._overrides.clear()
            return new

    def policy_for(self, requested: str | None) -> PlacementPolicy:
        """The policy a pod asked for by annotation, else the active one.

        Unknown or unloadable names fall back to the active policy (the decision record then
        names the policy actually used).
        """
        active = self.active
        if not requested or requested == active.name:
            return active.policy
        hit = self._overrides.get(requested)
        if hit is not None:
            return hit
        if not allowed_name(requested):
            return active.policy
        try:
            policy = get_policy(requested)
        except (UnknownPolicyError, ModelLoadError):
            return active.policy
        self._overrides[requested] = policy
        return policy
