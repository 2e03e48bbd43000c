"""The interface every placement policy implements, learned or heuristic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec


@runtime_checkable
class PlacementPolicy(Protocol):
    """Scores candidate nodes for one task; higher is better.

    ``score`` is pure: no I/O, deterministic for the same inputs. It returns one finite float
    per candidate, in the order given. Candidates are node names present in ``snapshot``.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]: ...


@runtime_checkable
class Preparable(Protocol):
    """A policy that can do its per-snapshot work ahead of the next request (for the GNN: the
    node embeddings), so the request itself only runs the per-candidate part."""

    def prepare(self, snapshot: ClusterSnapshot) -> None: ...

    def prepared(self, snapshot: ClusterSnapshot) -> bool:
        """Whether scoring on ``snapshot`` now costs only the per-candidate part (no per-snapshot
        work, no wait for another thread's): what lets a caller bound a request's work."""
        ...

    def score_prepared(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float] | None:
        """``score`` from the prepared per-snapshot work only; None (nothing computed) when it
        is not there."""
        ...
