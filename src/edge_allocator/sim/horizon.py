"""How long a run must last, and how many tasks make it last that long.

A scenario's offered load fixes the arrival rate (tasks per second grow with the cluster's
cores), so a fixed task count is a shorter and shorter stretch of simulated time as the
cluster grows: 2,000 tasks are about 2 s at 1,000 nodes, before the first metrics sample or
background tick. A run only says something about a policy under the scenario's dynamics when
it lasts at least

    ``required_horizon_s = max(10 * metrics interval, drift period)``

* ten metric publications (``dynamics.metrics.interval_s``), so that the policies work from
  stale usage samples as in a cluster, not from the idle start;
* the *drift period*: the slowest change the scenario drives, the longest of the background
  load's relaxation time (``background.tick_s / background.reversion``: the Ornstein-Uhlenbeck
  drift forgets its start over that time) and the period of each arrival process (a diurnal
  ``period_s``, a bursty ``cycle_s``; the workload's and every class's own).

:func:`horizon_tasks` sizes the task count to cover ``HORIZON_MARGIN`` times that at the
*sustained peak* arrival rate of the fastest of the given seeds' clusters, so the load stays
what the scenario says and only the number of tasks grows. The mean rate is ``load * cores /
mean work`` (:func:`~edge_allocator.sim.generate.arrival_rate`); the sustained peak is the
mean for Poisson and diurnal arrivals (the horizon spans a whole diurnal period, over which the
mean holds) and ``burst_factor`` times it for bursty ones (the on/off phases are exponential,
so one long burst can take up most of a horizon of a cycle or two: sized at the burst rate, the
tasks last the horizon even then). The margin covers the rest of the randomness (Poisson
counts, a diurnal peak at the start). A unit test checks the generated arrival times of every
shipped held-out family at 10, 100 and 1,000 nodes against the rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edge_allocator.sim.generate import arrival_rate, build_cluster
from edge_allocator.sim.scenario import Arrivals, BurstyArrivals, DiurnalArrivals, Scenario

METRIC_INTERVALS = 10
"""Metric publications a run must span."""

HORIZON_MARGIN = 1.25
"""Tasks for this many times the required horizon at the mean rate (arrivals are random)."""

REFERENCE_SEEDS = (1, 2, 3, 4, 5)
"""The seeds whose clusters size a case (the evaluation's default seeds)."""


def _peak_factor(arrivals: Arrivals | None) -> float:
    return arrivals.burst_factor if isinstance(arrivals, BurstyArrivals) else 1.0


def peak_factor(scenario: Scenario) -> float:
    """Sustained peak over mean arrival rate: the largest burst factor of the workload's and
    the classes' own arrival processes (1 without bursty arrivals)."""
    factors = [_peak_factor(scenario.workload.arrivals)]
    factors += [_peak_factor(c.arrivals) for c in scenario.workload.task_classes]
    return max(factors)


def _period_s(arrivals: Arrivals | None) -> float:
    if isinstance(arrivals, DiurnalArrivals):
        return arrivals.period_s
    if isinstance(arrivals, BurstyArrivals):
        return arrivals.cycle_s
    return 0.0


def drift_period_s(scenario: Scenario) -> float:
    """The scenario's slowest drift: background relaxation time or arrival period."""
    bg = scenario.dynamics.background
    periods = [bg.tick_s / bg.reversion, _period_s(scenario.workload.arrivals)]
    periods += [_period_s(c.arrivals) for c in scenario.workload.task_classes]
    return max(periods)


def required_horizon_s(scenario: Scenario) -> float:
    """The simulated time a run must cover: ``max(10 * metrics interval, drift period)``."""
    return max(METRIC_INTERVALS * scenario.dynamics.metrics.interval_s, drift_period_s(scenario))


def max_arrival_rate(scenario: Scenario, seeds: Iterable[int] = REFERENCE_SEEDS) -> float:
    """The highest mean arrival rate (tasks/s) over the clusters of ``seeds``."""
    return max(arrival_rate(scenario, build_cluster(scenario, s)) for s in seeds)


def horizon_tasks(
    scenario: Scenario,
    seeds: Iterable[int] = REFERENCE_SEEDS,
    margin: float = HORIZON_MARGIN,
    minimum: int = 0,
) -> int:
    """Tasks for ``margin`` times :func:`required_horizon_s` at the sustained peak arrival
    rate (:func:`peak_factor` times the highest mean rate of ``seeds``' clusters), at least
    ``minimum``. ``scenario`` at its own size."""
    rate = peak_factor(scenario) * max_arrival_rate(scenario, seeds)
    return max(math.ceil(margin * required_horizon_s(scenario) * rate), minimum)
