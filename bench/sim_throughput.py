"""Simulator throughput: placement decisions per second with heuristic policies, one core.

Usage: python bench/sim_throughput.py [--nodes 20 50 200 1000] [--tasks 3000]
Prints decisions/s per (scenario size, policy), measured in this run.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import PolicyChooser, Simulator
from edge_allocator.sim.scenario import load_scenario


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", default="bursty-mixed")
    ap.add_argument("--nodes", type=int, nargs="+", default=[20, 50, 200, 1000])
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument(
        "--policies",
        nargs="+",
        default=["kube-default", "trimaran-tlp", "est-completion", "round-robin"],
    )
    args = ap.parse_args()
    base = load_scenario(args.scenario)
    print(f"{'scenario':<22} {'policy':<15} {'decisions':>9} {'wall s':>7} {'decisions/s':>12}")
    for nodes in args.nodes:
        sc = base.resized(nodes, args.tasks)
        for name in args.policies:
            sim = Simulator(sc, seed=1)
            t0 = time.perf_counter()
            res = sim.run(PolicyChooser(get_policy(name)))
            wall = time.perf_counter() - t0
            print(
                f"{sc.name:<22} {name:<15} {res.decisions:>9} {wall:>7.2f} "
                f"{res.decisions / wall:>12.0f}"
            )


if __name__ == "__main__":
    main()
