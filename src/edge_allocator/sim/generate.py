"""Turn a scenario and a seed into concrete sites, links, nodes, tasks and failures.

Every random stream has its own generator derived from (seed, stream name), so the task
sequence, the failures and the background load are identical for every policy run on the same
seed (common random numbers), whatever the policy does.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_allocator.cluster.snapshot import Link, NodeState, Site
from edge_allocator.sim.scenario import (
    ALLOCATABLE_CPU,
    ALLOCATABLE_MEM,
    Arrivals,
    BurstyArrivals,
    DiurnalArrivals,
    NodeClass,
    OutageRate,
    Scenario,
    ScenarioError,
    SiteOverride,
    Sources,
    Topology,
)


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per (seed, stream)."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


@dataclass(frozen=True)
class Cluster:
    sites: tuple[Site, ...]
    links: tuple[Link, ...]
    nodes: tuple[NodeState, ...]  # all idle and ready
    edge_nodes: tuple[int, ...]  # indices of nodes outside the hub
    cpu_speed: tuple[float, ...] = ()  # per node; empty when every node runs at 1.0

    def speed(self, i: int) -> float:
        return self.cpu_speed[i] if self.cpu_speed else 1.0


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
    output_mb: np.ndarray = field(default_factory=lambda: np.zeros(0))  # result sent back

    def __post_init__(self) -> None:
        if self.output_mb.shape[0] == 0:  # built without results: none to send
            object.__setattr__(self, "output_mb", np.zeros(len(self)))
        elif self.output_mb.shape[0] != len(self):
            raise ValueError(f"output_mb: {self.output_mb.shape[0]} values for {len(self)} tasks")

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


def _uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _log_uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    if r[1] <= r[0]:
        return float(r[0])
    return float(math.exp(rng.uniform(math.log(r[0]), math.log(r[1]))))


def _shares(w: np.ndarray) -> np.ndarray:
    """Weights as probabilities, ``w / w.sum()``; weights so large that their sum overflows
    are scaled down first (finite sums, every scenario before, are divided as they were)."""
    with np.errstate(over="ignore"):
        total = w.sum()
    if not np.isfinite(total):
        w = w / w.max()
        total = w.sum()
    shares: np.ndarray = w / total
    return shares


def _pick_class(
    rng: np.random.Generator, classes: list[NodeClass], weights: list[float]
) -> NodeClass:
    w = np.array(weights, dtype=float)
    return classes[int(rng.choice(len(classes), p=_shares(w)))]


def _split(total: int, parts: int) -> list[int]:
    """``total`` spread evenly over ``parts`` (the first ones get the remainder)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _overrides(
    scenario: Scenario, names: Sequence[str], edge_names: Sequence[str]
) -> dict[str, SiteOverride]:
    """Each site override by the name of the site it applies to (an edge-site index is a
    position in ``edge_names``); overrides for sites this instance lacks are dropped."""
    out: dict[str, SiteOverride] = {}
    known = set(names)
    for ov in scenario.sites:
        if isinstance(ov.site, int):
            if ov.site < len(edge_names):
                out[edge_names[ov.site]] = ov
        elif ov.site in known:
            out[ov.site] = ov
    return out


def site_overrides(scenario: Scenario, cluster: Cluster) -> dict[int, SiteOverride]:
    """The scenario's site overrides by index into ``cluster.sites``."""
    if not scenario.sites:
        return {}
    names = [s.name for s in cluster.sites]
    edge_sites = {cluster.nodes[i].site for i in cluster.edge_nodes}
    by_name = _overrides(scenario, names, [n for n in names if n in edge_sites])
    return {k: by_name[n] for k, n in enumerate(names) if n in by_name}


def _hub_names(count: int) -> list[str]:
    return ["hub", *(f"hub-{h}" for h in range(1, count))] if count else []


def _generated_links(
    topo: Topology, rng: np.random.Generator, hub_names: list[str], edge_names: list[str]
) -> list[Link]:
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

    def hub_link(a: str, b: str) -> None:
        links.append(
            Link(
                a, b, _uniform(rng, topo.hub_latency_ms), _log_uniform(rng, topo.hub_bandwidth_mbps)
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
    for h, hub in enumerate(hub_names):
        # each hub reaches the edge through a few gateway sites of its own
        first = h * k // len(hub_names)
        many = min(k, max(1, k // 8))
        gateways = {first} | {int(x) for x in rng.choice(k, size=many, replace=False)}
        for g in sorted(gateways):
            hub_link(hub, edge_names[g])
    for h, a in enumerate(hub_names):  # several hubs: a full backbone between them
        for b in hub_names[h + 1 :]:
            hub_link(a, b)
    return links


def _explicit_links(topo: Topology, rng: np.random.Generator) -> list[Link]:
    return [
        Link(
            lk.a,
            lk.b,
            _uniform(rng, lk.latency_ms or topo.link_latency_ms),
            _log_uniform(rng, lk.bandwidth_mbps or topo.link_bandwidth_mbps),
        )
        for lk in topo.links or ()
    ]


def build_cluster(scenario: Scenario, seed: int) -> Cluster:
    """Sites, links and idle nodes: a generated shape (``topology.shape``, one or more hubs)
    or the explicit ``topology.links``, with each site's node-class mix from its override."""
    topo = scenario.topology
    rng = rng_for(seed, "topology")
    edge_classes = [c for c in topo.node_classes if c.at in ("edge", "any")]
    hub_classes = [c for c in topo.node_classes if c.at in ("hub", "any")]
    edge_total = topo.nodes - topo.hub_nodes
    if topo.links is not None:
        hub_names = list(topo.hub_sites or ())
        edge_names = topo.edge_link_sites()
        if edge_total < len(edge_names):
            raise ScenarioError(
                f"topology.nodes: {edge_total} edge nodes cannot fill {len(edge_names)} sites"
            )
        site_sizes = _split(edge_total, len(edge_names))
        links = _explicit_links(topo, rng)
    else:
        site_sizes = []
        remaining = edge_total
        lo, hi = topo.nodes_per_site
        while remaining > 0:
            size = min(int(rng.integers(lo, hi + 1)), remaining)
            site_sizes.append(size)
            remaining -= size
        hub_names = _hub_names(min(topo.hubs, topo.hub_nodes))
        edge_names = [f"site-{i:03d}" for i in range(len(site_sizes))]
        links = _generated_links(topo, rng, hub_names, edge_names)
    hub_sizes = _split(topo.hub_nodes, len(hub_names)) if hub_names else []
    names = hub_names + edge_names
    sites = tuple(Site(n, topo.intra_latency_ms, topo.intra_bandwidth_mbps) for n in names)
    overrides = _overrides(scenario, names, edge_names)

    nodes: list[NodeState] = []
    speed: list[float] = []
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
        speed.append(cls.cpu_speed)
        if edge:
            edge_idx.append(i)

    def populate(site: str, size: int, classes: list[NodeClass], edge: bool) -> None:
        mix = overrides[site].node_classes if site in overrides else None
        weights = [c.weight if mix is None else mix.get(c.name, 0.0) for c in classes]
        for _ in range(size):
            add(site, _pick_class(rng, classes, weights), edge)

    for name, size in zip(hub_names, hub_sizes, strict=True):
        populate(name, size, hub_classes, edge=False)
    for name, size in zip(edge_names, site_sizes, strict=True):
        populate(name, size, edge_classes, edge=True)
    uniform = all(v == 1.0 for v in speed)
    return Cluster(
        sites, tuple(links), tuple(nodes), tuple(edge_idx), () if uniform else tuple(speed)
    )


def _arrival_times(arr: Arrivals, rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
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


def _merged_arrivals(
    scenario: Scenario, share: np.ndarray, rate: float, cls: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times and classes when some classes have their own process: each such class
    draws its tasks at its share of the rate from its own stream, the others share the
    workload's process (and stream); the sequences are merged in time order."""
    classes = scenario.workload.task_classes
    own = [j for j, c in enumerate(classes) if c.arrivals is not None]
    shared = ~np.isin(cls, own)
    times: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    k = int(shared.sum())
    if k:
        others = [j for j in range(len(classes)) if j not in own]
        r = rate * float(share[others].sum())
        times.append(_arrival_times(scenario.workload.arrivals, r, k, rng_for(seed, "arrivals")))
        labels.append(cls[shared])  # the iid class sequence, in order
    for j in own:
        k = int((cls == j).sum())
        if k:
            arr = classes[j].arrivals
            assert arr is not None
            rng = rng_for(seed, f"arrivals:{j}")
            times.append(_arrival_times(arr, rate * float(share[j]), k, rng))
            labels.append(np.full(k, j))
    t = np.concatenate(times)
    order = np.argsort(t, kind="stable")
    return t[order], np.concatenate(labels)[order]


def _sources(
    spec: Sources,
    cluster: Cluster,
    n: int,
    rng: np.random.Generator,
    weight: np.ndarray | None = None,
    field: str = "workload.sources",
) -> np.ndarray:
    """Source nodes of ``n`` tasks; ``weight`` (per node, from the sites' ``source_weight``)
    scales each node's chance, a node of weight 0 is never a source. ``field`` names
    ``spec`` in the error when no node may be one."""
    pool = np.array(cluster.edge_nodes if spec.edge_only else range(len(cluster.nodes)))
    if weight is not None:
        pool = pool[weight[pool] > 0]
        if not len(pool):
            which = "edge site (edge_only: true)" if spec.edge_only else "site"
            raise ScenarioError(
                f"{field}: every {which} has sites.*.source_weight 0, so no node can be "
                "the data source of its tasks"
            )
    m = len(pool)
    order = rng.permutation(pool)
    with np.errstate(over="ignore"):  # a huge zipf_s: the ranks after the first get 0
        rank = np.arange(1, m + 1, dtype=float) ** spec.zipf_s
    if weight is None:
        if spec.distribution == "zipf":
            w = 1.0 / rank
            return np.asarray(order[rng.choice(m, size=n, p=_shares(w))])
        if spec.distribution == "hotspot":
            hot = order[: max(1, round(spec.hot_fraction * m))]
            pick_hot = rng.random(n) < spec.hot_share
            hot_node = hot[rng.integers(0, len(hot), n)]
            return np.where(pick_hot, hot_node, order[rng.integers(0, m, n)])
        return np.asarray(order[rng.integers(0, m, n)])
    wo = weight[order]

    def pick(among: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
        return np.asarray(among[rng.choice(len(among), size=k, p=_shares(w))])

    if spec.distribution == "zipf":
        return pick(order, wo / rank, n)
    if spec.distribution == "hotspot":
        h = max(1, round(spec.hot_fraction * m))
        pick_hot = rng.random(n) < spec.hot_share
        return np.where(pick_hot, pick(order[:h], wo[:h], n), pick(order, wo, n))
    return pick(order, wo, n)


def source_weights(scenario: Scenario, cluster: Cluster) -> np.ndarray | None:
    """Per node, its site's ``source_weight`` (1 without one); None when no site sets it."""
    by_site = {
        cluster.sites[k].name: ov.source_weight
        for k, ov in site_overrides(scenario, cluster).items()
        if ov.source_weight is not None
    }
    if not by_site:
        return None
    return np.array([by_site.get(nd.site, 1.0) for nd in cluster.nodes], dtype=float)


def arrival_rate(scenario: Scenario, cluster: Cluster) -> float:
    """Mean task arrivals per second: the offered load (``workload.load``, task CPU-seconds
    per second over the cluster's allocatable cores) over the mean work of a task."""
    classes = scenario.workload.task_classes
    w = _shares(np.array([c.weight for c in classes], dtype=float))
    mean_work = float(sum(p * c.work_cpu_s for p, c in zip(w, classes, strict=True)))
    cores = sum(nd.cpu_allocatable_m for nd in cluster.nodes) / 1000.0
    return scenario.workload.load * cores / mean_work


def build_tasks(scenario: Scenario, cluster: Cluster, seed: int) -> Tasks:
    """The task sequence. Classes are drawn iid by weight; a class with its own arrivals or
    sources gets them from streams of its own, so the other classes are unchanged."""
    wl = scenario.workload
    rng = rng_for(seed, "tasks")
    n = wl.tasks
    classes = wl.task_classes
    w = _shares(np.array([c.weight for c in classes], dtype=float))
    cls = rng.choice(len(classes), size=n, p=w)
    rate = arrival_rate(scenario, cluster)
    if any(c.arrivals is not None for c in classes):
        arrival, cls = _merged_arrivals(scenario, w, rate, cls, seed)
    else:
        arrival = _arrival_times(wl.arrivals, rate, n, rng_for(seed, "arrivals"))
    cpu = np.empty(n, dtype=np.int64)
    mem = np.empty(n, dtype=np.int64)
    work = np.empty(n)
    inp = np.empty(n)
    out = np.zeros(n)
    budget = np.full(n, np.nan)
    deadline = np.full(n, np.nan)
    out_rng = rng_for(seed, "outputs")
    for j, c in enumerate(classes):
        sel = cls == j
        k = int(sel.sum())
        cpu[sel] = np.round(rng.uniform(c.cpu_request_m[0], c.cpu_request_m[1], k) / 50) * 50
        mem[sel] = rng.integers(c.mem_request_mib[0], c.mem_request_mib[1] + 1, k)
        work[sel] = rng.exponential(c.work_cpu_s, k) + 0.01
        inp[sel] = rng.uniform(c.input_mb[0], c.input_mb[1], k)
        if c.output_mb[1] > 0:
            out[sel] = out_rng.uniform(c.output_mb[0], c.output_mb[1], k)
        if c.latency_budget_ms is not None:
            budget[sel] = c.latency_budget_ms
        if c.deadline_s is not None:
            deadline[sel] = c.deadline_s
    cpu = np.maximum(cpu, 50)
    weight = source_weights(scenario, cluster)
    src = _sources(wl.sources, cluster, n, rng_for(seed, "sources"), weight)
    for j, c in enumerate(classes):
        if c.sources is not None and (sel := cls == j).any():
            rng_j = rng_for(seed, f"sources:{j}")
            where = f"workload.task_classes.{j}.sources"
            src[sel] = _sources(c.sources, cluster, int(sel.sum()), rng_j, weight, where)
    return Tasks(arrival, cpu, mem, work, inp, src, budget, deadline, cls, out)


def _outages(
    rng: np.random.Generator, per_hour: Sequence[float], mean_down_s: float, horizon_s: float
) -> list[tuple[float, int, float]]:
    """(time, element, downtime) for elements failing at ``per_hour[element]``: up times
    exponential at that rate, downtimes exponential with mean ``mean_down_s``."""
    out: list[tuple[float, int, float]] = []
    for i, rate in enumerate(per_hour):
        if rate <= 0:
            continue
        t = 0.0
        while True:
            t += float(rng.exponential(3600.0 / rate))
            if t >= horizon_s:
                break
            down = float(rng.exponential(mean_down_s))
            out.append((t, i, down))
            t += down
    out.sort()
    return out


def build_failures(
    scenario: Scenario, cluster: Cluster, seed: int, horizon_s: float
) -> list[tuple[float, int, float]]:
    """(time, node index, downtime) for every node failure within the horizon, time-ordered;
    a site's ``node_mtbf_s`` replaces the scenario's MTBF for its nodes."""
    spec = scenario.dynamics.failures
    if spec is None or spec.mttr_s is None:
        return []
    mtbf: dict[str, float] = {
        cluster.sites[k].name: ov.node_mtbf_s
        for k, ov in site_overrides(scenario, cluster).items()
        if ov.node_mtbf_s is not None
    }
    rng = rng_for(seed, "failures")
    out: list[tuple[float, int, float]] = []
    for i, nd in enumerate(cluster.nodes):
        node_mtbf = mtbf.get(nd.site, spec.mtbf_s)
        if node_mtbf is None:
            continue
        t = 0.0
        while True:
            t += float(rng.exponential(node_mtbf))
            if t >= horizon_s:
                break
            down = float(rng.exponential(spec.mttr_s))
            out.append((t, i, down))
            t += down
    out.sort()
    return out


def build_link_failures(
    scenario: Scenario, cluster: Cluster, seed: int, horizon_s: float
) -> list[tuple[float, int, float]]:
    """(time, link index, downtime) for every link failure within the horizon."""
    spec = scenario.dynamics.failures
    rate: OutageRate | None = spec.links if spec is not None else None
    if rate is None:
        return []
    per_hour = [rate.rate_per_hour] * len(cluster.links)
    return _outages(rng_for(seed, "link-failures"), per_hour, rate.mean_down_s, horizon_s)


def build_site_failures(
    scenario: Scenario, cluster: Cluster, seed: int, horizon_s: float
) -> list[tuple[float, int, float]]:
    """(time, site index, downtime) for every whole-site failure within the horizon; a
    site's ``site_failures_per_hour`` replaces the scenario's rate for it."""
    spec = scenario.dynamics.failures
    rate: OutageRate | None = spec.sites if spec is not None else None
    if rate is None:
        return []
    ov = site_overrides(scenario, cluster)
    per_hour = [
        r if k in ov and (r := ov[k].site_failures_per_hour) is not None else rate.rate_per_hour
        for k in range(len(cluster.sites))
    ]
    return _outages(rng_for(seed, "site-failures"), per_hour, rate.mean_down_s, horizon_s)
