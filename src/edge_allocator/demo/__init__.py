"""``make demo``: the whole product on a laptop, on the local dev cluster, as local processes.

The dev cluster (20 kwok nodes over 4 sites), the CRDs and an EdgeNetwork, then the extender,
the ``edge-allocator`` kube-scheduler and the operator, then the example EdgeTasks; it waits for
their placements, prints them with a one-paragraph summary, and the dashboard URL.
``make demo-down`` stops it all. ``python -m edge_allocator.demo --help`` lists the options.
"""

from edge_allocator.demo.run import Demo, DemoError, DemoSettings

__all__ = ["Demo", "DemoError", "DemoSettings"]
