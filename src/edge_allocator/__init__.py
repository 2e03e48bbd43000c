"""Edge Allocator: learned placement of workloads on edge Kubernetes clusters."""

__version__ = "0.1.0"
