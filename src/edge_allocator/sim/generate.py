"""Turn a scenario and a seed into concrete sites, links, nodes, tasks and failures.

Every random stream has its own generator derived from (seed, stream name), so the task
sequence, the failures and the background load are identical for every policy run on the same
seed (common random numbers), whatever the policy does.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from edge_allocator.cluster.snapshot import Link, NodeState, Site
from edge_allocator.sim.scenario import (
    BurstyArrivals,
    DiurnalArrivals,
    NodeClass,
    Scenario,
    Sources,
)

ALLOCATABLE_CPU = 0.95
ALLOCATABLE_MEM = 0.92


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per (seed, stream)."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


@dataclass(frozen=True)
class Cluster:
    sites: tuple[Site, ...]
    links: tuple[Link, ...]
    nodes: tuple[NodeState, ...]  # all idle and ready
    edge_nodes: tuple[int, ...]  # indices of nodes outside the hub


@dataclass(frozen=True)
class Tasks:
    """The arrival sequence, as parallel arrays (index = task id)."""

    arrival_s: np.ndarray
    cpu_request_m: np.ndarray
    mem_request_mib: np.ndarray
    work_cpu_s: np.ndarray
    input_mb: np.ndarray
    source_node: np.ndarray
    latency_budget_ms: np.ndarray  # nan when none
    deadline_s: np.ndarray  # nan when none
    task_class: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


def _uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _log_uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    if r[1] <= r[0]:
        return float(r[0])
    return float(math.exp(rng.uniform(math.log(r[0]), math.log(r[1]))))


def _pick_class(rng: np.random.Generator, classes: list[NodeClass]) -> NodeClass:
    w = np.array([c.weight for c in classes], dtype=float)
    return classes[int(rng.choice(len(classes), p=w / w.sum()))]


def build_cluster(scenario: Scenario, seed: int) -> Cluster:
    topo = scenario.topology
    rng = rng_for(seed, "topology")
    edge_classes = [c for c in topo.node_classes if c.at in ("edge", "any")]
    hub_classes = [c for c in topo.node_classes if c.at in ("hub", "any")]
    site_sizes: list[int] = []
    remaining = topo.nodes - topo.hub_nodes
    lo, hi = topo.nodes_per_site
    while remaining > 0:
        size = min(int(rng.integers(lo, hi + 1)), remaining)
        site_sizes.append(size)
        remaining -= size
    has_hub = topo.hub_nodes > 0
    names = (["hub"] if has_hub else []) + [f"site-{i:03d}" for i in range(len(site_sizes))]
    sites = tuple(Site(n, topo.intra_latency_ms) for n in names)
    edge_names = names[1:] if has_hub else names
    links: list[Link] = []

    def link(a: str, b: str) -> None:
        links.append(
            Link(
                a,
                b,
                _uniform(rng, topo.link_latency_ms),
                _log_uniform(rng, topo.link_bandwidth_mbps),
            )
        )

    k = len(edge_names)
    if topo.shape == "star":
        for i in range(1, k):
            link(edge_names[0], edge_names[i])
    elif topo.shape == "tree":
        for i in range(1, k):
            link(edge_names[(i - 1) // topo.tree_fanout], edge_names[i])
    elif topo.shape in ("ring", "line", "mesh"):
        for i in range(1, k):
            link(edge_names[i - 1], edge_names[i])
        if topo.shape in ("ring", "mesh") and k > 2:
            link(edge_names[-1], edge_names[0])
        if topo.shape == "mesh" and k > 3:
            seen = {(lk.a, lk.b) for lk in links} | {(lk.b, lk.a) for lk in links}
            for _ in range(int(topo.mesh_extra_links * k)):
                a, b = (edge_names[int(x)] for x in rng.choice(k, size=2, replace=False))
                if (a, b) not in seen:
                    seen |= {(a, b), (b, a)}
                    link(a, b)
    if has_hub:
        # the hub reaches the edge through a few gateway sites
        gateways = {0} | {int(x) for x in rng.choice(k, size=min(k, max(1, k // 8)), replace=False)}
        for g in sorted(gateways):
            links.append(
                Link(
                    "hub",
                    edge_names[g],
                    _uniform(rng, topo.hub_latency_ms),
                    _log_uniform(rng, topo.hub_bandwidth_mbps),
                )
            )

    nodes: list[NodeState] = []
    edge_idx: list[int] = []

    def add(site: str, cls: NodeClass, edge: bool) -> None:
        i = len(nodes)
        cpu_alloc = int(cls.cpu_m * ALLOCATABLE_CPU)
        mem_alloc = int(cls.mem_mib * ALLOCATABLE_MEM)
        nodes.append(
            NodeState(
                f"{site}-n{i:04d}",
                site,
                cls.name,
                cls.cpu_m,
                cls.mem_mib,
                cpu_alloc,
                mem_alloc,
                cpu_usage_m=0,
                mem_usage_mib=0,
            )
        )
        if edge:
            edge_idx.append(i)

    for _ in range(topo.hub_nodes):
        add("hub", _pick_class(rng, hub_classes), edge=False)
    for name, size in zip(edge_names, site_sizes, strict=True):
        for _ in range(size):
            add(name, _pick_class(rng, edge_classes), edge=True)
    return Cluster(sites, tuple(links), tuple(nodes), tuple(edge_idx))


def _arrival_times(scenario: Scenario, rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    arr = scenario.workload.arrivals
    if isinstance(arr, BurstyArrivals):
        on_s = arr.cycle_s * arr.on_fraction
        off_s = arr.cycle_s - on_s
        rate_on = rate * arr.burst_factor
        rate_off = rate * (1 - arr.burst_factor * arr.on_fraction) / (1 - arr.on_fraction)
        out = np.empty(n)
        t, i = 0.0, 0
        on = bool(rng.random() < arr.on_fraction)
        phase_end = t + rng.exponential(on_s if on else off_s)
        while i < n:
            r = rate_on if on else rate_off
            nxt = t + rng.exponential(1.0 / r)
            if nxt > phase_end:
                t = phase_end
                on = not on
                phase_end = t + rng.exponential(on_s if on else off_s)
                continue
            t = nxt
            out[i] = t
            i += 1
        return out
    if isinstance(arr, DiurnalArrivals):
        peak = rate * (1 + arr.amplitude)
        out = np.empty(n)
        t, i = 0.0, 0
        while i < n:
            t += rng.exponential(1.0 / peak)
            lam = rate * (1 + arr.amplitude * math.sin(2 * math.pi * t / arr.period_s))
            if rng.random() * peak <= lam:
                out[i] = t
                i += 1
        return out
    return np.cumsum(rng.exponential(1.0 / rate, size=n))


def _sources(spec: Sources, cluster: Cluster, n: int, rng: np.random.Generator) -> np.ndarray:
    pool = np.array(cluster.edge_nodes if spec.edge_only else range(len(cluster.nodes)))
    m = len(pool)
    order = rng.permutation(pool)
    if spec.distribution == "zipf":
        w = 1.0 / np.arange(1, m + 1) ** spec.zipf_s
        return np.asarray(order[rng.choice(m, size=n, p=w / w.sum())])
    if spec.distribution == "hotspot":
        hot = order[: max(1, round(spec.hot_fraction * m))]
        pick_hot = rng.random(n) < spec.hot_share
        return np.where(pick_hot, hot[rng.integers(0, len(hot), n)], order[rng.integers(0, m, n)])
    return np.asarray(order[rng.integers(0, m, n)])


def build_tasks(scenario: Scenario, cluster: Cluster, seed: int) -> Tasks:
    wl = scenario.workload
    rng = rng_for(seed, "tasks")
    n = wl.tasks
    classes = wl.task_classes
    w = np.array([c.weight for c in classes], dtype=float)
    w /= w.sum()
    cls = rng.choice(len(classes), size=n, p=w)
    mean_work = float(sum(p * c.work_cpu_s for p, c in zip(w, classes, strict=True)))
    cores = sum(nd.cpu_allocatable_m for nd in cluster.nodes) / 1000.0
    rate = wl.load * cores / mean_work
    arrival = _arrival_times(scenario, rate, n, rng_for(seed, "arrivals"))
    cpu = np.empty(n, dtype=np.int64)
    mem = np.empty(n, dtype=np.int64)
    work = np.empty(n)
    inp = np.empty(n)
    budget = np.full(n, np.nan)
    deadline = np.full(n, np.nan)
    for j, c in enumerate(classes):
        sel = cls == j
        k = int(sel.sum())
        cpu[sel] = np.round(rng.uniform(c.cpu_request_m[0], c.cpu_request_m[1], k) / 50) * 50
        mem[sel] = rng.integers(c.mem_request_mib[0], c.mem_request_mib[1] + 1, k)
        work[sel] = rng.exponential(c.work_cpu_s, k) + 0.01
        inp[sel] = rng.uniform(c.input_mb[0], c.input_mb[1], k)
        if c.latency_budget_ms is not None:
            budget[sel] = c.latency_budget_ms
        if c.deadline_s is not None:
            deadline[sel] = c.deadline_s
    cpu = np.maximum(cpu, 50)
    src = _sources(wl.sources, cluster, n, rng_for(seed, "sources"))
    return Tasks(arrival, cpu, mem, work, inp, src, budget, deadline, cls)


def build_failures(
    scenario: Scenario, cluster: Cluster, seed: int, horizon_s: float
) -> list[tuple[float, int, float]]:
    """(time, node index, downtime) for every failure within the horizon, time-ordered."""
    spec = scenario.dynamics.failures
    if spec is None:
        return []
    rng = rng_for(seed, "failures")
    out: list[tuple[float, int, float]] = []
    for i in range(len(cluster.nodes)):
        t = 0.0
        while True:
            t += float(rng.exponential(spec.mtbf_s))
            if t >= horizon_s:
                break
            down = float(rng.exponential(spec.mttr_s))
            out.append((t, i, down))
            t += down
    out.sort()
    return out
