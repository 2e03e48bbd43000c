"""The evaluation harness: policies x scenario cases x seeds, with paired statistics.

Every policy runs on the same seeded scenario instances (common random numbers), so policies
are compared by paired per-seed differences. Cases carry a split: ``train`` (families the
model was trained on, at training-like and larger sizes), ``heldout`` (families no training or
model-selection step has seen) and ``heldout-large`` (10x the largest training topology); a
user's own scenario files run as ``custom`` cases, as written.

Runs are independent given (case, policy, seed), so :func:`run_matrix` can spread them over
worker processes and still return exactly what one process returns, in the same order.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

import torch

from edge_allocator.policy.base import PlacementPolicy
from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import Simulator, run_policy
from edge_allocator.sim.horizon import horizon_tasks
from edge_allocator.sim.oracle import GreedyOraclePolicy
from edge_allocator.sim.planning import PlanningOraclePolicy
from edge_allocator.sim.scenario import Scenario, ScenarioError, load_scenario
from edge_allocator.training.stats import mean_ci, paired_relative

METRICS = (
    "mean_completion_s",
    "p95_completion_s",
    "slo_violation_rate",
    "mean_network_latency_ms",
    "cpu_imbalance",
    "forced_decision_share",
)
DEPLOYABLE_BASELINES = (
    "kube-default",
    "latency",
    "trimaran-tlp",
    "network-overhead",
    "est-completion",
    "random",
    "round-robin",
)
ORACLE = "greedy-oracle"
PLANNER = "planning-oracle"
REFERENCES = (ORACLE, PLANNER)
"""Policies that read simulator state no scheduler has (only ever run on request, never
counted as the best heuristic)."""
ORACLE_MAX_NODES = 1000
"""The oracles run on cases up to this size (about 1,800 decisions/s at 1,000 nodes)."""
BOUND = "no-contention-bound"
"""Not a policy: each task alone on its best node (Simulator.contention_free_bound_s)."""


TRAIN_FAMILIES = ("factory-floor", "smart-city", "rural", "bursty-mixed", "metro-mesh")
"""Families training and model selection use (metro-mesh, with the fidelity fields, joined for
gnn 3.0.0)."""

HELDOUT_FAMILIES = ("retail-chain", "campus", "port-terminal", "rail-corridor")
"""Families no training or model-selection step sees (port-terminal joined for gnn 2.1.0,
rail-corridor for gnn 3.0.0, each committed before any policy ran on it)."""


@dataclass(frozen=True)
class Case:
    """One scenario instance to evaluate.

    A built-in family resized to ``nodes``/``tasks`` (named ``<family>-<nodes>``); with
    ``path``, that scenario file instead (resized the same way); with ``label`` as well, the
    file exactly as written, named ``label`` (the scenario's own ``name``).
    """

    family: str
    nodes: int
    tasks: int
    split: str
    path: str = ""
    label: str = ""
    max_seeds: int = 0
    """Run only the first ``max_seeds`` of the evaluation's seeds (0: all of them)."""

    def seeds_of(self, seeds: Sequence[int]) -> list[int]:
        """The seeds this case runs."""
        return list(seeds[: self.max_seeds] if self.max_seeds else seeds)

    @property
    def name(self) -> str:
        return self.label or f"{self.family}-{self.nodes}"

    def scenario(self) -> Scenario:
        sc = load_scenario(self.path or self.family)
        return sc if self.label else sc.resized(self.nodes, self.tasks)


def scenario_case(path: str) -> Case:
    """A user's scenario file as one ``custom`` case: its own sizes and its own name
    (:class:`ScenarioError` naming the file and the field when it is not valid)."""
    sc = load_scenario(path)
    return Case(sc.family, sc.topology.nodes, sc.workload.tasks, "custom", path, sc.name)


def check_case(case: Case, seeds: Sequence[int]) -> None:
    """Generate the instance of every seed ``case`` runs, before any run: one that cannot
    be generated (every data-source site at ``source_weight: 0``, fewer nodes than explicit
    edge sites), or in which no task could ever be placed (the mean completion time would
    be undefined), fails as a :class:`ScenarioError` naming the file, the seed and the
    fields, instead of part way through an evaluation."""
    scenario = case.scenario()
    where = case.path or case.family
    for seed in case.seeds_of(seeds):
        try:
            sim = Simulator(scenario, seed)
        except ScenarioError as exc:
            raise ScenarioError(f"{where}: seed {seed}: {exc}") from None
        if not any(sim.placeable(t) for t in range(len(sim.tasks))):
            raise ScenarioError(
                f"{where}: seed {seed}: no task can ever be placed: every task's requests "
                "(workload.task_classes.*.cpu_request_m, mem_request_mib) are above the "
                "allocatable room of every node within its latency budget (latency_budget_ms; "
                "the nodes come from topology.node_classes and sites.*.node_classes)"
            )


MIN_TASKS = 300


@functools.lru_cache(maxsize=256)
def tasks_for(family: str, nodes: int) -> int:
    """Tasks for a case of built-in ``family`` at ``nodes`` nodes: enough for the run to
    last ``max(10 * metrics interval, drift period)`` of simulated time at the family's
    offered load (:func:`edge_allocator.sim.horizon.horizon_tasks`), at least ``MIN_TASKS``.
    The count grows with the cluster (the arrival rate does); the load does not change."""
    return horizon_tasks(load_scenario(family).resized(nodes), minimum=MIN_TASKS)


LARGE_SEEDS = 1
"""Seeds of each 1,000-node case: with real horizons a run there is 0.4-0.7 M decisions
(10-20 CPU-minutes for the GNN alone), so the default matrix runs one seed per case there and
the tables show its single value without an interval."""

LARGE_FAMILIES = ("campus", "port-terminal", "rail-corridor")
"""The held-out families run at 1,000 nodes. Not retail-chain: its diurnal peak (load 0.6 x
1.7 plus background) is above capacity, so over its 600 s horizon (666,000 tasks at 1,000
nodes) queues build, a heuristic places ~600 tasks/s and one seed costs CPU-hours; it is
evaluated at 10-100 nodes."""

TRAIN_SEEDS = 1
"""Seeds of each training-family case: an in-distribution check, not the claim (the held-out
families are), so one seed keeps the whole matrix near two hours of CPU."""


def default_cases() -> list[Case]:
    """Training families at a training-like and a larger size (``TRAIN_SEEDS`` seeds);
    held-out families at three sizes (every seed) and at 1,000 nodes (``LARGE_SEEDS``
    seeds), 10x anything seen in training (80 nodes). Every case lasts the horizon of
    :func:`tasks_for`."""
    cases = [
        Case(f, n, tasks_for(f, n), "train", max_seeds=TRAIN_SEEDS)
        for f in TRAIN_FAMILIES
        for n in (20, 100)
    ]
    cases += [
        Case(f, n, tasks_for(f, n), "heldout") for f in HELDOUT_FAMILIES for n in (10, 40, 100)
    ]
    cases += [
        Case(f, 1000, tasks_for(f, 1000), "heldout-large", max_seeds=LARGE_SEEDS)
        for f in LARGE_FAMILIES
    ]
    return cases


def quick_cases() -> list[Case]:
    """Two small cases, each lasting the horizon of :func:`tasks_for`."""
    return [
        Case("factory-floor", 16, tasks_for("factory-floor", 16), "train"),
        Case("campus", 16, tasks_for("campus", 16), "heldout"),
    ]


def make_policy(name: str) -> PlacementPolicy:
    if name == ORACLE:
        return GreedyOraclePolicy()
    if name == PLANNER:
        return PlanningOraclePolicy()
    return get_policy(name)


@dataclass
class Run:
    case: str
    split: str
    seed: int
    policy: str
    metrics: dict[str, Any]
    wall_s: float


def _run_job(case: Case, seed: int, policy_name: str, work_hidden: bool = False) -> Run:
    """One run: ``policy_name`` on (case, seed), or the contention-free bound (``BOUND``).
    ``work_hidden``: a deployable policy sees tasks without their work, as live pods are (the
    greedy oracle, a reference, still knows it)."""
    scenario = case.scenario()
    if policy_name == BOUND:
        bound = Simulator(scenario, seed).contention_free_bound_s()
        metrics: dict[str, Any] = {m: math.nan for m in METRICS}
        metrics["mean_completion_s"] = bound
        return Run(case.name, case.split, seed, BOUND, metrics, 0.0)
    hide = work_hidden and policy_name not in REFERENCES
    res = run_policy(scenario, seed, make_policy(policy_name), hide_work=hide)
    return Run(case.name, case.split, seed, policy_name, res.summary(), res.wall_s)


def _init_worker(threads: int) -> None:
    """Each worker process uses ``threads`` torch threads (the parent's setting is not
    inherited by a spawned process)."""
    torch.set_num_threads(threads)


_COST = {"gnn": 4.0, ORACLE: 2.0, PLANNER: 2.0, BOUND: 0.1}
"""Relative cost of a run per task, to start the longest runs first (others: 1)."""


def run_matrix(
    policies: Sequence[str],
    cases: Sequence[Case],
    seeds: Sequence[int],
    log: Callable[[str], None] = lambda _: None,
    oracle_max_nodes: int = ORACLE_MAX_NODES,
    skip: set[tuple[str, str, int]] | None = None,
    workers: int = 1,
    threads: int | None = None,
    on_run: Callable[[Run], None] = lambda _: None,
    work_hidden: bool = False,
) -> list[Run]:
    """Run every policy on every case and seed (``skip``: (case, policy, seed) runs already
    done elsewhere), plus the contention-free bound per case and seed.

    Each run is one job; ``on_run`` sees each as it finishes (to keep finished work when a
    long evaluation is stopped). ``workers > 1`` runs the jobs in that many processes
    (spawned, so no process inherits a forked torch thread pool), longest first; every run
    is seeded, so the result is the same list as with one process, apart from the measured
    ``wall_s``. ``threads`` sets torch's thread count in this process and in every worker
    (None: leave it as it is). ``work_hidden``: see :func:`_run_job`.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    done = frozenset(skip or ())
    case_seeds = [c.seeds_of(seeds) for c in cases]
    order = [BOUND, *policies]
    jobs = [
        (ci, seed, p)
        for ci, case in enumerate(cases)
        for seed in case_seeds[ci]
        for p in order
        if (case.name, p, seed) not in done
        and not (p in REFERENCES and case.nodes > oracle_max_nodes)
    ]
    results: dict[tuple[int, int, str], Run] = {}
    left = {ci: 0 for ci in range(len(cases))}
    for ci, _, _ in jobs:
        left[ci] += 1
    started = time.perf_counter()

    def finished(job: tuple[int, int, str], run: Run) -> None:
        results[job] = run
        on_run(run)
        ci = job[0]
        left[ci] -= 1
        if left[ci] == 0:
            case = cases[ci]
            log(
                f"  {case.name} ({case.split}): {len(policies)} policies x "
                f"{len(case_seeds[ci])} seeds "
                f"done at {time.perf_counter() - started:.0f}s"
            )

    if workers <= 1:
        for job in jobs:
            finished(job, _run_job(cases[job[0]], job[1], job[2], work_hidden))
    else:
        ctx = multiprocessing.get_context("spawn")
        init_threads = threads if threads is not None else torch.get_num_threads()
        with ProcessPoolExecutor(
            max_workers=min(workers, len(jobs)) or 1,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(init_threads,),
        ) as pool:
            # longest first, so no long run starts last on its own
            jobs.sort(key=lambda job: -cases[job[0]].tasks * _COST.get(job[2], 1.0))
            futures = {
                pool.submit(_run_job, cases[job[0]], job[1], job[2], work_hidden): job
                for job in jobs
            }
            for fut in as_completed(futures):
                finished(futures[fut], fut.result())
    # the single-process order: per case, every seed's bound, then policy by policy
    runs: list[Run] = []
    for ci in range(len(cases)):
        for p in order:
            runs += [results[(ci, s, p)] for s in case_seeds[ci] if (ci, s, p) in results]
    return runs


def aggregate(runs: Sequence[Run], focus: str = "gnn") -> dict[str, Any]:
    """Per case and policy: mean and 95% CI of every metric, plus paired comparisons."""
    by: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    split_of: dict[str, str] = {}
    for r in runs:
        by.setdefault((r.case, r.policy), {})[r.seed] = r.metrics
        split_of[r.case] = r.split
    cases = list(dict.fromkeys(r.case for r in runs))
    policies = list(dict.fromkeys(r.policy for r in runs))
    rows: list[dict[str, Any]] = []
    paired: list[dict[str, Any]] = []
    for case in cases:
        for p in policies:
            seeds = by.get((case, p))
            if not seeds:
                continue
            row: dict[str, Any] = {
                "case": case,
                "split": split_of[case],
                "policy": p,
                "seeds": len(seeds),
            }
            for m in METRICS:
                # a run from before a metric existed (--reuse of an older file) lacks it
                mean, ci = mean_ci([s.get(m, math.nan) for s in seeds.values()])
                row[m] = {"mean": mean, "ci95": ci}
            rows.append(row)
        deployable = [p for p in policies if p in DEPLOYABLE_BASELINES and (case, p) in by]
        if focus in policies and (case, focus) in by and deployable:
            best = min(
                deployable,
                key=lambda p: mean_ci([s["mean_completion_s"] for s in by[(case, p)].values()])[0],
            )
            for ref in dict.fromkeys([*deployable, best]):
                common = sorted(set(by[(case, focus)]) & set(by[(case, ref)]))
                a = [by[(case, focus)][s]["mean_completion_s"] for s in common]
                b = [by[(case, ref)][s]["mean_completion_s"] for s in common]
                ct, ct_ci = paired_relative(a, b)
                va = [by[(case, focus)][s]["slo_violation_rate"] for s in common]
                vb = [by[(case, ref)][s]["slo_violation_rate"] for s in common]
                dv, dv_ci = mean_ci([x - y for x, y in zip(va, vb, strict=True)])
                paired.append(
                    {
                        "case": case,
                        "split": split_of[case],
                        "policy": focus,
                        "versus": ref,
                        "is_best_heuristic": ref == best,
                        "completion_rel": ct,
                        "completion_rel_ci95": ct_ci,
                        "slo_diff": dv,
                        "slo_diff_ci95": dv_ci,
                    }
                )
    return {"rows": rows, "paired": paired}


def split_summary(agg: dict[str, Any], focus: str = "gnn") -> dict[str, Any]:
    """Per split: the focus policy's mean relative completion vs kube-default and vs the
    per-case best deployable heuristic, the worst case, and SLO comparisons."""
    out: dict[str, Any] = {}
    for split in dict.fromkeys(p["split"] for p in agg["paired"]):
        ps = [p for p in agg["paired"] if p["split"] == split and p["policy"] == focus]
        kube = [p["completion_rel"] for p in ps if p["versus"] == "kube-default"]
        best = [p for p in ps if p["is_best_heuristic"]]
        slo_worse = [
            p["versus"] + "@" + p["case"]
            for p in ps
            if p["versus"] in DEPLOYABLE_BASELINES and p["slo_diff"] > 0
        ]
        out[split] = {
            "cases": len(best),
            "vs_kube_default_mean": sum(kube) / len(kube) if kube else math.nan,
            "vs_best_heuristic_mean": (
                sum(p["completion_rel"] for p in best) / len(best) if best else math.nan
            ),
            "vs_best_heuristic_worst": max((p["completion_rel"] for p in best), default=math.nan),
            "worst_case": max(best, key=lambda p: p["completion_rel"])["case"] if best else "",
            "best_heuristics": {p["case"]: p["versus"] for p in best},
            "slo_higher_than": slo_worse,
        }
    return out


def runs_as_dicts(runs: Sequence[Run]) -> list[dict[str, Any]]:
    return [asdict(r) for r in runs]
