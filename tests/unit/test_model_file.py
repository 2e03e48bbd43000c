"""Model files and the registry: round trip, refusal of bad files, names that resolve."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, NodeState, Site, TaskSpec
from edge_allocator.policy import registry
from edge_allocator.policy.base import PlacementPolicy
from edge_allocator.policy.gnn import GNNConfig, PlacementGNN
from edge_allocator.policy.model_file import ModelLoadError, load_model_file, save_model


def _snap() -> ClusterSnapshot:
    sites = (Site("a"), Site("b"))
    nodes = tuple(
        NodeState(f"n{i}", "ab"[i % 2], "x", 4000, 8000, 4000, 8000, cpu_requested_m=300 * i)
        for i in range(6)
    )
    return ClusterSnapshot(nodes, sites, (Link("a", "b", 5.0, 100.0),), revision=1)


TASK = TaskSpec(500, 512, "a", input_mb=2.0, work_cpu_s=3.0)


def _model(tmp_path: Path, name: str = "gnn-test.pt") -> tuple[Path, PlacementGNN]:
    torch.manual_seed(0)
    model = PlacementGNN(GNNConfig(hidden=8, layers=2, head_hidden=16))
    path = tmp_path / name
    save_model(path, model, {"name": "gnn", "version": "0.0.1", "training_config": {"seed": 0}})
    return path, model


def test_round_trip_scores_identically_and_records_metadata(tmp_path: Path) -> None:
    path, _ = _model(tmp_path)
    a, b = load_model_file(path), load_model_file(path)
    assert isinstance(a, PlacementPolicy)
    names = [n.name for n in _snap().nodes]
    assert a.score(_snap(), TASK, names) == b.score(_snap(), TASK, names)
    assert a.version == "0.0.1"
    assert a.metadata["feature_schema_version"] == 1
    assert a.metadata["model_config"] == {"hidden": 8, "layers": 2, "head_hidden": 16}
    assert a.metadata["training_config"] == {"seed": 0}


def test_cached_embedding_matches_a_full_forward(tmp_path: Path) -> None:
    path, model = _model(tmp_path)
    policy = load_model_file(path)
    snap = _snap()
    names = [n.name for n in snap.nodes][::-1]
    first = policy.score(snap, TASK, names)
    again = policy.score(snap, TASK, names)  # served from the revision cache
    from edge_allocator.cluster.features import build_features
    from edge_allocator.policy.graph_input import single_graph

    topo, nodes, cand = build_features(snap, TASK, names)
    g = single_graph(topo, nodes)
    with torch.no_grad():
        h, pooled = model.embed(
            g.vertex_x, g.edge_index, g.edge_attr, g.node_mask, g.batch, g.num_graphs
        )
        k = len(names)
        full = model.head(
            h[torch.from_numpy(cand.index)],
            pooled.expand(k, -1),
            torch.from_numpy(cand.cand_x),
            torch.from_numpy(cand.task_x).expand(k, -1),
        )
    assert first == again
    assert first == pytest.approx(full.tolist(), abs=1e-5)


def test_corrupted_truncated_and_foreign_files_are_refused(tmp_path: Path) -> None:
    path, _ = _model(tmp_path)
    raw = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelLoadError, match="not a readable model file"):
        load_model_file(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="not a readable model file"):
        load_model_file(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ModelLoadError, match="not an edge-allocator model file"):
        load_model_file(tmp_path / "foreign.pt")
    with pytest.raises(ModelLoadError, match="no such model file"):
        load_model_file(tmp_path / "absent.pt")


def test_altered_weights_and_schema_mismatch_are_refused(tmp_path: Path) -> None:
    path, _ = _model(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["head3.bias"] += 1.0
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(ModelLoadError, match="SHA-256"):
        load_model_file(tmp_path / "edited.pt")
    payload = torch.load(path, weights_only=True)
    payload["metadata"]["feature_schema_version"] = 999
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ModelLoadError, match="feature schema version 999"):
        load_model_file(tmp_path / "future.pt")


def test_registry_resolves_baselines_models_and_refuses_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(registry.MODELS_DIR_ENV, str(tmp_path))
    for name in (
        "kube-default",
        "latency",
        "trimaran-tlp",
        "network-overhead",
        "random",
        "round-robin",
        "est-completion",
    ):
        policy = registry.get_policy(name)
        assert policy.name == name
        assert len(policy.score(_snap(), TASK, ["n0", "n1"])) == 2
    assert "gnn" not in registry.policy_names()
    with pytest.raises(registry.UnknownPolicyError, match="no shipped model"):
        registry.get_policy("gnn")
    with pytest.raises(registry.UnknownPolicyError, match="simulator-only"):
        registry.get_policy("greedy-oracle")
    with pytest.raises(registry.UnknownPolicyError, match="unknown policy 'nope'"):
        registry.get_policy("nope")

    _model(tmp_path, "gnn-0.0.1.pt")
    (tmp_path / "broken.pt").write_bytes(b"junk")
    assert [(m.name, m.shipped) for m in registry.list_models()] == [("gnn", False)]
    (tmp_path / registry.SHIPPED_FILE).write_text("gnn-0.0.1.pt\n")
    models = registry.list_models()
    assert [(m.name, m.version, m.shipped) for m in models] == [("gnn", "0.0.1", True)]
    assert registry.policy_names()[0] == "gnn"
    assert registry.get_policy("gnn") is registry.get_policy("gnn@0.0.1")
    assert registry.get_policy("gnn").version == "0.0.1"
    with pytest.raises(ModelLoadError):
        registry.get_policy(str(tmp_path / "broken.pt"))
