"""Every evaluation case lasts long enough: at least ten metric publications and a full
drift period of simulated time, ``max(10 * metrics interval, drift period)``, at every size.

Checked without running any case: from the arrival rate the case's clusters give (for every
shipped held-out family at 10, 100 and 1,000 nodes, and every case of the default matrix),
and from the arrival times the task generator draws for the evaluation's default seeds.
"""

from __future__ import annotations

import pytest

from edge_allocator.sim.generate import arrival_rate, build_cluster, build_tasks
from edge_allocator.sim.horizon import (
    HORIZON_MARGIN,
    REFERENCE_SEEDS,
    drift_period_s,
    peak_factor,
    required_horizon_s,
)
from edge_allocator.sim.scenario import builtin_scenarios, load_scenario, parse_scenario
from edge_allocator.training.evaluate import default_cases, quick_cases, tasks_for

HELDOUT = sorted(n for n in builtin_scenarios() if load_scenario(n).split == "heldout")
SIZES = (10, 100, 1000)


def test_the_shipped_heldout_families_are_the_ones_checked() -> None:
    assert HELDOUT == ["campus", "port-terminal", "rail-corridor", "retail-chain"]


def test_required_horizon_is_ten_metric_intervals_or_the_drift_period() -> None:
    d = load_scenario("campus").model_dump()
    d["dynamics"]["metrics"] = {"interval_s": 30}
    d["workload"]["arrivals"] = {"process": "bursty", "cycle_s": 90}
    d["dynamics"]["background"].update(tick_s=10, reversion=0.2)
    sc = parse_scenario(d)
    assert drift_period_s(sc) == 90  # cycle 90 s > background relaxation 10 / 0.2 = 50 s
    assert required_horizon_s(sc) == 300  # 10 x 30 s
    d["workload"]["task_classes"][0]["arrivals"] = {"process": "diurnal", "period_s": 1200}
    assert required_horizon_s(parse_scenario(d)) == 1200  # a class's own period counts
    d["dynamics"]["metrics"] = {"interval_s": 0}
    d["workload"]["task_classes"][0]["arrivals"] = None
    d["workload"]["arrivals"] = {"process": "poisson"}
    assert required_horizon_s(parse_scenario(d)) == 50  # exact usage: the background drift


@pytest.mark.parametrize("family", HELDOUT)
@pytest.mark.parametrize("nodes", SIZES)
def test_heldout_cases_cover_the_horizon_at_the_peak_rate(family: str, nodes: int) -> None:
    """The case's tasks at the sustained peak rate of every default seed's cluster last the
    required horizon with the margin, so the offered load is the scenario's own."""
    sc = load_scenario(family).resized(nodes)
    tasks = tasks_for(family, nodes)
    need = required_horizon_s(sc)
    assert need >= 10 * sc.dynamics.metrics.interval_s and need >= drift_period_s(sc)
    for seed in REFERENCE_SEEDS:
        resized = sc.resized(nodes, tasks)
        assert resized.workload.load == sc.workload.load
        rate = peak_factor(sc) * arrival_rate(resized, build_cluster(resized, seed))
        assert tasks / rate >= HORIZON_MARGIN * need * (1 - 1e-9)


@pytest.mark.parametrize("family", HELDOUT)
@pytest.mark.parametrize("nodes", SIZES)
def test_heldout_cases_draw_arrivals_past_the_horizon(family: str, nodes: int) -> None:
    """The generated arrival times themselves: the last task arrives after the required
    horizon (so the simulated time, which ends after the last arrival, covers it), for every
    default seed up to 100 nodes and the first one at 1,000 (drawing 0.4-0.7 M tasks)."""
    sc = load_scenario(family).resized(nodes, tasks_for(family, nodes))
    need = required_horizon_s(sc)
    for seed in REFERENCE_SEEDS if nodes <= 100 else REFERENCE_SEEDS[:1]:
        tasks = build_tasks(sc, build_cluster(sc, seed), seed)
        assert tasks.arrival_s[-1] >= need, (family, nodes, seed)


def test_every_default_and_quick_case_covers_the_horizon() -> None:
    for case in [*default_cases(), *quick_cases()]:
        sc = case.scenario()
        rate = max(arrival_rate(sc, build_cluster(sc, s)) for s in REFERENCE_SEEDS)
        expected_s = case.tasks / (peak_factor(sc) * rate)
        assert expected_s >= HORIZON_MARGIN * required_horizon_s(sc) * (1 - 1e-9), case.name
