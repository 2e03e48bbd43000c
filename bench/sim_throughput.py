"""Simulator throughput: placement decisions per second inside the simulator, one core.

Usage: python bench/sim_throughput.py [--nodes 100 1000] [--tasks 20000] [--gnn-tasks 1500]
           [--repeats 3] [--policies kube-default est-completion gnn] [--profile N]

Prints decisions per CPU-second per (scenario size, policy), measured in this run: the
placement decisions a run made over the whole run's time (events, background ticks, metrics,
candidate filtering, snapshots and the policy's scoring), the median of ``--repeats`` runs
with their range (a single run of a few thousand decisions lasts a fifth of a second and
moved by up to a quarter between repeats), and the median by wall clock (the CPU figure holds up
better on a machine other work shares). ``gnn`` is the shipped model (``models/SHIPPED``
through the policy registry), scored in the simulator as in evaluation. Targets at 1,000
nodes: heuristics >= 20,000 decisions/s, gnn >= 500. Each policy first runs once on a small
cluster, untimed: the compiled kernels (numba) load or compile once per process, as a model
loads once, and are not what a decision costs. ``--profile N`` prints the top N functions of
a cProfile over each policy's runs (slower; for hot spots, not numbers)."""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from typing import NamedTuple

os.environ.setdefault("OMP_NUM_THREADS", "1")
# numpy is loaded before edge_allocator here: hold OpenBLAS to one thread as the package does
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch

from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import PolicyChooser, Simulator
from edge_allocator.sim.scenario import Scenario, load_scenario


class Run(NamedTuple):
    decisions: int
    wall_s: float
    cpu_s: float


def timed_run(sc: Scenario, name: str, seed: int, prof: cProfile.Profile | None) -> Run:
    """One run of policy ``name`` on ``sc``: decisions, wall and CPU seconds."""
    sim = Simulator(sc, seed=seed)
    chooser = PolicyChooser(get_policy(name))
    t0, c0 = time.perf_counter(), time.process_time()
    if prof is not None:
        prof.enable()
    res = sim.run(chooser)
    if prof is not None:
        prof.disable()
    return Run(res.decisions, time.perf_counter() - t0, time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", default="bursty-mixed")
    ap.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--tasks", type=int, default=20000, help="tasks per heuristic run")
    ap.add_argument("--gnn-tasks", type=int, default=1500, help="tasks per gnn run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per (size, policy)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--policies",
        nargs="+",
        default=["kube-default", "est-completion", "trimaran-tlp", "round-robin", "gnn"],
    )
    ap.add_argument("--profile", type=int, default=0, metavar="N")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats: at least 1")
    torch.set_num_threads(1)
    base = load_scenario(args.scenario)
    print(
        f"{'scenario':<22} {'policy':<15} {'decisions':>9} {'cpu s':>7} "
        f"{'per cpu-s (median)':>19} {'range':>15} {'per wall-s':>11}"
    )
    for nodes in args.nodes:
        for name in args.policies:
            tasks = args.gnn_tasks if name == "gnn" else args.tasks
            sc = base.resized(nodes, tasks)
            timed_run(base.resized(20, 50), name, args.seed, None)  # warm-up, untimed
            prof = cProfile.Profile() if args.profile else None
            runs = [timed_run(sc, name, args.seed, prof) for _ in range(args.repeats)]
            runs.sort(key=lambda r: r.decisions / r.cpu_s)
            per_cpu = [r.decisions / r.cpu_s for r in runs]
            mid = runs[len(runs) // 2]  # the median run (of an odd count)
            print(
                f"{sc.name:<22} {name:<15} {mid.decisions:>9} {mid.cpu_s:>7.2f} "
                f"{statistics.median(per_cpu):>19.0f} "
                f"{f'{per_cpu[0]:.0f}-{per_cpu[-1]:.0f}':>15} "
                f"{statistics.median(r.decisions / r.wall_s for r in runs):>11.0f}",
                flush=True,
            )
            if prof is not None:
                pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
