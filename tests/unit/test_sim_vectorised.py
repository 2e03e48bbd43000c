"""The simulator's fast paths give exactly what the reference code gives.

* every baseline's ``score_view`` (vectorised over node indices) equals its ``score`` (a loop
  over names) bit for bit, at every decision of whole runs, with node failures, link failures
  and exact usage, read both from the snapshot's columns (updated incrementally per snapshot)
  and from the simulator's own (:meth:`Simulator.column_view`), which hold the same numbers;
* a run that scores from the simulator's columns is the run that scores from snapshots;
* the vectorised candidate filter equals :meth:`Simulator.candidates` (the rule node by node);
* the per-node requests placed since the last metrics sample, kept incrementally, equal
  their count from the node's tasks at every decision (failures, results sent back);
* the columns of a snapshot that a later one took over are rebuilt, not reused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.policy.baselines.columns import SnapshotView, node_columns
from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import CandidateNames, PolicyChooser, Simulator, first_best
from edge_allocator.sim.scenario import Scenario, load_scenario, parse_scenario

VECTORISED = [
    "kube-default",
    "est-completion",
    "trimaran-tlp",
    "latency",
    "network-overhead",
    "round-robin",
]


def _scenarios() -> list[Scenario]:
    d = load_scenario("bursty-mixed").resized(30, 300).model_dump()
    d["dynamics"]["failures"] = {
        "mtbf_s": 200,
        "mttr_s": 20,
        "links": {"rate_per_hour": 30, "mean_down_s": 30},
    }
    failing = parse_scenario(d)
    e = load_scenario("rural").resized(20, 250).model_dump()
    e["dynamics"]["metrics"] = {"interval_s": 0}  # exact usage: every tick changes nodes
    # shared links: transfers in flight change the bandwidth est-completion reads
    shared = load_scenario("rail-corridor").resized(30, 300)
    assert shared.dynamics.network.sharing == "max-min"
    return [failing, parse_scenario(e), load_scenario("retail-chain").resized(25, 250), shared]


class Checking:
    """Runs the fast path, and checks it against the loop at every decision."""

    def __init__(self, sim: Simulator, name: str) -> None:
        self.sim = sim
        self.policy = get_policy(name)
        self.inner = PolicyChooser(self.policy)
        self.checked = 0

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        assert isinstance(candidates, CandidateNames)
        assert candidates.nodes.tolist() == self.sim.candidates(task_id)
        k = self.inner.choose(snapshot, task, candidates, task_id)
        live = self.sim.column_view(snapshot.taken_at)
        assert live.revision == snapshot.revision
        assert _bits(live.data) == _bits(node_columns(snapshot).data)
        score_view = getattr(self.policy, "score_view")  # noqa: B009
        slow = _bits(np.array(self.policy.score(snapshot, task, list(candidates)), np.float64))
        for view in (SnapshotView(snapshot), live):
            fast = score_view(view, task, candidates.nodes)
            assert fast.dtype == np.float64
            assert _bits(fast) == slow
        assert k == first_best(self.policy.score(snapshot, task, list(candidates)))
        self.checked += 1
        return k


def _bits(a: np.ndarray) -> list[int]:
    """Bit for bit: equal as integers, so -0.0 differs from 0.0 and a nan must be the same
    nan."""
    out: list[int] = np.ascontiguousarray(a, np.float64).view(np.int64).ravel().tolist()
    return out


@pytest.mark.parametrize("name", VECTORISED)
def test_vectorised_scores_equal_the_loop_at_every_decision(name: str) -> None:
    for sc in _scenarios():
        sim = Simulator(sc, seed=5)
        chooser = Checking(sim, name)
        res = sim.run(chooser, name)
        assert chooser.checked == res.decisions > 0


class BySnapshot:
    """A policy's chooser that the simulator must hand snapshots (not a PolicyChooser)."""

    def __init__(self, name: str) -> None:
        self.inner = PolicyChooser(get_policy(name))

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        return self.inner.choose(snapshot, task, candidates, task_id)


@pytest.mark.parametrize("name", VECTORISED)
def test_a_run_from_the_simulators_columns_is_the_run_from_snapshots(name: str) -> None:
    for sc in _scenarios():
        chooser = PolicyChooser(get_policy(name))
        assert chooser.reads_view
        by_view = Simulator(sc, seed=7).run(chooser, name)
        by_snapshot = Simulator(sc, seed=7).run(BySnapshot(name), name)
        assert by_view.decision_tasks == by_snapshot.decision_tasks
        assert by_view.decisions > 0
        for a, b in [
            (by_view.completion_s, by_snapshot.completion_s),
            (by_view.network_ms, by_snapshot.network_ms),
            (by_view.violated, by_snapshot.violated),
        ]:
            assert _bits(a.astype(np.float64)) == _bits(b.astype(np.float64))


class CountingFresh:
    """kube-default, checking the incremental requests-since-sample at every decision."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.inner = PolicyChooser(get_policy("kube-default"))
        self.checked = 0
        self.fresh = 0

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        sim = self.sim
        want = [sim._fresh_req_recount(i) for i in range(len(sim.fresh_req))]
        assert sim.fresh_req == want
        self.fresh += sum(want)
        self.checked += 1
        return self.inner.choose(snapshot, task, candidates, task_id)


def test_requests_since_the_sample_are_counted_incrementally() -> None:
    fidelity = load_scenario("src/edge_allocator/sim/scenarios/examples/fidelity.yaml")
    d = fidelity.resized(40, 600).model_dump()
    d["dynamics"]["failures"]["mtbf_s"] = 300  # node, site and link failures in one run
    d["dynamics"]["failures"]["links"] = {"rate_per_hour": 40, "mean_down_s": 30}
    for sc in [*_scenarios()[:1], parse_scenario(d)]:
        sim = Simulator(sc, seed=2)
        chooser = CountingFresh(sim)
        res = sim.run(chooser, "kube-default")
        assert chooser.checked == res.decisions > 0
        assert chooser.fresh > 0  # the counts were not all zero
        assert res.restarts > 0  # tasks were lost and placed again


def test_first_best_is_the_first_maximum_and_never_nan() -> None:
    assert first_best([1.0, 3.0, 3.0, 2.0]) == 1
    assert first_best(np.array([np.nan, 1.0, 5.0, 5.0])) == 2
    assert first_best([-np.inf, -np.inf]) == 0
    assert first_best([np.nan, np.nan]) == 0
    assert first_best([]) == 0
    assert first_best(np.array([2, 7, 7], dtype=np.int64)) == 1
    rng = np.random.default_rng(0)
    for _ in range(300):  # against the loop it is defined by: ties, nan and infinities
        a = rng.choice([np.nan, -np.inf, np.inf, 0.0, 1.0, 2.5], size=rng.integers(0, 9))
        best, want = -np.inf, 0
        for i, v in enumerate(a.tolist()):
            if v > best:
                best, want = v, i
        assert first_best(a) == want == first_best(a.tolist()), a
        assert first_best(a[::2]) == first_best(a[::2].copy())  # a strided view too


def test_candidate_names_read_like_a_list() -> None:
    names = np.array(["a", "b", "c", "d"], dtype=object)
    c = CandidateNames(np.array([1, 3]), names)
    assert len(c) == 2 and list(c) == ["b", "d"] and c[1] == "d" and c[-1] == "d"
    assert "b" in c and "a" not in c and c.index("d") == 1 and c == ["b", "d"]


def test_stale_columns_are_rebuilt_from_their_own_snapshot() -> None:
    sim = Simulator(load_scenario("campus").resized(12, 50), seed=1)
    sim._reset()
    first = sim.snapshot(0.0)
    before = node_columns(first).data.copy()
    sim.cpu_req[3] += 500
    sim._touch(3)
    second = sim.snapshot(1.0)
    after = node_columns(second)  # takes the first snapshot's array over
    assert after.data[4, 3] == before[4, 3] + 500
    again = node_columns(first)  # stale: rebuilt from the first snapshot's nodes
    assert np.array_equal(again.data, before, equal_nan=True)
    # the rebuild has an array of its own: the second snapshot's columns are still its own
    assert node_columns(second).data[4, 3] == before[4, 3] + 500
