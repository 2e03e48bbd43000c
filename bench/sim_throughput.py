"""Simulator throughput: placement decisions per second inside the simulator, one core.

Usage: python bench/sim_throughput.py [--nodes 100 1000] [--tasks 3000] [--gnn-tasks 1500]
           [--policies kube-default est-completion gnn] [--profile N]

Prints decisions/s per (scenario size, policy), measured in this run: the placement decisions
a run made over the whole run's time (events, background ticks, metrics, candidate filtering,
snapshots and the policy's scoring), by wall clock and by the process's CPU time (the CPU
figure holds up better on a machine other work shares). ``gnn`` is the shipped model
(``models/SHIPPED`` through the policy registry), scored in the simulator as in evaluation.
Targets at 1,000 nodes: heuristics >= 20,000 decisions/s, gnn >= 500. Each policy first
runs once on a small cluster, untimed: the compiled kernels (numba) load or compile once per
process, as a model loads once, and are not what a decision costs. ``--profile N`` prints
the top N functions of a cProfile of each run (slower; for hot spots, not numbers).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
# numpy is loaded before edge_allocator here: hold OpenBLAS to one thread as the package does
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch

from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import PolicyChooser, Simulator
from edge_allocator.sim.scenario import load_scenario


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", default="bursty-mixed")
    ap.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--tasks", type=int, default=3000, help="tasks per heuristic run")
    ap.add_argument("--gnn-tasks", type=int, default=1500, help="tasks per gnn run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--policies",
        nargs="+",
        default=["kube-default", "est-completion", "trimaran-tlp", "round-robin", "gnn"],
    )
    ap.add_argument("--profile", type=int, default=0, metavar="N")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = load_scenario(args.scenario)
    print(
        f"{'scenario':<22} {'policy':<15} {'decisions':>9} {'wall s':>7} {'decisions/s':>12} "
        f"{'cpu s':>7} {'per cpu-s':>10}"
    )
    for nodes in args.nodes:
        for name in args.policies:
            tasks = args.gnn_tasks if name == "gnn" else args.tasks
            sc = base.resized(nodes, tasks)
            policy = get_policy(name)
            Simulator(base.resized(20, 50), seed=args.seed).run(PolicyChooser(policy))  # warm-up
            sim = Simulator(sc, seed=args.seed)
            prof = cProfile.Profile() if args.profile else None
            t0, c0 = time.perf_counter(), time.process_time()
            if prof is not None:
                prof.enable()
            res = sim.run(PolicyChooser(policy))
            if prof is not None:
                prof.disable()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(
                f"{sc.name:<22} {name:<15} {res.decisions:>9} {wall:>7.2f} "
                f"{res.decisions / wall:>12.0f} {cpu:>7.2f} {res.decisions / cpu:>10.0f}",
                flush=True,
            )
            if prof is not None:
                pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
