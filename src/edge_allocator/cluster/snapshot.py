"""ClusterSnapshot: the typed state of an edge cluster at one instant.

The simulator and the extender's watch cache both produce these; policies only ever read them.
Keeping one type (and one feature builder over it) is what lets a test prove that the same
cluster state scores the same in training and in serving.

Units are in the field names: millicores (``_m``), MiB (``_mib``), milliseconds (``_ms``),
megabits per second (``_mbps``), megabytes (``_mb``).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

INCREMENTAL_KEY = "_incremental"
"""Derived-cache entry set by ``with_nodes(changed=...)``: (parent's derived data, changed)."""


@dataclass(frozen=True, slots=True)
class Site:
    """A place where nodes sit together (a factory floor, a street cabinet, a rural mast).

    ``intra_bandwidth_mbps`` is the site's own network between its nodes (``None``: unbounded,
    a transfer inside the site costs its latency only).
    """

    name: str
    intra_latency_ms: float = 0.5
    intra_bandwidth_mbps: float | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """An undirected network link between two sites."""

    a: str
    b: str
    latency_ms: float
    bandwidth_mbps: float


@dataclass(frozen=True, slots=True)
class NodeState:
    """One schedulable node as a scheduler sees it.

    ``cpu_usage_m``/``mem_usage_mib`` are measured usage (metrics.k8s.io or the simulator);
    ``None`` means no fresh measurement, and consumers fall back to requests.
    """

    name: str
    site: str
    node_class: str
    cpu_capacity_m: int
    mem_capacity_mib: int
    cpu_allocatable_m: int
    mem_allocatable_mib: int
    cpu_requested_m: int = 0
    mem_requested_mib: int = 0
    cpu_usage_m: int | None = None
    mem_usage_mib: int | None = None
    running_tasks: int = 0
    ready: bool = True

    @property
    def cpu_used_m(self) -> int:
        """Measured CPU when known, otherwise requested CPU."""
        return self.cpu_usage_m if self.cpu_usage_m is not None else self.cpu_requested_m

    @property
    def mem_used_mib(self) -> int:
        """Measured memory when known, otherwise requested memory."""
        return self.mem_usage_mib if self.mem_usage_mib is not None else self.mem_requested_mib

    def with_pods(self, cpu_m: int, mem_mib: int, pods: int) -> NodeState:
        """This node with pods added (negative: removed) that a usage sample does not show yet:
        their requests count in the requests and, when usage is measured, in the usage."""
        return dataclasses.replace(
            self,
            cpu_requested_m=self.cpu_requested_m + cpu_m,
            mem_requested_mib=self.mem_requested_mib + mem_mib,
            running_tasks=self.running_tasks + pods,
            cpu_usage_m=None if self.cpu_usage_m is None else self.cpu_usage_m + cpu_m,
            mem_usage_mib=None if self.mem_usage_mib is None else self.mem_usage_mib + mem_mib,
        )


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """The task being placed: its requests, where its input comes from, and its budget.

    ``data_source_node`` pins the source to one node (its site is ``data_source_site``).
    ``work_cpu_s`` is the CPU-seconds of work when known (the simulator knows; a live pod
    usually does not).
    """

    cpu_request_m: int
    mem_request_mib: int
    data_source_site: str
    data_source_node: str | None = None
    input_mb: float = 0.0
    work_cpu_s: float | None = None
    latency_budget_ms: float | None = None

    def without_work(self) -> TaskSpec:
        """This task as a live pod presents it: no pod declares its CPU-seconds of work."""
        return dataclasses.replace(self, work_cpu_s=None)


class IndexedNames(list[str]):
    """Node names with their indices (``nodes``, int64) in the snapshots of one node order
    (``order``, :attr:`ClusterSnapshot.node_order`): scoring reads the indices instead of
    looking the names up a second time (a thousand dict lookups per request)."""

    __slots__ = ("nodes", "order")

    nodes: np.ndarray
    order: object


@dataclass(frozen=True)
class ClusterSnapshot:
    """Nodes, sites and links at one instant (``taken_at`` in seconds, any epoch).

    Topology-derived data (site index, all-pairs paths, feature arrays) lives in a cache shared
    by every snapshot made with :meth:`with_nodes`, so a producer that emits one snapshot per
    event (the simulator) pays for Dijkstra once, not per snapshot.
    """

    nodes: tuple[NodeState, ...]
    sites: tuple[Site, ...]
    links: tuple[Link, ...]
    taken_at: float = 0.0
    revision: int = 0
    """Bumped by the producer whenever the state changes; scorers may cache per revision."""
    inflight: tuple[int, ...] = ()
    """Transfers estimated in flight on each link (:meth:`transfer_links` numbering), as
    :class:`~edge_allocator.cluster.inflight.InflightTransfers` counts them; empty: none."""
    _node_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _topology_cache: dict[str, Any] = field(init=False, repr=False, compare=False)
    _derived_cache: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        site_names = {s.name for s in self.sites}
        for n in self.nodes:
            if n.site not in site_names:
                raise ValueError(f"node {n.name!r}: site {n.site!r} is not among the sites")
        for link in self.links:
            for end in (link.a, link.b):
                if end not in site_names:
                    raise ValueError(f"link {link.a}-{link.b}: unknown site {end!r}")
            if link.latency_ms < 0 or link.bandwidth_mbps <= 0:
                raise ValueError(f"link {link.a}-{link.b}: latency must be >= 0 and bandwidth > 0")
        object.__setattr__(self, "_node_index", {n.name: i for i, n in enumerate(self.nodes)})
        object.__setattr__(self, "_topology_cache", {})
        object.__setattr__(self, "_derived_cache", {})

    def with_nodes(
        self,
        nodes: tuple[NodeState, ...],
        *,
        revision: int,
        taken_at: float,
        changed: Iterable[int] | None = None,
        inflight: tuple[int, ...] | None = None,
    ) -> ClusterSnapshot:
        """A snapshot of the same topology with new node states, built in O(1) extra work.

        ``nodes`` must name the same nodes, at the same sites, in the same order as ``self``
        (only their load, readiness and so on may differ); the node index and the topology
        cache are shared rather than rebuilt. ``changed`` (indices of the nodes that differ
        from ``self``) lets per-node derived data be updated instead of rebuilt. ``inflight``
        replaces the transfers in flight (``None``: keep ``self``'s).
        """
        if len(nodes) != len(self.nodes):
            raise ValueError("with_nodes: the node list must keep the same nodes in order")
        new = object.__new__(ClusterSnapshot)
        object.__setattr__(new, "nodes", nodes)
        object.__setattr__(new, "sites", self.sites)
        object.__setattr__(new, "links", self.links)
        object.__setattr__(new, "taken_at", taken_at)
        object.__setattr__(new, "revision", revision)
        object.__setattr__(new, "inflight", self.inflight if inflight is None else inflight)
        object.__setattr__(new, "_node_index", self._node_index)
        object.__setattr__(new, "_topology_cache", self._topology_cache)
        derived: dict[str, Any] = {}
        if changed is not None:
            parent = {k: v for k, v in self._derived_cache.items() if k != INCREMENTAL_KEY}
            derived[INCREMENTAL_KEY] = (parent, tuple(changed))
        object.__setattr__(new, "_derived_cache", derived)
        return new

    @property
    def topology_cache(self) -> dict[str, Any]:
        """Scratch space for data derived from sites, links and node placement only."""
        return self._topology_cache

    @property
    def derived_cache(self) -> dict[str, Any]:
        """Scratch space for data derived from this snapshot's node states."""
        return self._derived_cache

    def node(self, name: str) -> NodeState:
        """The node called ``name`` (KeyError if absent)."""
        return self.nodes[self._node_index[name]]

    def has_node(self, name: str) -> bool:
        return name in self._node_index

    @property
    def node_order(self) -> object:
        """A token shared by exactly the snapshots whose nodes are in the same order (those
        made with :meth:`with_nodes`): node indices from one are valid in the others."""
        return self._node_index

    def indexed(self, names: Sequence[str]) -> IndexedNames | None:
        """``names`` with their node indices here, or None when one is not a node here."""
        try:
            nodes = self.indices_of(names)
        except KeyError:
            return None
        out = IndexedNames(names)
        out.nodes, out.order = nodes, self._node_index
        return out

    def index_of(self, name: str) -> int:
        return self._node_index[name]

    def indices_of(self, names: Sequence[str]) -> np.ndarray:
        """Node indices of ``names`` (int64; KeyError if one is absent), at C speed."""
        return np.fromiter(map(self._node_index.__getitem__, names), np.int64, len(names))

    @property
    def site_index(self) -> dict[str, int]:
        idx: dict[str, int] | None = self._topology_cache.get("site_index")
        if idx is None:
            idx = {s.name: i for i, s in enumerate(self.sites)}
            self._topology_cache["site_index"] = idx
        return idx

    @property
    def _paths(self) -> tuple[list[list[float]], list[list[float]], list[list[tuple[int, ...]]]]:
        paths: tuple[list[list[float]], list[list[float]], list[list[tuple[int, ...]]]] | None = (
            self._topology_cache.get("paths")
        )
        if paths is None:
            paths = self._compute_paths()
            self._topology_cache["paths"] = paths
        return paths

    def _compute_paths(
        self,
    ) -> tuple[list[list[float]], list[list[float]], list[list[tuple[int, ...]]]]:
        """All-pairs shortest latency, the bottleneck bandwidth along that path and its links.

        Dijkstra from every site, ties broken towards the larger bottleneck; sites are few
        (tens to hundreds), so this is cheap and cached. Within one site: the site's intra
        latency and intra bandwidth (unbounded when unset), no links. Unreachable pairs get
        ``inf`` latency, ``0`` bandwidth and no links.
        """
        n = len(self.sites)
        idx = self.site_index
        adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for k, link in enumerate(self.links):
            i, j = idx[link.a], idx[link.b]
            adj[i].append((j, k))
            adj[j].append((i, k))
        links = self.links
        inf = float("inf")
        lat = [[inf] * n for _ in range(n)]
        bw = [[0.0] * n for _ in range(n)]
        via_links: list[list[tuple[int, ...]]] = []
        for src in range(n):
            dist = [inf] * n
            neck = [0.0] * n
            via = [-1] * n  # the link that reaches each site
            prev = [-1] * n
            dist[src], neck[src] = 0.0, inf
            heap: list[tuple[float, int]] = [(0.0, src)]
            while heap:
                d, u = heapq.heappop(heap)
                if d > dist[u]:
                    continue
                for v, k in adj[u]:
                    nd = d + links[k].latency_ms
                    nb = min(neck[u], links[k].bandwidth_mbps)
                    if nd < dist[v] or (nd == dist[v] and nb > neck[v]):
                        dist[v], neck[v], via[v], prev[v] = nd, nb, k, u
                        heapq.heappush(heap, (nd, v))
            row: list[tuple[int, ...]] = []
            for dst in range(n):
                if dst == src:
                    lat[src][dst] = self.sites[src].intra_latency_ms
                    bw[src][dst] = self.sites[src].intra_bandwidth_mbps or inf
                else:
                    lat[src][dst] = dist[dst]
                    bw[src][dst] = neck[dst]
                path: list[int] = []
                v = dst
                while v != src and via[v] >= 0:
                    path.append(via[v])
                    v = prev[v]
                row.append(tuple(reversed(path)) if v == src else ())
            via_links.append(row)
        return lat, bw, via_links

    def site_path_matrices(self) -> tuple[list[list[float]], list[list[float]]]:
        """All-pairs path latency and bottleneck bandwidth, ``[i][j]`` by :attr:`site_index`
        (computed once per topology; read-only): what :meth:`site_latency_ms` and
        :meth:`site_bandwidth_mbps` look up, whole, for array builders."""
        lat, bw, _ = self._paths
        return lat, bw

    def transfer_links(self) -> tuple[list[list[tuple[int, ...]]], list[float]]:
        """What a transfer between two sites crosses, ``[i][j]`` by :attr:`site_index`, and
        every link's bandwidth. Links are numbered as :attr:`links`, then one per site for its
        own network (``len(links) + site index``), which a transfer between two of the site's
        nodes crosses when the site declares ``intra_bandwidth_mbps`` (unbounded otherwise:
        no link). Computed once per topology; read-only."""
        cached: tuple[list[list[tuple[int, ...]]], list[float]] | None = self._topology_cache.get(
            "transfer_links"
        )
        if cached is None:
            _, _, via = self._paths
            base = len(self.links)
            paths = [list(row) for row in via]
            capacity = [lk.bandwidth_mbps for lk in self.links]
            for i, site in enumerate(self.sites):
                capacity.append(site.intra_bandwidth_mbps or float("inf"))
                if site.intra_bandwidth_mbps is not None:
                    paths[i][i] = (base + i,)
            cached = (paths, capacity)
            self._topology_cache["transfer_links"] = cached
        return cached

    def available_bandwidth_row(self, src: int) -> np.ndarray:
        """Bandwidth a new transfer from site ``src`` can expect to each site (float64, by
        site index): the path's bottleneck of ``bandwidth / (1 + transfers in flight)`` per
        link, so with nothing in flight the declared bottleneck (:meth:`site_bandwidth_mbps`).
        Cached per snapshot and source."""
        key = f"available_bw.{src}"
        row: np.ndarray | None = self._derived_cache.get(key)
        if row is None:
            row = self._derived_cache[key] = self.bandwidth_row_under(src, self.inflight)
        return row

    def bandwidth_row_under(self, src: int, inflight: Sequence[int]) -> np.ndarray:
        """:meth:`available_bandwidth_row` with ``inflight`` transfers in flight on this
        topology instead of the snapshot's own (a new array, not cached)."""
        bw_rows: np.ndarray | None = self._topology_cache.get("bandwidth_rows")
        if bw_rows is None:  # the declared bottlenecks as one array, built once per topology
            bw_rows = np.array(self._paths[1], dtype=np.float64).reshape(len(self.sites), -1)
            self._topology_cache["bandwidth_rows"] = bw_rows
        row: np.ndarray = bw_rows[src].copy()
        if any(inflight):
            padded, capacity = self._padded_transfer_links()
            share = np.empty(capacity.shape[0] + 1, dtype=np.float64)
            share[:-1] = capacity / (1.0 + np.asarray(inflight, dtype=np.float64))
            share[-1] = np.inf  # the padding of shorter paths
            np.minimum(row, share[padded[src]].min(axis=1), out=row)
        return row

    def _padded_transfer_links(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`transfer_links` as arrays: ``[src, dst, k]`` the k-th link of the path,
        padded with ``len(capacity)`` (a link of unbounded share), and the capacities."""
        cached: tuple[np.ndarray, np.ndarray] | None = self._topology_cache.get("padded_links")
        if cached is None:
            paths, capacity = self.transfer_links()
            n = len(paths)
            width = max((len(p) for row in paths for p in row), default=0) or 1
            padded = np.full((n, n, width), len(capacity), dtype=np.int64)
            for i, row in enumerate(paths):
                for j, p in enumerate(row):
                    padded[i, j, : len(p)] = p
            cached = (padded, np.asarray(capacity, dtype=np.float64))
            self._topology_cache["padded_links"] = cached
        return cached

    def site_latency_ms(self, a: str, b: str) -> float:
        """Shortest-path network latency between two sites (intra-site latency when equal)."""
        lat, _, _ = self._paths
        return lat[self.site_index[a]][self.site_index[b]]

    def site_bandwidth_mbps(self, a: str, b: str) -> float:
        """Bottleneck bandwidth along the shortest-latency path (within a site: its intra
        bandwidth, ``inf`` when unset)."""
        _, bw, _ = self._paths
        return bw[self.site_index[a]][self.site_index[b]]

    def network_time_ms(self, task: TaskSpec, node: NodeState) -> float:
        """Latency plus transfer time of the task's input from its source to ``node``, over
        the bandwidth the path has available (:meth:`available_bandwidth_row`).

        A task whose source is this very node pays nothing.
        """
        if task.data_source_node is not None and task.data_source_node == node.name:
            return 0.0
        lat = self.site_latency_ms(task.data_source_site, node.site)
        src, dst = self.site_index[task.data_source_site], self.site_index[node.site]
        bw = float(self.available_bandwidth_row(src)[dst])
        transfer = 0.0 if bw == float("inf") else task.input_mb * 8.0 / bw * 1000.0
        return lat + transfer
