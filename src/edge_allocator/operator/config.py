"""Operator settings in one typed, validated place (filled from the command line)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_allocator.cluster.annotations import SCHEDULER_NAME
from edge_allocator.operator.replacement import ReplacementConfig


@dataclass(frozen=True)
class OperatorConfig:
    """How the operator places, follows and retries EdgeTasks.

    Attributes:
        scheduler_name: ``schedulerName`` set on every task pod (the extender's scheduler
            profile by default; ``default-scheduler`` runs without the extender).
        extender_url: base URL of the extender; when set, decisions missing from the pod
            annotation are fetched from ``GET {extender_url}/v1/decisions/{ns}/{pod}``.
        extender_timeout_s: timeout of that request; the operator never waits longer.
        extender_token_file: file holding the extender's admin bearer token (read per
            request), for an extender whose admin API requires one.
        node_lost_grace_s: how long a node may be NotReady before its tasks are moved.
        backoff_base_s, backoff_max_s: delay before attempt ``n+1`` is
            ``min(backoff_base_s * 2**(n-1), backoff_max_s)``.
        namespaces: namespaces to watch; empty means all namespaces.
        replacement: when and how running tasks are moved (see ``replacement``).
    """

    scheduler_name: str = SCHEDULER_NAME
    extender_url: str | None = None
    extender_timeout_s: float = 1.0
    extender_token_file: str | None = None
    node_lost_grace_s: float = 40.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    namespaces: tuple[str, ...] = ()
    replacement: ReplacementConfig = field(default_factory=ReplacementConfig)

    def __post_init__(self) -> None:
        if not self.scheduler_name:
            raise ValueError("scheduler_name: must not be empty")
        if self.extender_timeout_s <= 0:
            raise ValueError("extender_timeout_s: must be > 0")
        if self.node_lost_grace_s < 0:
            raise ValueError("node_lost_grace_s: must be >= 0")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff: need 0 <= backoff_base_s <= backoff_max_s")

    def backoff_s(self, finished_attempt: int) -> float:
        """Delay after attempt ``finished_attempt`` (1-based) ends, before the next one."""
        exp = min(max(finished_attempt - 1, 0), 30)
        return float(min(self.backoff_base_s * (2**exp), self.backoff_max_s))


@dataclass(frozen=True)
class LeaderConfig:
    """Lease-based leader election: only the holder of the Lease runs the handlers.

    Mirrors client-go's leaderelection: a candidate takes an expired lease; the leader renews
    every ``retry_period_s`` and steps down (the process exits) if it cannot renew within
    ``renew_deadline_s``; a clean shutdown releases the lease at once.
    """

    enabled: bool = True
    namespace: str = "default"
    name: str = "edge-allocator-operator"
    identity: str = ""
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s):
            raise ValueError(
                "leader election: need 0 < retry_period_s < renew_deadline_s < lease_duration_s"
            )
