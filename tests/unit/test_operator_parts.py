"""The operator's pure parts: pod manifests, sites, decisions, metrics, CLI and boundaries."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest
import yaml

from edge_allocator.cluster.annotations import (
    ANN_DATA_SOURCE_NODE,
    ANN_DATA_SOURCE_SITE,
    ANN_INPUT_MB,
    ANN_LATENCY_BUDGET_MS,
    ANN_POLICY,
    DEFAULT_INTRA_LATENCY_MS,
    LABEL_ATTEMPT,
    LABEL_MANAGED,
    LABEL_TASK,
    SCHEDULER_NAME,
    CandidateScore,
    DecisionRecord,
)
from edge_allocator.operator import cli
from edge_allocator.operator.config import LeaderConfig, OperatorConfig
from edge_allocator.operator.decisions import parse_record, recorded_decision, unrecorded_decision
from edge_allocator.operator.metrics import OperatorMetrics
from edge_allocator.operator.network_status import network_status
from edge_allocator.operator.podspec import build_pod, pod_name
from edge_allocator.operator.topology import build_topology
from edge_allocator.operator.views import NetworkView, NodeView, PodView, TaskView

ROOT = Path(__file__).resolve().parents[2]


def _task(**spec: object) -> TaskView:
    body_spec = {
        "dataSource": {"site": "site-a"},
        "template": {
            "metadata": {"labels": {"app": "x"}, "annotations": {"note": "kept"}},
            "spec": {"containers": [{"name": "c", "image": "img"}], "nodeSelector": {"k": "v"}},
        },
        **spec,
    }
    return TaskView.from_body(
        {"metadata": {"name": "job", "namespace": "ns", "uid": "u1"}, "spec": body_spec}
    )


def test_pod_names_are_deterministic_per_attempt() -> None:
    assert pod_name("job", 1) == "job-1"
    assert pod_name("job", 12) == "job-12"
    assert pod_name("job-1", 2) != pod_name("job", 12)


def test_pod_carries_placement_inputs_owner_and_scheduler() -> None:
    t = _task(dataSource={"node": "n7"}, inputMB=200, latencyBudgetMs=15, policy="gnn-small")
    pod = build_pod(t, 2, "site-b", "default-scheduler")
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "job-2" and meta["namespace"] == "ns"
    assert meta["labels"] == {
        "app": "x",
        LABEL_TASK: "job",
        LABEL_ATTEMPT: "2",
        LABEL_MANAGED: "true",
    }
    ann = meta["annotations"]
    assert ann["note"] == "kept"
    assert ann[ANN_DATA_SOURCE_SITE] == "site-b"
    assert ann[ANN_DATA_SOURCE_NODE] == "n7"
    assert ann[ANN_INPUT_MB] == "200"
    assert ann[ANN_LATENCY_BUDGET_MS] == "15"
    assert ann[ANN_POLICY] == "gnn-small"
    (owner,) = meta["ownerReferences"]
    assert owner["uid"] == "u1" and owner["controller"] is True
    assert owner["kind"] == "EdgeTask" and owner["apiVersion"] == "edge-allocator.io/v1alpha1"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["restartPolicy"] == "Never"
    assert spec["nodeSelector"] == {"k": "v"}


def test_optional_annotations_are_left_out_and_template_is_not_mutated() -> None:
    t = _task()
    pod = build_pod(t, 1, "site-a", SCHEDULER_NAME)
    ann = pod["metadata"]["annotations"]
    assert ANN_LATENCY_BUDGET_MS not in ann and ANN_POLICY not in ann
    assert ANN_DATA_SOURCE_NODE not in ann
    assert "schedulerName" not in t.template["spec"]
    assert pod["spec"]["schedulerName"] == SCHEDULER_NAME


def _node(name: str, zone: str | None) -> NodeView:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return NodeView.from_body({"metadata": {"name": name, "labels": labels}})


def _network(
    name: str, sites: list[str], links: list[tuple[str, str, int]], **extra: object
) -> NetworkView:
    return NetworkView.from_body(
        {
            "metadata": {"name": name, "generation": 3},
            "spec": {
                "sites": [{"name": s, "intraLatencyMs": 2} for s in sites],
                "links": [
                    {"a": a, "b": b, "latencyMs": lat, "bandwidthMbps": 100} for a, b, lat in links
                ],
                **extra,
            },
        }
    )


def test_topology_merges_networks_and_node_labels() -> None:
    nets = [
        _network("n1", ["a", "b"], [("a", "b", 10)]),
        _network("n2", ["c"], [], nodeOverrides=[{"node": "x", "site": "c"}]),
    ]
    topo = build_topology(nets, [_node("a1", "a"), _node("x", "b"), _node("z1", "zone-z")])
    assert topo.has_site("a") and topo.has_site("c") and topo.has_site("zone-z")
    assert not topo.has_site("nowhere")
    assert topo.site_of("x") == "c"  # the override wins over the label
    assert topo.site_of("a1") == "a"
    assert topo.latency_ms("a", "b") == 10
    assert topo.latency_ms("a", "a") == 2
    assert topo.latency_ms("a", "c") is None  # no link: unreachable, never a guess
    assert topo.empty_sites(["a", "b", "c"]) == ["b"]
    # a site known only from a zone label: the extender's latency inside it (1 ms), not 0
    assert topo.latency_ms("zone-z", "zone-z") == round(DEFAULT_INTRA_LATENCY_MS) == 1


def test_network_status_counts_sites_links_and_nodes() -> None:
    import datetime as dt

    net = _network("n1", ["a", "b", "c"], [("a", "b", 5)])
    topo = build_topology([net], [_node("a1", "a"), _node("a2", "a"), _node("b1", "b")])
    st = network_status(net, topo, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert (st["siteCount"], st["linkCount"], st["nodeCount"]) == (3, 1, 3)
    assert st["emptySites"] == ["c"]
    assert st["observedGeneration"] == 3
    (ready,) = st["conditions"]
    assert ready["type"] == "Ready" and ready["status"] == "True" and "c" in ready["message"]


def test_decision_record_round_trip_and_bad_json() -> None:
    rec = DecisionRecord(
        policy="p",
        model_version="m",
        chosen="n1",
        score=8,
        rank=1,
        latency_ms=None,
        candidates=(CandidateScore("n1", 8, 1.0),),
    )
    assert parse_record(rec.to_json()) == rec
    assert parse_record("{not json") is None
    assert parse_record('{"policy": "p"}') is None
    assert parse_record(None) is None
    out = recorded_decision(rec, "elsewhere", "annotation")
    assert "score" not in out and "rank" not in out  # the bound node was not among the top
    assert out["candidateCount"] == 1


def test_unrecorded_decision_has_no_scores() -> None:
    out = unrecorded_decision("edge-allocator", "extender unreachable")
    assert out == {
        "recorded": False,
        "source": "none",
        "message": "placed by scheduler 'edge-allocator' without a recorded decision "
        "(extender unreachable)",
    }


def test_pod_view_ignores_pods_without_task_labels() -> None:
    assert PodView.from_body({"metadata": {"name": "x", "labels": {}}}) is None


def test_pod_view_describes_a_failed_container() -> None:
    view = PodView.from_body(
        {
            "metadata": {"name": "t-1", "labels": {LABEL_TASK: "t", LABEL_ATTEMPT: "1"}},
            "status": {
                "phase": "Failed",
                "containerStatuses": [
                    {"name": "main", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}
                ],
            },
        }
    )
    assert view is not None and view.terminal and not view.live
    assert view.message == "container main exited 3 (Error)"


def test_phase_metric_counts_tasks() -> None:
    m = OperatorMetrics()
    m.phases.set(("ns", "a"), "Running")
    m.phases.set(("ns", "b"), "Running")
    m.phases.set(("ns", "c"), None)
    m.phases.set(("ns", "b"), "Failed")
    m.phases.forget(("ns", "a"))
    assert m.phases.counts() == {
        "Pending": 1,
        "Scheduled": 0,
        "Running": 0,
        "Succeeded": 0,
        "Failed": 1,
    }
    value = m.registry.get_sample_value("edge_allocator_operator_tasks", {"phase": "Failed"})
    assert value == 1


def test_config_validation_names_the_setting() -> None:
    with pytest.raises(ValueError, match="scheduler_name"):
        OperatorConfig(scheduler_name="")
    with pytest.raises(ValueError, match="retry_period_s < renew_deadline_s"):
        LeaderConfig(lease_duration_s=5, renew_deadline_s=6, retry_period_s=1)


def test_cli_defaults() -> None:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(["-n", "a", "-n", "b", "--scheduler-name", "default-scheduler"])
    assert args.namespaces == ["a", "b"]
    assert args.scheduler_name == "default-scheduler"
    assert args.leader_election is True
    assert parser.parse_args([]).scheduler_name == SCHEDULER_NAME


def test_operator_never_imports_the_extender_or_the_policy() -> None:
    forbidden = ("edge_allocator.extender", "edge_allocator.policy", "torch")
    for path in (ROOT / "src/edge_allocator/operator").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"


def test_crds_have_status_printer_columns_and_descriptions() -> None:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["group"] != "edge-allocator.io":
            continue
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1"
        assert version["subresources"] == {"status": {}}
        assert version["additionalPrinterColumns"], path.name
        spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for name, prop in spec_schema["properties"].items():
            assert prop.get("description"), f"{path.name}: spec.{name} has no description"


def test_edgetask_printer_columns_cover_the_issue() -> None:
    crd = yaml.safe_load((ROOT / "crds/edgetasks.edge-allocator.io.yaml").read_text())
    cols = {c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Phase", "Node", "Site", "Score", "Latency", "Attempts", "Age"} <= cols
