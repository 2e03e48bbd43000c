"""Score mapping, tie rule and latency-budget filtering, with the arithmetic written out."""

from __future__ import annotations

import math

import pytest
from test_extender_helpers import fleet

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.extender.scoring import filter_candidates, rank, to_extender_scores


@pytest.mark.parametrize(
    ("names", "raw", "expected"),
    [
        # top gets 10; others round(9 * (raw - lo) / (top - lo)): lo=0, top=10
        (["a", "b", "c"], [10.0, 5.0, 0.0], [10, 4, 0]),  # 9*0.5=4.5 -> round-half-even 4
        (["a", "b", "c"], [0.0, 10.0, 7.0], [0, 10, 6]),  # 9*0.7=6.3 -> 6
        # all equal: the tie rule gives the smallest name 10, every other node 9
        (["b", "a", "c"], [1.0, 1.0, 1.0], [9, 10, 9]),
        # tie at the top, a lower node: a wins by name; b ties with top -> 9; c -> 0
        (["b", "a", "c"], [3.0, 3.0, -1.0], [9, 10, 0]),
        # non-finite scores count as the lowest
        (["a", "b", "c"], [2.0, math.nan, -math.inf], [10, 0, 0]),
        (["only"], [-5.0], [10]),
        ([], [], []),
    ],
)
def test_extender_scores(names: list[str], raw: list[float], expected: list[int]) -> None:
    scores, top = to_extender_scores(names, raw)
    assert scores == expected
    if names:
        assert scores[top] == 10 and scores.count(10) == 1


def test_scores_are_rank_preserving() -> None:
    raw = [((i * 7919) % 101) / 7.0 for i in range(200)]
    names = [f"n{i:03d}" for i in range(200)]
    scores, _ = to_extender_scores(names, raw)
    order = rank(names, raw)
    ranked_scores = [scores[i] for i in order]
    assert ranked_scores == sorted(ranked_scores, reverse=True)
    assert all(0 <= s <= 10 for s in scores)


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 scores for 3 candidates"):
        to_extender_scores(["a", "b", "c"], [1.0, 2.0])


def test_filter_budget_reasons() -> None:
    snap = fleet(nodes=6, sites=3, hop_ms=10.0)  # site-0 -10- site-1 -10- site-2
    task = TaskSpec(250, 128, data_source_site="site-0", latency_budget_ms=15.0)
    names = [n.name for n in snap.nodes] + ["ghost"]
    out = filter_candidates(snap, task, names)
    # site-0 nodes: 0.5 ms intra; site-1: 10 ms; site-2: 20 ms > 15
    assert out.passed == ["node-0000", "node-0001", "node-0003", "node-0004"]
    assert out.unresolvable == {
        "node-0002": "20 ms from site-0 exceeds budget 15 ms",
        "node-0005": "20 ms from site-0 exceeds budget 15 ms",
    }
    assert set(out.failed) == {"ghost"}
    assert "unknown to the edge-allocator cache" in out.failed["ghost"]


def test_filter_budget_is_latency_not_transfer_and_source_node_is_free() -> None:
    snap = fleet(nodes=3, sites=3, hop_ms=1.0)
    # 10 MB over the 100 Mbps site-0/site-1 link would take 800 ms: not part of the budget
    task = TaskSpec(
        100,
        64,
        data_source_site="site-0",
        data_source_node="node-0000",
        input_mb=10.0,
        latency_budget_ms=1.5,
    )
    out = filter_candidates(snap, task, ["node-0000", "node-0001", "node-0002"])
    assert out.passed == ["node-0000", "node-0001"]  # 0 ms (the source) and 1 ms
    assert out.unresolvable == {"node-0002": "2 ms from site-0 exceeds budget 1.5 ms"}


def test_filter_without_task_only_checks_cache() -> None:
    snap = fleet(nodes=2)
    out = filter_candidates(snap, None, ["node-0000", "node-0001", "gone"])
    assert out.passed == ["node-0000", "node-0001"]
    assert list(out.failed) == ["gone"]


def test_filter_explains_unreachable_sites() -> None:
    snap = fleet(nodes=2, sites=2)
    lonely = ClusterSnapshot(snap.nodes, snap.sites, (), taken_at=1.0, revision=1)
    task = TaskSpec(100, 64, data_source_site="site-0", latency_budget_ms=50.0)
    out = filter_candidates(lonely, task, ["node-0000", "node-0001"])
    assert out.passed == ["node-0000"]
    assert out.unresolvable == {
        "node-0001": "no network path from site-0 to site-1 (no EdgeNetwork link joins them)"
    }
