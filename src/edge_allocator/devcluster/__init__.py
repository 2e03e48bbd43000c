"""The local dev cluster: real Kubernetes components built from pinned Go modules, kwok nodes.

``ensure_binaries`` builds (once) and caches the binaries; ``DevCluster`` starts and stops the
control plane on 127.0.0.1 and creates a simulated edge fleet. Standard library only, so the
dev cluster never pays for importing torch.
"""

from edge_allocator.devcluster.build import BuildError, ensure_binaries
from edge_allocator.devcluster.cluster import DevCluster, DevClusterError
from edge_allocator.devcluster.fleet import FleetSpec

__all__ = ["BuildError", "DevCluster", "DevClusterError", "FleetSpec", "ensure_binaries"]
