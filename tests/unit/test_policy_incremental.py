"""Incremental node embeddings equal a full PyG pass after any sequence of node changes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from edge_allocator.cluster.features import node_arrays, topology_arrays
from edge_allocator.cluster.snapshot import ClusterSnapshot
from edge_allocator.policy.gnn import GNNConfig, PlacementGNN
from edge_allocator.policy.gnn_policy import GNNPolicy
from edge_allocator.policy.graph_input import single_graph
from edge_allocator.sim.engine import Simulator
from edge_allocator.sim.scenario import load_scenario


def reference_node_part(policy: GNNPolicy, snap: ClusterSnapshot) -> np.ndarray:
    """The head's node part from PlacementGNN.embed (the PyG module training uses)."""
    g = single_graph(topology_arrays(snap), node_arrays(snap))
    with torch.inference_mode():
        h, pooled = policy.model.embed(
            g.vertex_x, g.edge_index, g.edge_attr, g.node_mask, g.batch, g.num_graphs
        )
        w_node, w_pool, _, _ = policy.model.split_head_weights()
        return (h @ w_node.T + (pooled[0] @ w_pool.T + policy.model.head1.bias)).numpy()


def cluster(scenario: str, nodes: int) -> ClusterSnapshot:
    sim = Simulator(load_scenario(scenario).resized(nodes, 10), seed=3)
    sim._reset()
    return sim.snapshot(0.0)


def changed(snap: ClusterSnapshot, rows: list[int], revision: int) -> ClusterSnapshot:
    nodes = list(snap.nodes)
    for i in rows:
        st = nodes[i]
        nodes[i] = dataclasses.replace(
            st,
            cpu_requested_m=st.cpu_requested_m + 250,
            mem_requested_mib=st.mem_requested_mib + 64,
            running_tasks=st.running_tasks + 1,
        )
    return snap.with_nodes(tuple(nodes), revision=revision, taken_at=0.0, changed=rows)


@pytest.fixture(params=[("smart-city", 300), ("campus", 120), ("rural", 40)])
def snap(request: pytest.FixtureRequest) -> ClusterSnapshot:
    scenario, nodes = request.param
    return cluster(scenario, nodes)


def test_sequence_of_changes_matches_full_pass(snap: ClusterSnapshot) -> None:
    torch.manual_seed(0)
    policy = GNNPolicy(PlacementGNN(GNNConfig(hidden=16, layers=3, head_hidden=24)), {})
    rng = np.random.default_rng(1)
    n = len(snap.nodes)
    current = snap
    for step in range(40):
        # mostly one placement, sometimes a few nodes, sometimes most of the cluster
        k = 1 if step % 7 else (3 if step % 14 else n)
        rows = sorted({int(i) for i in rng.integers(0, n, size=k)})
        current = changed(current, rows, revision=snap.revision + 1 + step)
        got = policy._embedding(current).node_part
        want = reference_node_part(policy, current)
        assert np.allclose(got, want, atol=2e-5), (
            f"step {step}: max diff {np.abs(got - want).max()}"
        )
    assert policy.embedder.incremental_passes >= 30
    assert policy.embedder.full_passes >= 2  # the first pass and the whole-cluster changes


def test_unchanged_rows_reuse_the_last_embedding(snap: ClusterSnapshot) -> None:
    policy = GNNPolicy(PlacementGNN(), {})
    first = policy._embedding(snap).node_part
    same = snap.with_nodes(snap.nodes, revision=99, taken_at=1.0, changed=[])
    assert policy._embedding(same).node_part is first
    assert policy.embedder.full_passes == 1 and policy.embedder.incremental_passes == 0


def test_another_topology_gets_a_full_pass() -> None:
    policy = GNNPolicy(PlacementGNN(), {})
    a, b = cluster("smart-city", 60), cluster("campus", 60)
    policy._embedding(a)
    got = policy._embedding(b).node_part
    assert policy.embedder.full_passes == 2
    assert np.allclose(got, reference_node_part(policy, b), atol=2e-5)


def test_scores_equal_after_incremental_updates() -> None:
    """What the verbs see: candidate scores, not just the embedding."""
    torch.manual_seed(1)
    policy = GNNPolicy(PlacementGNN(), {})
    snap = cluster("smart-city", 200)
    sim = Simulator(load_scenario("smart-city").resized(200, 10), seed=3)
    sim._reset()
    task = sim.task_spec(0)
    names = [nd.name for nd in snap.nodes]
    current = snap
    policy.score(current, task, names)
    for step in range(10):
        current = changed(current, [step * 7 % len(names)], revision=snap.revision + 1 + step)
        got = policy.score(current, task, names)
        want = GNNPolicy(policy.model, {}).score(current, task, names)  # no history: full pass
        assert np.allclose(got, want, atol=1e-4)
        assert want[int(np.argmax(got))] >= max(want) - 1e-4  # the same choice, up to ties


def test_concurrent_requests_for_one_snapshot_embed_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The extender's prepare and the next /prioritize can ask for the same snapshot at once
    on a busy host: the second waits for the first instead of embedding it again."""
    import threading
    import time

    policy = GNNPolicy(PlacementGNN(), {})
    snap = cluster("rural", 40)
    calls = []
    real = policy.embedder.embed

    def slow_embed(*args: object) -> np.ndarray:
        calls.append(threading.get_ident())
        time.sleep(0.2)  # long enough that every thread below asks while this one runs
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(policy.embedder, "embed", slow_embed)
    got: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: got.append(policy._embedding(snap).node_part))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(calls) == 1 and len(got) == 4
    assert all(g is got[0] for g in got)


def test_a_failed_embedding_lets_the_waiting_caller_try_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import time

    policy = GNNPolicy(PlacementGNN(), {})
    snap = cluster("rural", 40)
    real = policy.embedder.embed
    calls = []

    def first_fails(*args: object) -> np.ndarray:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.2)
            raise RuntimeError("boom")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(policy.embedder, "embed", first_fails)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            policy._embedding(snap)
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.05)
    second = policy._embedding(snap).node_part  # waits, then embeds itself
    t.join(timeout=10)
    assert len(errors) == 1 and len(calls) == 2
    assert np.allclose(second, reference_node_part(policy, snap), atol=2e-5)
