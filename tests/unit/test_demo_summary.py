"""The demo's summary paragraph and manifests, on hand-written task statuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_allocator.demo.manifests import burst, edge_network, example_tasks
from edge_allocator.demo.summary import summarize

ROOT = Path(__file__).resolve().parents[2]


def _task(name: str, node: str | None, site: str, budget: int | None = None, **extra: Any) -> Any:
    spec: dict[str, Any] = {"dataSource": {"site": "site-a"}, "inputMB": extra.pop("mb", 1)}
    if budget is not None:
        spec["latencyBudgetMs"] = budget
    status: dict[str, Any] = {"phase": "Running" if node else "Pending", **extra}
    if node:
        status |= {"nodeName": node, "site": site, "dataSourceSite": "site-a"}
    return {"metadata": {"name": name}, "spec": spec, "status": status}


def test_summary_counts_nodes_sites_budgets_and_the_burst() -> None:
    rec = {"recorded": True, "policy": "gnn", "modelVersion": "1.0.0", "rank": 1}
    tasks = [
        _task("camera", "a-1", "site-a", 10, networkLatencyMs=1, decision=rec),
        _task("far", "c-1", "site-c", 25, networkLatencyMs=40, decision=rec | {"rank": 2}),
        _task("batch", "b-1", "site-b", mb=1024, networkLatencyMs=5, decision=rec),
        _task("inference-0", "a-1", "site-a", 15, networkLatencyMs=1, decision=rec),
        _task("inference-1", "a-1", "site-a", 15, networkLatencyMs=1, decision=rec),
        _task("inference-2", "b-1", "site-b", 15, networkLatencyMs=5, decision=rec),
        _task("stuck", None, ""),
    ]
    text = summarize(tasks, total_nodes=20, seconds=4.2)
    assert text.startswith("6 of 7 EdgeTasks were placed in 4 s, on 3 of 20 nodes across 3 sites")
    assert "scored by gnn 1.0.0; the policy's first choice was bound for 5 of 6" in text
    assert "4 of 5 tasks with a latency budget landed within it" in text
    assert (
        "the tightest, camera (10 ms), runs on a-1 (site-a, 1 ms from its data in site-a)" in text
    )
    assert "batch has no budget but 1024 MB of input, and went to b-1 (site-b" in text
    assert "The burst of 3 small inference tasks spread over 2 nodes in 2 sites (at most 2" in text


def test_summary_names_failures_with_their_reason() -> None:
    failed = _task("lost", None, "", reason="NoFeasibleNode")
    failed["status"]["phase"] = "Failed"
    text = summarize([failed], total_nodes=4, seconds=1)
    assert text.startswith("0 of 1 EdgeTasks were placed")
    assert "1 failed (lost: NoFeasibleNode)." in text


def test_network_keeps_only_links_between_present_sites() -> None:
    net = edge_network("n", ("site-a", "site-b", "site-c"))
    ends = {(lk["a"], lk["b"]) for lk in net["spec"]["links"]}
    assert ends == {("site-a", "site-b"), ("site-b", "site-c"), ("site-a", "site-c")}
    assert [s["name"] for s in net["spec"]["sites"]] == ["site-a", "site-b", "site-c"]


def test_burst_cycles_sources_and_examples_skip_unknown_sites() -> None:
    tasks = burst(5, ("site-a", "site-b"))
    assert [t["spec"]["dataSource"]["site"] for t in tasks] == ["site-a", "site-b"] * 2 + ["site-a"]
    assert len({t["metadata"]["name"] for t in tasks}) == 5
    sites = ("site-a", "site-b", "site-c")
    examples = example_tasks(ROOT / "examples", sites, ["site-c-server-0"])
    names = {t["metadata"]["name"] for t in examples}
    assert {"camera-analytics", "sensor-aggregation"} <= names and "unknown-site" not in names
    assert all(t["kind"] == "EdgeTask" for t in examples)
    without_node = example_tasks(ROOT / "examples", sites, ["site-a-server-0"])
    assert "sensor-aggregation" not in {t["metadata"]["name"] for t in without_node}
