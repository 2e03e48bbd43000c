"""The dashboard's JSON and model-card reduction on fixed inputs, and its routes in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, NodeState, Site
from edge_allocator.dashboard import (
    DashboardSource,
    ModelSummary,
    build_state,
    create_router,
    summarize_model,
)
from edge_allocator.dashboard.model_card import comparison_from_rows
from edge_allocator.dashboard.view import EDGETASKS_PATH, StateCache, list_edgetasks


def _snapshot() -> ClusterSnapshot:
    sites = (Site("a", 1.0), Site("b", 2.0))
    nodes = (
        NodeState("a-0", "a", "server", 32000, 65536, 32000, 65536, cpu_requested_m=8000,
                  mem_requested_mib=49152, cpu_usage_m=4000, running_tasks=2),
        NodeState("b-0", "b", "small", 4000, 4096, 4000, 4096, cpu_requested_m=1000, ready=False),
    )  # fmt: skip
    return ClusterSnapshot(nodes, sites, (Link("a", "b", 5.0, 1000.0),))


def _task(name: str, created: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "demo", "name": name, "creationTimestamp": created},
        "spec": {"dataSource": {"site": "a"}, "latencyBudgetMs": 10},
        "status": status,
    }


def test_nodes_carry_load_fractions_from_measured_or_requested_use() -> None:
    state = build_state(_snapshot(), [], None)
    a, b = state["nodes"]
    assert a["cpuFraction"] == 4000 / 32000  # measured usage wins over the 8000m request
    assert a["memFraction"] == 49152 / 65536  # no memory measurement: requests
    assert a["load"] == max(a["cpuFraction"], a["memFraction"]) and a["measured"] is True
    assert b["cpuFraction"] == 0.25 and b["ready"] is False and b["measured"] is False
    assert state["links"] == [{"a": "a", "b": "b", "latencyMs": 5.0, "bandwidthMbps": 1000.0}]
    assert [s["name"] for s in state["sites"]] == ["a", "b"]


def test_placements_newest_first_with_the_decision_and_capped() -> None:
    decision = {
        "policy": "gnn", "modelVersion": "3", "score": 10, "rank": 1, "chosenNode": "a-0",
        "candidates": [{"node": "a-0", "score": 10, "raw": 2.5}, {"node": "b-0", "score": 4}],
    }  # fmt: skip
    tasks = [
        _task("old", "2026-01-01T00:00:00Z", phase="Succeeded", nodeName="b-0"),
        _task("new", "2026-01-02T00:00:00Z", phase="Running", nodeName="a-0", site="a",
              networkLatencyMs=1, decision=decision),
        _task("pending", "2026-01-01T12:00:00Z"),
    ]  # fmt: skip
    state = build_state(_snapshot(), tasks, None, max_placements=2)
    assert [p["name"] for p in state["placements"]] == ["new", "pending"]
    assert state["placementCount"] == 3
    new = state["placements"][0]
    assert (new["node"], new["site"], new["dataSourceSite"]) == ("a-0", "a", "a")
    assert (new["policy"], new["score"], new["rank"]) == ("gnn", 10, 1)
    assert [c["node"] for c in new["candidates"]] == ["a-0", "b-0"]
    assert state["placements"][1]["phase"] == "Pending"


def test_comparison_is_mean_completion_relative_to_kube_default_per_split() -> None:
    def row(split: str, case: str, policy: str, mean: float, ci: float) -> dict[str, Any]:
        return {"split": split, "case": case, "policy": policy,
                "mean_completion_s": {"mean": mean, "ci95": ci}}  # fmt: skip

    rows = [
        row("train", "c1", "kube-default", 10.0, 1.0),
        row("train", "c1", "gnn", 1.0, 0.1),
        row("held-out", "c1", "kube-default", 10.0, 1.0),
        row("held-out", "c1", "gnn", 8.0, 0.4),
        row("held-out", "c2", "kube-default", 4.0, 0.2),
        row("held-out", "c2", "gnn", 2.0, 0.2),
    ]
    split, comp = comparison_from_rows(rows)
    assert split == "held-out"  # held-out is preferred over train
    by = {c.policy: c for c in comp}
    assert by["kube-default"].relative == 1.0
    assert by["gnn"].relative == round((8 / 10 + 2 / 4) / 2, 4)
    assert by["gnn"].cases == 2
    assert [c.policy for c in comp] == ["gnn", "kube-default"]  # best first


def test_model_card_is_found_next_to_the_model_file(tmp_path: Path) -> None:
    model = tmp_path / "gnn-v3.pt"
    model.write_bytes(b"")
    rows = [
        {"split": "test", "case": "x", "policy": p, "mean_completion_s": {"mean": m, "ci95": 0}}
        for p, m in (("kube-default", 5.0), ("gnn", 4.0))
    ]
    (tmp_path / "gnn-v3.eval.json").write_text(json.dumps({"rows": rows}))
    summary = summarize_model("gnn", "gnn-policy", "3", model)
    assert summary.split == "test" and summary.card == "gnn-v3.eval.json"
    assert {c.policy: c.relative for c in summary.comparison} == {"gnn": 0.8, "kube-default": 1.0}
    bare = summarize_model("latency", "latency", "1", None)
    assert bare.comparison == () and bare.card == ""


def test_routes_serve_the_page_assets_and_state_without_a_cdn() -> None:
    calls: list[str] = []

    def api_get(path: str) -> dict[str, Any]:
        calls.append(path)
        return {"items": [_task("t", "2026-01-01T00:00:00Z", phase="Running", nodeName="a-0")]}

    model = ModelSummary("gnn", "gnn-policy", "3")
    app = FastAPI()
    source = DashboardSource(snapshot=_snapshot, api_get=api_get, model=lambda: model)
    app.include_router(create_router(source), prefix="/ui")
    client = TestClient(app)
    redirect = client.get("/ui", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and 'src="static/app.js"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css"):
        asset = client.get(f"/ui/static/{name}")
        assert asset.status_code == 200 and "//cdn" not in asset.text
    assert client.get("/ui/static/../router.py").status_code == 404
    state = client.get("/ui/api/state").json()
    assert calls == ["/apis/edge-allocator.io/v1alpha1/edgetasks?limit=500"]
    assert state["model"]["name"] == "gnn" and state["placements"][0]["node"] == "a-0"
    assert len(state["nodes"]) == 2 and state["errors"] == []


def test_a_failing_api_is_reported_and_the_graph_still_served() -> None:
    def api_get(path: str) -> dict[str, Any]:
        raise OSError("connection refused")

    app = FastAPI()
    source = DashboardSource(snapshot=_snapshot, api_get=api_get, model=lambda: None)
    app.include_router(create_router(source), prefix="/ui")
    state = TestClient(app).get("/ui/api/state").json()
    assert state["placements"] == [] and len(state["nodes"]) == 2
    assert state["errors"] == ["listing EdgeTasks failed: connection refused"]


def test_reads_a_card_shaped_as_the_evaluation_harness_writes_it(tmp_path: Path) -> None:
    """``edge-allocator evaluate --card`` writes <stem>.card.json, rows under "evaluation",
    NaN stored as null."""

    def row(split: str, policy: str, mean: float | None) -> dict[str, Any]:
        return {"split": split, "case": "burst:20", "policy": policy,
                "mean_completion_s": {"mean": mean, "ci95": None}}  # fmt: skip

    rows = [row("train", "kube-default", 9.0), row("train", "gnn", 3.0),
            row("heldout", "kube-default", 10.0), row("heldout", "gnn", 6.0),
            row("heldout", "random", None)]  # fmt: skip
    card = {"name": "gnn", "version": "1.0.0", "evaluation": {"rows": rows, "paired": []}}
    model = tmp_path / "gnn-1.0.0.pt"
    (tmp_path / "gnn-1.0.0.card.json").write_text(json.dumps(card))
    summary = summarize_model("gnn", "gnn", "1.0.0", model)
    assert summary.card == "gnn-1.0.0.card.json" and summary.split == "heldout"
    assert {c.policy: c.relative for c in summary.comparison} == {"gnn": 0.6, "kube-default": 1.0}


def _paged_api(total: int, calls: list[str]) -> Any:
    """An API server holding ``total`` EdgeTasks that honours ``limit`` and ``continue``."""
    from urllib.parse import parse_qs, urlsplit

    def api_get(path: str) -> dict[str, Any]:
        calls.append(path)
        url = urlsplit(path)
        assert url.path == EDGETASKS_PATH
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        start = int(query.get("continue", "start=0").split("=")[1])
        end = min(start + int(query["limit"]), total)
        items = [
            _task(f"t{i}", f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z") for i in range(start, end)
        ]
        meta = {"continue": f"start={end}"} if end < total else {}
        return {"items": items, "metadata": meta}

    return api_get


@pytest.mark.parametrize(
    ("total", "page", "cap", "want_calls", "want_items", "truncated"),
    [
        (0, 500, 5000, 1, 0, False),
        (7, 3, 5000, 3, 7, False),  # 3 + 3 + 1
        (6, 3, 5000, 2, 6, False),  # the last full page carries no continue token
        (10, 4, 6, 2, 6, True),  # 4 + min(4, 6 - 4): stops at the cap and says so
    ],
)
def test_edgetasks_are_listed_in_pages(
    total: int, page: int, cap: int, want_calls: int, want_items: int, truncated: bool
) -> None:
    calls: list[str] = []
    tasks, more = list_edgetasks(_paged_api(total, calls), page, cap)
    assert (len(calls), len(tasks), more) == (want_calls, want_items, truncated)
    assert calls[0] == f"{EDGETASKS_PATH}?limit={min(page, cap)}"
    if len(calls) > 1:  # the continue token is URL-encoded ('=' -> %3D)
        assert calls[1].endswith(f"&continue=start%3D{page}")
    assert len({t["metadata"]["name"] for t in tasks}) == want_items


def test_a_truncated_list_is_reported_on_the_page() -> None:
    calls: list[str] = []
    source = DashboardSource(
        snapshot=_snapshot, api_get=_paged_api(12, calls), model=lambda: None,
        page_size=5, max_tasks=10,
    )  # fmt: skip
    state = StateCache(source).get()
    assert state["placementCount"] == 10 and len(calls) == 2
    assert state["errors"] == ["only the first 10 EdgeTasks were read"]


def test_the_state_is_computed_once_per_ttl_for_every_poll() -> None:
    calls: list[str] = []
    now = [100.0]
    source = DashboardSource(
        snapshot=_snapshot, api_get=_paged_api(3, calls), model=lambda: None, state_ttl_s=3.0
    )
    cache = StateCache(source, clock=lambda: now[0])
    first = cache.get()
    now[0] += 2.9
    assert cache.get() is first and len(calls) == 1
    now[0] += 0.2
    assert cache.get() is not first and len(calls) == 2
    # through the route: polls within the TTL share one LIST
    app = FastAPI()
    app.include_router(create_router(source), prefix="/ui")
    client = TestClient(app)
    calls.clear()
    for _ in range(5):
        assert client.get("/ui/api/state").json()["placementCount"] == 3
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("secret", 401),  # not a bearer credential
        ("Basic c2VjcmV0", 401),
        ("Bearer secret", 200),
    ],
)
def test_the_state_needs_the_admin_token_when_one_is_set(header: str | None, status: int) -> None:
    from test_extender_helpers import make_app

    calls: list[str] = []
    app, _, _ = make_app(admin_token="secret")  # mounted as the extender mounts it
    source = DashboardSource(snapshot=_snapshot, api_get=_paged_api(1, calls), model=lambda: None)
    app.include_router(create_router(source, admin_token="secret"), prefix="/ui")
    client = TestClient(app)
    headers = {"authorization": header} if header else {}
    r = client.get("/ui/api/state", headers=headers)
    assert r.status_code == status
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
        assert "admin token" in r.json()["error"]["message"]
        assert calls == []  # nothing read for an unauthenticated caller
    else:
        assert r.json()["placementCount"] == 1
    # the page and its assets hold no cluster data: always served
    assert client.get("/ui/").status_code == 200
    assert client.get("/ui/static/app.js").status_code == 200


def test_without_an_admin_token_the_state_is_open() -> None:
    source = DashboardSource(snapshot=_snapshot, api_get=_paged_api(0, []), model=lambda: None)
    app = FastAPI()
    app.include_router(create_router(source, admin_token=None), prefix="/ui")
    assert TestClient(app).get("/ui/api/state").status_code == 200
