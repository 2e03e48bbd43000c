"""Edge Allocator: learned placement of workloads on edge Kubernetes clusters."""

import os

# numpy's OpenBLAS starts a worker thread per core at import, and those workers spin between
# calls. The policy's matmuls (serving, simulation) are a few hundred rows, where a second
# thread never pays: on a small node the spinning took a core from the API server and the
# scheduler (the extender's CPU per pod rose by half). One thread unless the user says
# otherwise; this runs before numpy is imported by any edge_allocator entry point.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
