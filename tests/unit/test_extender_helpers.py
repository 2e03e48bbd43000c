"""Shared builders for the extender tests (a small edge fleet, pods, ExtenderArgs bodies, a
real server on localhost)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from edge_allocator.cluster import annotations as ann
from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, NodeState, Site
from edge_allocator.devcluster.processes import free_port
from edge_allocator.extender.app import create_app
from edge_allocator.extender.models import ModelManager
from edge_allocator.extender.service import ExtenderService, StaticSource
from edge_allocator.extender.settings import Settings


def fleet(nodes: int = 6, sites: int = 3, hop_ms: float = 10.0) -> ClusterSnapshot:
    """``sites`` sites in a line (``hop_ms`` per link); node i sits at site i % sites with a
    load that grows with i, so policies have something to choose between."""
    site_objs = tuple(Site(f"site-{s}", 0.5) for s in range(sites))
    links = tuple(
        Link(f"site-{s}", f"site-{s + 1}", hop_ms, 100.0 * (s + 1)) for s in range(sites - 1)
    )
    node_objs = tuple(
        NodeState(
            name=f"node-{i:04d}",
            site=f"site-{i % sites}",
            node_class="mid",
            cpu_capacity_m=4000,
            mem_capacity_mib=8192,
            cpu_allocatable_m=4000,
            mem_allocatable_mib=8192,
            cpu_requested_m=(i * 137) % 3000,
            mem_requested_mib=(i * 211) % 6000,
            cpu_usage_m=(i * 97) % 3500 if i % 3 else None,
            mem_usage_mib=(i * 173) % 7000 if i % 3 else None,
            running_tasks=i % 5,
        )
        for i in range(nodes)
    )
    return ClusterSnapshot(node_objs, site_objs, links, taken_at=1.0, revision=1)


def pod(
    name: str = "p",
    *,
    site: str | None = "site-0",
    budget: float | None = None,
    extra: dict[str, str] | None = None,
    cpu: str = "250m",
    mem: str = "128Mi",
    uid: str = "uid-1",
) -> dict[str, Any]:
    annotations: dict[str, str] = {}
    if site is not None:
        annotations[ann.ANN_DATA_SOURCE_SITE] = site
    if budget is not None:
        annotations[ann.ANN_LATENCY_BUDGET_MS] = str(budget)
    annotations.update(extra or {})
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid,
            "labels": {ann.LABEL_MANAGED: "true"},
            "annotations": annotations,
        },
        "spec": {
            "schedulerName": ann.SCHEDULER_NAME,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}],
        },
    }


def make_app(
    snapshot: ClusterSnapshot | None = None,
    *,
    policy: str = "est-completion",
    **settings: Any,
) -> tuple[Any, ExtenderService, StaticSource]:
    source = StaticSource(snapshot if snapshot is not None else fleet())
    service = ExtenderService(source, ModelManager(policy))
    return create_app(service, Settings(**settings)), service, source


@contextmanager
def serving(app: Any, scheme: str = "http", **config: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free localhost port; yields its base URL."""
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
