"""The one typed picture of an edge cluster that training and serving both read (pure, no I/O)."""

from edge_allocator.cluster.snapshot import (
    ClusterSnapshot,
    Link,
    NodeState,
    Site,
    TaskSpec,
)

__all__ = ["ClusterSnapshot", "Link", "NodeState", "Site", "TaskSpec"]
