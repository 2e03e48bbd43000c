"""GNN scoring latency at serving time: p50/p99 per request, single thread.

Usage: python bench/policy_inference.py [--model models/gnn-3.0.0.pt] [--nodes 1000]
Measures (1) a request on a snapshot whose embeddings are cached (the same revision); (2) a
request on a new revision where one node changed (the previous pod's placement: its node's
requests grow, feature rows patched, embeddings updated incrementally), as the extender's watch
cache and the simulator produce it, the steady state for a stream of pods; (3) a new revision
where every node changed (e.g. a metrics refresh: a full embedding pass).
Uses the shipped model unless --model is given (an untrained network of the same shape if
none is shipped).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

# numpy is loaded before edge_allocator here: hold OpenBLAS to one thread as the package does
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.policy.gnn import PlacementGNN
from edge_allocator.policy.gnn_policy import GNNPolicy
from edge_allocator.policy.incremental import FULL_PASS_FRACTION
from edge_allocator.policy.model_file import load_model_file
from edge_allocator.policy.registry import shipped_model_path
from edge_allocator.sim.engine import Simulator
from edge_allocator.sim.scenario import load_scenario


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1e3, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = args.model or shipped_model_path()
    policy = load_model_file(path) if path else GNNPolicy(PlacementGNN(), {"version": "untrained"})
    sim = Simulator(load_scenario("smart-city").resized(args.nodes, 10), seed=1)
    sim._reset()
    snap: ClusterSnapshot = sim.snapshot(0.0)
    names = [n.name for n in snap.nodes]
    rng = np.random.default_rng(0)
    tasks = [sim.task_spec(int(i) % len(sim.tasks)) for i in range(len(sim.tasks))]

    def task(i: int) -> TaskSpec:
        return tasks[i % len(tasks)]

    policy.score(snap, task(0), names)  # warm: topology arrays, embeddings
    cached: list[float] = []
    for i in range(args.requests):
        t0 = time.perf_counter()
        policy.score(snap, task(i), names)
        cached.append(time.perf_counter() - t0)

    def placements(full_passes: bool, revision: int) -> list[float]:
        """Each request after one placement; ``full_passes``: without the incremental update."""
        policy.embedder.full_pass_fraction = 0.0 if full_passes else FULL_PASS_FRACTION
        times: list[float] = []
        prev = snap
        for i in range(args.requests):
            t = task(int(rng.integers(0, 1000)))
            at = int(rng.integers(0, len(names)))
            nodes = list(prev.nodes)
            placed = nodes[at]
            nodes[at] = dataclasses.replace(
                placed,
                cpu_requested_m=placed.cpu_requested_m + t.cpu_request_m,
                mem_requested_mib=placed.mem_requested_mib + t.mem_request_mib,
                running_tasks=placed.running_tasks + 1,
            )
            s = prev.with_nodes(tuple(nodes), revision=revision + i, taken_at=0.0, changed=[at])
            t0 = time.perf_counter()
            policy.score(s, t, names)
            times.append(time.perf_counter() - t0)
            prev = s
        policy.embedder.full_pass_fraction = FULL_PASS_FRACTION
        return times

    full_each = placements(True, 100_000)
    one_changed = placements(False, 200_000)
    fresh: list[float] = []
    for i in range(max(args.requests // 5, 20)):
        scale = 1.0 + 0.01 * (i + 1)  # every node's load moves: no row equals the last pass
        nodes = tuple(
            dataclasses.replace(nd, cpu_requested_m=int(nd.cpu_requested_m * scale) + 1)
            for nd in snap.nodes
        )
        s = snap.with_nodes(nodes, revision=20_000 + i, taken_at=float(i))
        t0 = time.perf_counter()
        policy.score(s, task(int(rng.integers(0, 1000))), names)
        fresh.append(time.perf_counter() - t0)
    print(
        f"model: {path or 'untrained'} ({policy.version}); {len(names)} candidates, "
        f"{len(snap.sites)} sites, {args.threads} thread(s)"
    )
    print(
        f"cached revision : p50 {_pct(cached, 50):.3f} ms  p99 {_pct(cached, 99):.3f} ms "
        f"(mean {statistics.mean(cached) * 1e3:.3f} ms)"
    )
    print(
        f"one node changed: p50 {_pct(one_changed, 50):.3f} ms  p99 {_pct(one_changed, 99):.3f} ms "
        "(feature rows patched, embeddings updated incrementally)"
    )
    print(
        f"  same, full pass: p50 {_pct(full_each, 50):.3f} ms  p99 {_pct(full_each, 99):.3f} ms "
        "(the embedding recomputed for the whole cluster each time)"
    )
    print(
        f"all nodes new   : p50 {_pct(fresh, 50):.3f} ms  p99 {_pct(fresh, 99):.3f} ms "
        "(features rebuilt, a full embedding pass)"
    )


if __name__ == "__main__":
    main()
