"""What the demo puts in the cluster: a 4-site EdgeNetwork, the examples and a burst of tasks.

The fleet's sites form a small metro ring (site-a, site-b), a remote site (site-c) and a rural
site behind a thin link (site-d), so latency budgets and input sizes actually decide placements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

GROUP_VERSION = "edge-allocator.io/v1alpha1"
SITES = ("site-a", "site-b", "site-c", "site-d")
# (a, b, latency ms, bandwidth Mb/s)
LINKS = (
    ("site-a", "site-b", 5, 1000),
    ("site-b", "site-c", 20, 200),
    ("site-a", "site-c", 40, 100),
    ("site-c", "site-d", 15, 100),
    ("site-b", "site-d", 30, 50),
)
BURST_PREFIX = "inference-"


def edge_network(name: str = "demo-fleet", sites: Sequence[str] = SITES) -> dict[str, Any]:
    """The EdgeNetwork of the demo fleet (links between sites not in ``sites`` are dropped)."""
    present = set(sites)
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "EdgeNetwork",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "edge-allocator-demo"}},
        "spec": {
            "sites": [{"name": s, "intraLatencyMs": 1} for s in sites],
            "links": [
                {"a": a, "b": b, "latencyMs": lat, "bandwidthMbps": bw}
                for a, b, lat, bw in LINKS
                if a in present and b in present
            ],
        },
    }


def burst(count: int, sites: Sequence[str]) -> list[dict[str, Any]]:
    """Small inference tasks fed from every site in turn, each within 15 ms of its source."""
    return [
        {
            "apiVersion": GROUP_VERSION,
            "kind": "EdgeTask",
            "metadata": {"name": f"{BURST_PREFIX}{i}", "labels": {"app": "inference"}},
            "spec": {
                "dataSource": {"site": sites[i % len(sites)]},
                "inputMB": 5,
                "latencyBudgetMs": 15,
                "template": {
                    "metadata": {"labels": {"app": "inference"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "model",
                                "image": "registry.example.com/edge/infer:3.1",
                                "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}},
                            }
                        ]
                    },
                },
            },
        }
        for i in range(count)
    ]


def example_tasks(
    examples_dir: Path, sites: Iterable[str], nodes: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """The EdgeTasks of ``examples/`` whose data source this fleet has (skips e.g. site-z).

    ``nodes``: the cluster's node names; a task fed from a node not among them is skipped.
    """
    known = set(sites)
    node_names = None if nodes is None else set(nodes)
    out: list[dict[str, Any]] = []
    for path in sorted(examples_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "EdgeTask":
                continue
            source = (doc.get("spec") or {}).get("dataSource") or {}
            site = source.get("site")
            node = source.get("node")
            if site is not None and site not in known:
                continue
            if node is not None and node_names is not None and node not in node_names:
                continue
            out.append(doc)
    return out
