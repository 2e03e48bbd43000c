"""The web view of Edge Allocator: the cluster as a graph, recent placements, the active model.

The extender serves it (at ``/ui``); this package knows nothing of the extender's internals.
It reads three things through :class:`DashboardSource` - the policy's own cluster snapshot,
the EdgeTasks (via a Kubernetes GET function) and a summary of the active model - and serves a
static page (no CDN) plus one JSON endpoint that the page polls.

Mount it in a FastAPI app::

    app.include_router(create_router(DashboardSource(...)), prefix="/ui")
"""

from edge_allocator.dashboard.model_card import (
    ComparisonRow,
    ModelSummary,
    active_model_summary,
    summarize_model,
)
from edge_allocator.dashboard.router import create_router
from edge_allocator.dashboard.view import DashboardSource, build_state

__all__ = [
    "ComparisonRow",
    "DashboardSource",
    "ModelSummary",
    "active_model_summary",
    "build_state",
    "create_router",
    "summarize_model",
]
