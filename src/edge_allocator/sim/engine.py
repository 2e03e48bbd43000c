"""The discrete-event edge-cluster simulator.

Model (all times in seconds):

* A task arrives, the scheduler filters nodes (ready, requests fit, and within the latency
  budget) and the policy picks one; with no feasible node the task waits in a FIFO and is
  retried whenever resources free up (as kube-scheduler retries unschedulable pods on cluster
  events). The budget is the production rule of :mod:`edge_allocator.cluster.budget` (a
  required node affinity in the cluster), never relaxed: a task whose in-budget nodes are all
  full waits for one of them. A task that no in-budget node could hold even when idle (no
  site within the budget, or every such node too small) is *unplaceable*: it never runs, is
  counted in :attr:`SimResult.unplaceable` and as an SLO violation, and never enters the
  queue, so it holds up nobody (in the cluster it would stay Pending with a condition).
* On its node the task needs ``work_cpu_s`` CPU-seconds and may use up to its limit,
  ``BURST_FACTOR * request`` cores. A node's CPU left after background load is shared among its
  tasks in proportion to their limits (processor sharing), so co-located tasks slow each other.
* Completion time = queueing + network (path latency + input over the bottleneck bandwidth) +
  execution. A task violates its SLO when completion exceeds its deadline or its path latency
  exceeds its latency budget. By default every transfer has its path's bottleneck bandwidth to
  itself; with ``dynamics.network.sharing: max-min`` concurrent transfers share each link
  max-min fairly (:mod:`edge_allocator.sim.network`) and a task starts executing only once its
  input has arrived (holding its requests on the node meanwhile).
* A task class with ``output_mb`` sends its result back to the data's site over the same
  path once its CPU work is done, and completion includes it: with ``none`` its time (path
  latency + output over the bottleneck) is added and the node is free at once; with
  ``max-min`` it is a flow sharing the links with every input and result, and the task holds
  its requests until the result is in. Transfers between two nodes of one site are free
  unless ``topology.intra_bandwidth_mbps`` is set: then they take that bandwidth (with
  ``max-min``, the site's transfers share it as one more link).
* A node of class ``cpu_speed`` s does ``s`` CPU-seconds of ``work_cpu_s`` per second.
* Background load drifts per node (Ornstein-Uhlenbeck, sampled every tick) and shows in
  measured usage but not in requests; failed nodes lose their tasks, which restart elsewhere.
  A site failure takes all its nodes down at once; a node stays down while any failure
  (its own, its site's) holds it. A failed link makes every path that crosses it unusable
  (paths are not rerouted): nodes behind it are no candidates for tasks whose data must
  cross it, transfers on it are lost like those to a failed node (the task restarts), and a
  result that cannot go back is lost the same way. With ``none`` transfers take no
  simulated time, so a link failure only changes placements and results.
* Measured usage reaches the policy as the live scheduler sees it: each node's average over
  the last metrics interval, refreshed once per interval (metrics.k8s.io), while requests and
  running-task counts are exact (the scheduler's cache). As in the extender's watch cache,
  the requests of tasks placed since the sample are added to it (what Trimaran does too);
  the rest of the gap between sample and truth is for a policy to learn.

Every random stream comes from :mod:`edge_allocator.sim.generate`, so two policies run on the
same seed see the same tasks, background load and failures. Each decision gets a fresh
:class:`ClusterSnapshot` revision derived from one base snapshot, so the topology work
(shortest paths) is done once per run.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, SupportsIndex, overload

import numpy as np

from edge_allocator.cluster.budget import latencies_within, node_within_budget
from edge_allocator.cluster.features import BURST_FACTOR
from edge_allocator.cluster.inflight import InflightTransfers
from edge_allocator.cluster.snapshot import ClusterSnapshot, NodeState, TaskSpec
from edge_allocator.compiled import compiled
from edge_allocator.policy.base import PlacementPolicy
from edge_allocator.policy.baselines.columns import (
    CPU_REQ,
    CPU_USAGE,
    CPU_USED,
    F64,
    MEM_REQ,
    ColumnView,
    SiteArrays,
    SnapshotView,
    node_rows,
    site_arrays,
)
from edge_allocator.sim.generate import (
    Cluster,
    Tasks,
    build_cluster,
    build_failures,
    build_link_failures,
    build_site_failures,
    build_tasks,
    rng_for,
    site_overrides,
)
from edge_allocator.sim.network import Transfers
from edge_allocator.sim.scenario import Scenario

_ARRIVAL, _COMPLETE, _TICK, _FAIL, _RECOVER, _METRICS, _TRANSFER = range(7)
_LINK_FAIL, _LINK_RECOVER, _SITE_FAIL, _SITE_RECOVER = 7, 8, 9, 10
_EPS = 1e-7


_Key = tuple[int, float, int] | None
"""A budget key: the node set a task may use (None: every node)."""


class _WaitQueue:
    """The waiting tasks in FIFO order, as the rows of one int64 array (:data:`_COLUMNS`:
    position, task, CPU and memory requests, fresh, candidate set), so a retry scans the
    queue in compiled code (:func:`_next_worth`) instead of a loop over Python objects. The
    position is a sequence number (``appendleft`` counts down) and the
    rows stay in its order: rows ``[lo, hi)`` of a buffer with room at both ends, so adding
    at either end is a row write. A candidate set (budget key) is a row of :attr:`members`,
    its nodes as a mask."""

    __slots__ = ("_head", "_index", "_masks", "_tail", "buf", "hi", "lo")

    def __init__(self, nodes: int) -> None:
        self.buf = np.zeros((64, len(_COLUMNS)), dtype=np.int64)
        self.lo = self.hi = 32
        self._index: dict[_Key, int] = {}
        self._masks = np.zeros((4, nodes), dtype=np.bool_)
        self._head = 0
        self._tail = 0

    def __len__(self) -> int:
        return self.hi - self.lo

    @property
    def rows(self) -> np.ndarray:
        """The waiting tasks' rows, in queue order (a view)."""
        return self.buf[self.lo : self.hi]

    def set_of(self, key: _Key, nodes: np.ndarray) -> int:
        """The index of candidate set ``key`` (``nodes``: its node indices, read when the
        set is new)."""
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self._index)
            if index == self._masks.shape[0]:  # room for twice as many sets
                grown = np.zeros((2 * index + 4, self._masks.shape[1]), dtype=np.bool_)
                grown[:index] = self._masks
                self._masks = grown
            self._masks[index, nodes] = True
        return index

    @property
    def members(self) -> np.ndarray:
        """Row ``i``: the nodes of the ``i``-th candidate set, as a mask."""
        return self._masks[: len(self._index)]

    def _recentre(self) -> None:
        """Room at both ends again: the rows centred in a buffer four times their number."""
        rows = self.rows.copy()
        n = rows.shape[0]
        if self.buf.shape[0] < 2 * n + 64:
            self.buf = np.zeros((4 * n + 64, len(_COLUMNS)), dtype=np.int64)
        self.lo = (self.buf.shape[0] - n) // 2
        self.hi = self.lo + n
        self.buf[self.lo : self.hi] = rows

    def append(self, which: int, tid: int, cpu: int, mem: int) -> None:
        """At the tail, as tried (it has just failed to find a node)."""
        if self.hi == self.buf.shape[0]:
            self._recentre()
        self._tail += 1
        self.buf[self.hi] = (self._tail, tid, cpu, mem, 0, which)
        self.hi += 1

    def appendleft(self, which: int, tid: int, cpu: int, mem: int) -> None:
        """At the head of the queue, never tried since (fresh)."""
        if self.lo == 0:
            self._recentre()
        self._head -= 1
        self.lo -= 1
        self.buf[self.lo] = (self._head, tid, cpu, mem, 1, which)

    def remove(self, gone: np.ndarray) -> None:
        """Drop the rows at indices ``gone`` (into :attr:`rows`); the rest keep their order."""
        kept = np.delete(self.rows, gone, axis=0)
        self.buf[self.lo : self.lo + kept.shape[0]] = kept
        self.hi = self.lo + kept.shape[0]


_COLUMNS = ("position", "task", "cpu", "mem", "fresh", "set")
_SEQ, _TID, _CPU, _MEM, _FRESH, _SET = range(len(_COLUMNS))
_DRAIN_COLUMNS = [_TID, _CPU, _MEM, _SET]


_GROWN_MAX = 16
"""Above this many grown nodes a drain tries every waiting task (the per-task check over the
grown nodes would cost more than the candidate search it saves)."""


@compiled
def _next_worth(
    rows: np.ndarray, start: int, inside: np.ndarray, cpu_room: np.ndarray, mem_room: np.ndarray
) -> int:
    """The first of ``rows`` from ``start`` worth trying: fresh (never tried), or some grown
    node of its set (``inside[set, g]``) has the room for it now; ``len(rows)`` when none."""
    for j in range(start, rows.shape[0]):
        if rows[j, _FRESH] == 1:
            return j
        s, cpu, mem = rows[j, _SET], rows[j, _CPU], rows[j, _MEM]
        for g in range(cpu_room.shape[0]):
            if inside[s, g] and cpu <= cpu_room[g] and mem <= mem_room[g]:
                return j
    n: int = rows.shape[0]
    return n


class _Front:
    """The requests of the tasks that failed in one drain with one candidate set, kept as a
    Pareto front (CPU ascending, memory strictly descending): a task is covered, so cannot
    fit either, when some failed task asked for no more CPU and no more memory."""

    __slots__ = ("cpu", "mem")

    def __init__(self) -> None:
        self.cpu: list[int] = []
        self.mem: list[int] = []

    def covers(self, cpu: int, mem: int) -> bool:
        # of the failures with CPU <= cpu, the last one asked for the least memory
        j = bisect.bisect_right(self.cpu, cpu) - 1
        return j >= 0 and self.mem[j] <= mem

    def add(self, cpu: int, mem: int) -> None:
        """Add an uncovered failure; the failures it covers leave the front."""
        i = bisect.bisect_left(self.cpu, cpu)
        k = i
        while k < len(self.mem) and self.mem[k] >= mem:
            k += 1
        self.cpu[i:k] = [cpu]
        self.mem[i:k] = [mem]


class Chooser(Protocol):
    """Picks one candidate (an index into ``candidates``) for the task with id ``task_id``."""

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int: ...


class CandidateNames(Sequence[str]):
    """The candidates the simulator hands a chooser: node names in ascending node order, as a
    read-only sequence (the list of names is only built when something reads it), with the
    nodes' indices in the snapshot in :attr:`nodes`. A policy with ``score_view`` or
    ``score_indices`` scores the indices directly, so a decision never turns a thousand
    indices into names."""

    __slots__ = ("_list", "_names", "nodes")

    def __init__(self, nodes: np.ndarray, names: np.ndarray) -> None:
        self.nodes = nodes
        self._names = names
        self._list: list[str] | None = None

    def _get(self) -> list[str]:
        if self._list is None:
            self._list = self._names[self.nodes].tolist()
        return self._list

    def __len__(self) -> int:
        return int(self.nodes.shape[0])

    @overload
    def __getitem__(self, k: int) -> str: ...
    @overload
    def __getitem__(self, k: slice) -> list[str]: ...
    def __getitem__(self, k: int | slice) -> str | list[str]:
        return self._get()[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __contains__(self, name: object) -> bool:
        return name in self._get()

    def index(self, name: Any, start: SupportsIndex = 0, stop: SupportsIndex = sys.maxsize) -> int:
        return self._get().index(name, start, stop)

    def count(self, name: Any) -> int:
        return self._get().count(name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self._get() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._get())


def first_best(scores: Sequence[float] | np.ndarray) -> int:
    """The index of the first highest score (ties: the first; a nan is never best; 0 when
    none beats -inf), as a loop over ``s > best`` from -inf gives it (compiled)."""
    a = scores if isinstance(scores, np.ndarray) else np.asarray(scores, dtype=np.float64)
    if a.dtype != np.float64:
        a = a.astype(np.float64)
    return int(_first_best(a))


@compiled
def _first_best(a: np.ndarray) -> int:
    best, k = -np.inf, 0
    for i in range(a.shape[0]):
        if a[i] > best:
            best, k = a[i], i
    return k


@compiled
def _fitting(
    cpu_free: np.ndarray,
    mem_free: np.ndarray,
    ready: np.ndarray,
    nodes: np.ndarray,
    cpu: int,
    mem: int,
) -> np.ndarray:
    """The ``nodes`` (in their order) that are ready and have ``cpu`` and ``mem`` free."""
    out = np.empty(nodes.shape[0], dtype=np.int64)
    k = 0
    for i in nodes:
        if ready[i] and cpu_free[i] >= cpu and mem_free[i] >= mem:
            out[k] = i
            k += 1
    return out[:k]


class _LiveView:
    """The simulator's :class:`ColumnView`: its own column array (updated in place as the
    state changes) and the transfers in flight when it was made."""

    __slots__ = ("_bw", "_inflight", "_topology", "data", "revision", "site_index", "sites")

    def __init__(
        self,
        data: F64,
        revision: int,
        sites: SiteArrays,
        topology: ClusterSnapshot,
        inflight: tuple[int, ...],
    ) -> None:
        self.data = data
        self.revision = revision
        self.sites = sites
        self.site_index = topology.site_index
        self._topology = topology
        self._inflight = inflight
        self._bw: dict[int, F64] = {}

    def node_index(self, name: str) -> int:
        t = self._topology
        return t.index_of(name) if t.has_node(name) else -1

    def bandwidth_row(self, site: int) -> F64:
        row = self._bw.get(site)
        if row is None:
            row = self._bw[site] = self._topology.bandwidth_row_under(site, self._inflight)
        return row


class PolicyChooser:
    """Deterministic argmax over a policy's scores (first best on ties).

    A policy with ``score_view(view, task, nodes) -> array`` (the baselines) scores the
    candidates' node indices from a :class:`ColumnView` instead of their names from a
    snapshot: the same numbers, vectorised or compiled; the simulator then hands it its own
    columns (:meth:`choose_view`) and builds no snapshot (unless a subclass overrides
    :meth:`choose`: then every decision goes through it). One with ``score_indices(snapshot,
    task, nodes)`` (the oracle) scores indices from the snapshot. ``hide_work``: the policy
    sees each task without its CPU-seconds of work, as on a live cluster, where no pod
    declares it."""

    def __init__(self, policy: PlacementPolicy, *, hide_work: bool = False) -> None:
        self.policy = policy
        self.hide_work = hide_work
        self._by_view = getattr(policy, "score_view", None)
        self._by_index = getattr(policy, "score_indices", None)
        # a subclass that overrides choose wants to see every decision there: snapshots
        self.reads_view = self._by_view is not None and type(self).choose is PolicyChooser.choose

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        if self.hide_work:
            task = task.without_work()
        nodes = getattr(candidates, "nodes", None)
        if isinstance(nodes, np.ndarray):
            if self._by_view is not None:
                return first_best(self._by_view(SnapshotView(snapshot), task, nodes))
            if self._by_index is not None:
                return first_best(self._by_index(snapshot, task, nodes))
        return first_best(self.policy.score(snapshot, task, candidates))

    def choose_view(
        self, view: ColumnView, task: TaskSpec, candidates: CandidateNames, task_id: int
    ) -> int:
        """:meth:`choose` from a column view (only when :attr:`reads_view`)."""
        if self.hide_work:
            task = task.without_work()
        assert self._by_view is not None
        return first_best(self._by_view(view, task, candidates.nodes))


@dataclass
class SimResult:
    """Per-task outcomes of one run (task id = index)."""

    scenario: str
    seed: int
    policy: str
    completion_s: np.ndarray  # nan for unfinished tasks
    network_ms: np.ndarray  # network time (latency + transfer) at the final placement
    latency_ms: np.ndarray  # path latency at the final placement
    violated: np.ndarray  # bool
    decisions: int
    restarts: int
    forced: int
    """Decisions with a single candidate: no policy could have chosen differently there."""
    imbalance: float  # mean over ticks of the std of CPU utilisation across ready nodes
    sim_time_s: float
    wall_s: float
    decision_tasks: list[int] = field(default_factory=list)
    unplaceable: list[int] = field(default_factory=list)
    """Tasks no node within their latency budget could ever hold: never run, counted as SLO
    violations and as unfinished, and left out of the completion-time means (the set depends
    on the tasks and the topology only, so it is the same for every policy on a seed)."""

    def summary(self) -> dict[str, Any]:
        done = self.completion_s[~np.isnan(self.completion_s)]
        return {
            "mean_completion_s": float(done.mean()) if done.size else math.nan,
            "p95_completion_s": float(np.percentile(done, 95)) if done.size else math.nan,
            "slo_violation_rate": float(self.violated.mean()),
            "mean_network_latency_ms": float(np.nanmean(self.latency_ms)),
            "cpu_imbalance": self.imbalance,
            "unfinished": int(np.isnan(self.completion_s).sum()),
            "unplaceable": len(self.unplaceable),
            "decisions": self.decisions,
            "forced_decision_share": self.forced / self.decisions if self.decisions else math.nan,
        }


class Simulator:
    """One scenario instance (topology and random streams fixed by ``seed``).

    ``cluster`` and ``tasks`` replace the generated ones, for hand-built cases whose every
    node and task a test spells out (the scenario still supplies the dynamics).
    """

    drain_shortcuts = True
    """Skip waiting tasks that provably cannot fit (see ``drain_pending``); False tries every
    one, the rule as written, which tests compare against."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        *,
        cluster: Cluster | None = None,
        tasks: Tasks | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.cluster = cluster if cluster is not None else build_cluster(scenario, seed)
        self.tasks: Tasks = (
            tasks if tasks is not None else build_tasks(scenario, self.cluster, seed)
        )
        tk = self.tasks
        # the per-task numbers the event loop reads one at a time, as Python lists (reading
        # a list is several times cheaper than a numpy scalar; the values are the same)
        self._t_cpu: list[int] = tk.cpu_request_m.tolist()
        self._t_mem: list[int] = tk.mem_request_mib.tolist()
        self._t_src: list[int] = tk.source_node.tolist()
        self._t_work: list[float] = tk.work_cpu_s.tolist()
        self._t_in: list[float] = tk.input_mb.tolist()
        self._t_out: list[float] = tk.output_mb.tolist()
        self._t_budget: list[float] = tk.latency_budget_ms.tolist()
        last = float(self.tasks.arrival_s[-1])
        self.failures = build_failures(scenario, self.cluster, seed, horizon_s=last)
        self.link_failures = build_link_failures(scenario, self.cluster, seed, horizon_s=last)
        self.site_failures = build_site_failures(scenario, self.cluster, seed, horizon_s=last)
        intra = scenario.topology.intra_bandwidth_mbps
        sites = tuple(
            dataclasses.replace(st, intra_bandwidth_mbps=intra)
            if st.intra_bandwidth_mbps is None and intra is not None
            else st
            for st in self.cluster.sites
        )  # a cluster built by hand may leave the scenario's intra-site bandwidth off its sites
        self.base = ClusterSnapshot(self.cluster.nodes, sites, self.cluster.links)
        sidx = self.base.site_index
        self.node_site = [sidx[n.site] for n in self.cluster.nodes]
        names = [s.name for s in self.cluster.sites]
        self.site_lat = [[self.base.site_latency_ms(a, b) for b in names] for a in names]
        self._site_lat_np = np.array(self.site_lat, dtype=np.float64).reshape(len(names), -1)
        self.site_bw = [[self.base.site_bandwidth_mbps(a, b) for b in names] for a in names]
        self.speed = [self.cluster.speed(i) for i in range(len(self.cluster.nodes))]
        self.has_output = bool((self.tasks.output_mb > 0).any())
        overrides = site_overrides(scenario, self.cluster)
        bg_mean = scenario.dynamics.background.mean
        site_mean = {
            k: ov.background_mean for k, ov in overrides.items() if ov.background_mean is not None
        }
        # per node when some site has its own mean (the draws around it are the same)
        self.bg_mean: float | np.ndarray = (
            np.array([site_mean.get(s, bg_mean) for s in self.node_site]) if site_mean else bg_mean
        )
        self._site_nodes: dict[str, list[int]] = {}
        for i, nd in enumerate(self.cluster.nodes):
            self._site_nodes.setdefault(nd.site, []).append(i)
        self._node_site_np = np.array(self.node_site, dtype=np.int64)
        self._names_np = np.array([nd.name for nd in self.cluster.nodes], dtype=object)
        # what a node's state never changes: its name, site, class, capacity and allocatable
        self._fixed = [
            (
                nd.name,
                nd.site,
                nd.node_class,
                nd.cpu_capacity_m,
                nd.mem_capacity_mib,
                nd.cpu_allocatable_m,
                nd.mem_allocatable_mib,
            )
            for nd in self.cluster.nodes
        ]
        self._allowed_by_key: dict[tuple[int, float, int], tuple[int, ...]] = {}
        # the same node sets as arrays, by budget key (None: every node)
        self._budget_nodes: dict[tuple[int, float, int] | None, np.ndarray] = {
            None: np.arange(len(self.cluster.nodes), dtype=np.int64)
        }
        self._allowed_of: dict[int, tuple[tuple[int, float, int], tuple[int, ...]] | None] = {}
        self._shapes: dict[tuple[int, float, int] | None, set[tuple[int, int]]] = {}
        self.shared_links = scenario.dynamics.network.sharing == "max-min"
        # the links each transfer crosses (a site's own network is one more link when it
        # declares a bandwidth), numbered as the snapshot numbers them for in-flight counts
        paths, capacity = self.base.transfer_links()
        self.link_path = [list(row) for row in paths]
        self.capacity = list(capacity)

    # -- state -----------------------------------------------------------------------------
    def _reset(self) -> None:
        nodes = self.cluster.nodes
        n = len(nodes)
        bg_spec = self.scenario.dynamics.background
        rng = rng_for(self.seed, "background")
        self._bg_rng = rng
        self.cores = [nd.cpu_allocatable_m / 1000.0 for nd in nodes]
        self.cpu_alloc = [nd.cpu_allocatable_m for nd in nodes]
        self.mem_alloc = [nd.mem_allocatable_mib for nd in nodes]
        self.cpu_req = [0] * n
        self.mem_req = [0] * n
        # what candidate filtering reads, as arrays kept in step with the lists (_sync)
        self._cpu_free = np.array(self.cpu_alloc, dtype=np.int64)
        self._mem_free = np.array(self.mem_alloc, dtype=np.int64)
        self._ready_np = np.ones(n, dtype=bool)
        mu = np.clip(self.bg_mean * (1 + bg_spec.heterogeneity * rng.standard_normal(n)), 0, 0.9)
        self.bg_mu = mu.tolist()
        self.bg = [float(m) * c for m, c in zip(mu, self.cores, strict=True)]
        self.ready = [True] * n
        self.down = [0] * n  # failures in effect (a node's own, its site's)
        self.running: list[dict[int, list[float]]] = [{} for _ in range(n)]
        self.factor = [1.0] * n
        # the running tasks' summed CPU demand per node, as of its last _reschedule (every
        # change to a node's running set is followed by one before its usage is read)
        self.demand: list[float] = [0.0] * n
        self.last_t = [0.0] * n
        self.version = [0] * n
        self.states = list(nodes)
        # nodes whose state changed since the last snapshot and since the last column view
        # (each is brought up to date only when asked for: a run uses one or the other)
        self.dirty: set[int] = set(range(n))
        self._dirty_cols: set[int] = set(range(n))
        # distinct states a policy has been shown; _shown: the current one was shown
        self.revision = 0
        self._shown = False
        self._shown_inflight: tuple[int, ...] = ()
        self._snap: ClusterSnapshot | None = None
        self._last_snap: ClusterSnapshot | None = None
        self._cols = node_rows(nodes)
        self._view: _LiveView | None = None
        self.heap: list[tuple[float, int, int, int, float]] = []
        self.seq = 0
        # measured usage: integral of usage cores over time, and what metrics last published
        self.metrics_interval = self.scenario.dynamics.metrics.interval_s
        self.u_rate = list(self.bg)
        self.u_int = [0.0] * n
        self.u_t = [0.0] * n
        self.u_published_int = [0.0] * n
        self.measured = list(self.bg)
        self.published_at = 0.0
        self.placed_at: dict[int, float] = {}
        # per node, the CPU requests of its tasks placed after the last sample (what
        # measured_cpu_m adds to it), kept as tasks come and go
        self.fresh_req = [0] * n
        # max-min link sharing: transfers in flight, and the tasks waiting for their input
        self.transfers = Transfers(self.capacity)
        self.transfer_version = 0
        # what the placer itself can know of those transfers (the extender estimates the same
        # from the pods it has bound): on links that do not congest, nothing
        self.inflight = InflightTransfers(self.capacity) if self.shared_links else None
        self.arriving: list[set[int]] = [set() for _ in range(n)]
        # tasks whose CPU work is done and whose result is on its way back (flow ~tid)
        self.sending: list[set[int]] = [set() for _ in range(n)]
        self.sent_at: dict[int, float] = {}
        # failed links: how many failures hold each down, and the sites each source site
        # cannot reach meanwhile (cached until a link fails or recovers)
        self.link_down = [0] * len(self.capacity)
        self.links_down = 0
        self._blocked: dict[int, frozenset[int]] = {}
        self._blocked_mask: dict[int, np.ndarray] = {}
        # nodes that gained room or came up since the last retry of the waiting tasks, and
        # whether candidate sets grew some other way (a link came back: retry them all)
        self.grown: set[int] = set()
        self.retry_all = False

    def _sync(self, i: int) -> None:
        """Node ``i``'s requests or readiness changed: update the filtering arrays, and note
        the node in ``grown`` when it may now hold a task it could not before."""
        cpu = self.cpu_alloc[i] - self.cpu_req[i]
        mem = self.mem_alloc[i] - self.mem_req[i]
        if self.ready[i] and (
            cpu > self._cpu_free[i] or mem > self._mem_free[i] or not self._ready_np[i]
        ):
            self.grown.add(i)
        self._cpu_free[i] = cpu
        self._mem_free[i] = mem
        self._ready_np[i] = self.ready[i]

    def _push(self, t: float, kind: int, a: int, b: float = 0.0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def _advance(self, i: int, t: float) -> None:
        dt = t - self.last_t[i]
        if dt > 0 and self.running[i]:
            f = self.factor[i] * dt
            for v in self.running[i].values():
                v[0] -= v[1] * f
        self.last_t[i] = t

    def _usage_changed(self, i: int, t: float) -> None:
        """Close the usage integral at ``t`` at the old rate and start the new one."""
        self.u_int[i] += self.u_rate[i] * (t - self.u_t[i])
        self.u_t[i] = t
        self.u_rate[i] = self.usage_cores(i)

    def _publish_metrics(self, t: float) -> None:
        """What metrics.k8s.io would serve from now on: usage averaged over the interval."""
        for i in range(len(self.cores)):
            self._usage_changed(i, t)
            self.measured[i] = (self.u_int[i] - self.u_published_int[i]) / self.metrics_interval
            self.u_published_int[i] = self.u_int[i]
            self._touch(i)
        self.published_at = t
        self.fresh_req = [0] * len(self.cores)  # every task there now was placed by t

    def measured_cpu_m(self, i: int) -> int:
        """Usage as the policy sees it: the last sample plus the requests of the tasks placed
        since it was taken (exact usage when the metrics interval is 0)."""
        if self.metrics_interval <= 0:
            return int(self.usage_cores(i) * 1000)
        return int(self.measured[i] * 1000) + self.fresh_req[i]

    def _fresh_req_recount(self, i: int) -> int:
        """:attr:`fresh_req` of node ``i`` counted from its tasks: the definition the
        incremental count keeps (``tests/unit/test_sim_vectorised.py`` checks it does)."""
        since = self.published_at
        placed, req = self.placed_at, self._t_cpu
        # strictly after the sample, as the extender's cache compares bind time and sample time
        extra = sum([req[tid] for tid in self.running[i] if placed[tid] > since])
        if self.arriving[i]:
            extra += sum([req[tid] for tid in self.arriving[i] if placed[tid] > since])
        if self.sending[i]:
            extra += sum([req[tid] for tid in self.sending[i] if placed[tid] > since])
        return extra

    def _reschedule(self, i: int, t: float, touched: bool = True) -> None:
        """Recompute node ``i``'s sharing factor and next completion. ``touched``: what the
        policies see of the node may have changed (False for a background-load tick while
        measured usage is a published sample: the snapshot's node state is the same)."""
        run = self.running[i]
        self.version[i] += 1
        if touched:
            self._touch(i)
        if not run:
            self.factor[i] = 1.0
            self.demand[i] = 0.0
            self._usage_changed(i, t)
            return
        jobs = list(run.values())
        demand = self.demand[i] = sum([v[1] for v in jobs])
        avail = max(self.cores[i] - self.bg[i], 0.05 * self.cores[i])
        f = 1.0 if demand <= avail else avail / demand
        self.factor[i] = f
        self._usage_changed(i, t)
        dt = min([max(v[0], 0.0) / v[1] for v in jobs]) / f
        self._push(t + dt, _COMPLETE, i, float(self.version[i]))

    def usage_cores(self, i: int) -> float:
        return min(self.bg[i] + self.demand[i] * self.factor[i], self.cores[i])

    def _touch(self, i: int) -> None:
        """What the policies see of node ``i`` changed."""
        self.dirty.add(i)
        self._dirty_cols.add(i)
        self._shown = False

    def _show(self, t: float) -> tuple[int, ...]:
        """The state is about to be shown to a policy: a new revision when it changed (a node,
        or the transfers in flight) since it was last shown; returns the transfers in flight."""
        inflight = self.inflight.counts(t) if self.inflight is not None else ()
        if not self._shown or inflight is not self._shown_inflight:
            self.revision += 1
            self._shown = True
            self._shown_inflight = inflight
        return inflight

    def snapshot(self, t: float) -> ClusterSnapshot:
        inflight = self._show(t)
        if self._snap is not None and self._snap.revision == self.revision:
            return self._snap
        fixed = self._fixed
        for i in self.dirty:
            self.states[i] = NodeState(
                *fixed[i],
                self.cpu_req[i],
                self.mem_req[i],
                self.measured_cpu_m(i),
                self.mem_req[i],
                len(self.running[i]) + len(self.arriving[i]) + len(self.sending[i]),
                self.ready[i],
            )
        parent = self._last_snap or self.base
        self._snap = parent.with_nodes(
            tuple(self.states),
            revision=self.revision,
            taken_at=t,
            changed=sorted(self.dirty) if self._last_snap is not None else None,
            inflight=inflight,
        )
        self.dirty.clear()
        self._last_snap = self._snap
        return self._snap

    def column_view(self, t: float) -> ColumnView:
        """What a baseline's fast path reads of the state at ``t``, the numbers
        ``node_columns(self.snapshot(t))`` would hold, from the engine's own columns: no
        node states, no snapshot (valid until the state changes)."""
        inflight = self._show(t)
        view = self._view
        if view is not None and view.revision == self.revision:
            return view
        data = self._cols
        for i in self._dirty_cols:
            m = float(self.measured_cpu_m(i))
            data[CPU_USED, i] = m
            data[CPU_USAGE, i] = m
            data[CPU_REQ, i] = self.cpu_req[i]
            data[MEM_REQ, i] = self.mem_req[i]
        self._dirty_cols.clear()
        sites = site_arrays(self.base)  # cached per topology
        self._view = _LiveView(data, self.revision, sites, self.base, inflight)
        return self._view

    def task_spec(self, tid: int) -> TaskSpec:
        src = self._t_src[tid]
        budget = self._t_budget[tid]
        node = self.cluster.nodes[src]
        return TaskSpec(
            self._t_cpu[tid],
            self._t_mem[tid],
            node.site,
            node.name,
            self._t_in[tid],
            self._t_work[tid],
            None if budget != budget else budget,  # nan: no budget
        )

    def path(self, tid: int, i: int) -> tuple[float, float]:
        """(path latency ms, network time ms) from task ``tid``'s source to node ``i``."""
        src = self._t_src[tid]
        if src == i:
            return 0.0, 0.0
        a, b = self.node_site[src], self.node_site[i]
        lat = self.site_lat[a][b]
        bw = self.site_bw[a][b]
        transfer = 0.0 if math.isinf(bw) else self._t_in[tid] * 8000.0 / bw
        return lat, lat + transfer

    def return_ms(self, tid: int, i: int) -> float:
        """Network time of task ``tid``'s result from node ``i`` back to its source site, the
        link-sharing aside: the same path's latency plus the output over its bottleneck
        (nothing without output, or when the task ran on its source node)."""
        out = float(self.tasks.output_mb[tid])
        src = int(self.tasks.source_node[tid])
        if out <= 0 or src == i:
            return 0.0
        a, b = self.node_site[src], self.node_site[i]
        bw = self.site_bw[a][b]
        return self.site_lat[a][b] + (0.0 if math.isinf(bw) else out * 8000.0 / bw)

    def _blocked_sites_mask(self, src_site: int) -> np.ndarray:
        """:meth:`blocked_sites` as a boolean array over the sites."""
        got = self._blocked_mask.get(src_site)
        if got is None:
            got = np.zeros(len(self.cluster.sites), dtype=bool)
            got[list(self.blocked_sites(src_site))] = True
            self._blocked_mask[src_site] = got
        return got

    def blocked_sites(self, src_site: int) -> frozenset[int]:
        """The sites whose path from ``src_site`` crosses a failed link (paths are not
        rerouted: a path is unusable until its links recover)."""
        got = self._blocked.get(src_site)
        if got is None:
            down, paths = self.link_down, self.link_path[src_site]
            got = frozenset(d for d, p in enumerate(paths) if any(down[k] for k in p))
            self._blocked[src_site] = got
        return got

    def reachable(self, tid: int, i: int) -> bool:
        """Whether task ``tid``'s data can move between its source and node ``i`` now."""
        if not self.links_down:
            return True
        src = int(self.tasks.source_node[tid])
        return src == i or self.node_site[i] not in self.blocked_sites(self.node_site[src])

    def contention_free_bound_s(self) -> float:
        """A lower bound on any policy's mean completion time (mean of
        :meth:`contention_free_bounds_s`). The gap between a policy and this bound is all
        that placement could still win."""
        return float(np.nanmean(self.contention_free_bounds_s()))

    def contention_free_bounds_s(self) -> np.ndarray:
        """Per task, a lower bound on its completion time under any policy: the task alone
        on the cluster, on the in-budget node that would finish it first (no queueing, no
        sharing, no background load); nan when no node within its budget could ever hold it
        (an unplaceable task, which no policy runs either)."""
        tk = self.tasks
        site = np.array(self.node_site)
        lat = np.array(self.site_lat)
        with np.errstate(divide="ignore"):
            per_mb = np.where(np.isinf(self.site_bw), 0.0, 8000.0 / np.array(self.site_bw))
        cpu_alloc = np.array([nd.cpu_allocatable_m for nd in self.cluster.nodes])
        mem_alloc = np.array([nd.mem_allocatable_mib for nd in self.cluster.nodes])
        cores = cpu_alloc / 1000.0
        speed = np.array(self.speed)
        best = np.empty(len(tk))
        for tid in range(len(tk)):
            src = int(tk.source_node[tid])
            ss = site[src]
            net_ms = lat[ss, site] + float(tk.input_mb[tid]) * per_mb[ss, site]
            out = float(tk.output_mb[tid])
            if out > 0:  # the result goes back over the same path
                net_ms = net_ms + lat[ss, site] + out * per_mb[ss, site]
            net_ms[src] = 0.0
            rate = np.minimum(float(tk.cpu_request_m[tid]) / 1000.0 * BURST_FACTOR, cores)
            rate = rate * speed
            total = net_ms / 1000.0 + float(tk.work_cpu_s[tid]) / rate
            fits = (cpu_alloc >= tk.cpu_request_m[tid]) & (mem_alloc >= tk.mem_request_mib[tid])
            allowed = np.zeros(len(fits), dtype=bool)
            allowed[list(self.within_budget(tid))] = True
            fits &= allowed
            best[tid] = total[fits].min() if fits.any() else math.nan
        return best

    def _budget_entry(self, tid: int) -> tuple[tuple[int, float, int], tuple[int, ...]] | None:
        """(key, indices of the nodes within task ``tid``'s budget, ascending), or None
        without a budget. The sites are those :func:`sites_within_budget` gives (what the
        operator writes into the pod's node affinity; here :func:`latencies_within` over the
        source site's row of shortest-path latencies, a test checks they agree) and the source
        node comes from :func:`node_within_budget`, so the simulator has no budget rule of its
        own. The key names the node set: tasks with equal keys have the same candidates."""
        if tid in self._allowed_of:
            return self._allowed_of[tid]
        budget = float(self.tasks.latency_budget_ms[tid])
        entry: tuple[tuple[int, float, int], tuple[int, ...]] | None = None
        if not math.isnan(budget):
            src = int(self.tasks.source_node[tid])
            src_site = self.node_site[src]
            site_key = (src_site, budget, -1)
            in_sites = self._allowed_by_key.get(site_key)
            if in_sites is None:
                allowed = latencies_within(self._site_lat_np[src_site], budget)
                in_sites = tuple(np.flatnonzero(allowed[self._node_site_np]).tolist())
                self._allowed_by_key[site_key] = in_sites
                self._budget_nodes[site_key] = np.array(in_sites, dtype=np.int64)
            entry = (site_key, in_sites)
            src_name = self.cluster.nodes[src].name
            if src not in in_sites and node_within_budget(self.base, self.task_spec(tid), src_name):
                key = (src_site, budget, src)
                entry = (key, tuple(sorted((*in_sites, src))))
                if key not in self._budget_nodes:
                    self._budget_nodes[key] = np.array(entry[1], dtype=np.int64)
        self._allowed_of[tid] = entry
        return entry

    def _wait_set(self, queue: _WaitQueue, tid: int) -> int:
        """The index in ``queue`` of task ``tid``'s budget node set."""
        entry = self._budget_entry(tid)
        key = None if entry is None else entry[0]
        return queue.set_of(key, self._budget_nodes[key])

    def within_budget(self, tid: int) -> Sequence[int]:
        """Indices of the nodes task ``tid`` may run on under its latency budget (all nodes
        without one), ascending."""
        entry = self._budget_entry(tid)
        return range(len(self.cluster.nodes)) if entry is None else entry[1]

    def placeable(self, tid: int) -> bool:
        """Whether some node within the budget could hold task ``tid`` when idle and ready;
        if none can, no amount of waiting places it."""
        cpu = self._t_cpu[tid]
        mem = self._t_mem[tid]
        entry = self._budget_entry(tid)
        key = None if entry is None else entry[0]
        shapes = self._shapes.get(key)
        if shapes is None:  # the distinct node sizes in the set: a handful of node classes
            nodes = self.cluster.nodes
            shapes = {
                (nodes[i].cpu_allocatable_m, nodes[i].mem_allocatable_mib)
                for i in self.within_budget(tid)
            }
            self._shapes[key] = shapes
        return any(c >= cpu and m >= mem for c, m in shapes)

    def candidates(self, tid: int) -> list[int]:
        """The nodes kube-scheduler would pass for task ``tid`` now: ready, its requests
        fit, and within its latency budget (never relaxed; empty means the task waits).
        While a link is down, nodes whose path from the data crosses it are left out too."""
        cpu = int(self.tasks.cpu_request_m[tid])
        mem = int(self.tasks.mem_request_mib[tid])
        cr, ca, mr, ma, rd = self.cpu_req, self.cpu_alloc, self.mem_req, self.mem_alloc, self.ready
        out = [
            i
            for i in self.within_budget(tid)
            if rd[i] and cr[i] + cpu <= ca[i] and mr[i] + mem <= ma[i]
        ]
        if self.links_down and out:
            src = int(self.tasks.source_node[tid])
            blocked, site = self.blocked_sites(self.node_site[src]), self.node_site
            out = [i for i in out if i == src or site[i] not in blocked]
        return out

    def candidate_nodes(self, tid: int) -> np.ndarray:
        """:meth:`candidates` as an ascending int64 array, compiled over the nodes: what a
        run uses (:meth:`candidates` is the same rule written node by node, over the lists;
        the arrays here follow the lists through :meth:`_sync`)."""
        entry = self._budget_entry(tid)
        nodes = self._budget_nodes[None if entry is None else entry[0]]
        out: np.ndarray = _fitting(
            self._cpu_free,
            self._mem_free,
            self._ready_np,
            nodes,
            self._t_cpu[tid],
            self._t_mem[tid],
        )
        if self.links_down and out.shape[0]:
            src = self._t_src[tid]
            blocked = self._blocked_sites_mask(self.node_site[src])
            out = out[(out == src) | ~blocked[self._node_site_np[out]]]
        return out

    # -- run -------------------------------------------------------------------------------
    def run(self, chooser: Chooser, policy_name: str = "") -> SimResult:
        wall0 = time.perf_counter()
        self._reset()
        tk = self.tasks
        n_tasks = len(tk)
        nodes = self.cluster.nodes
        names = self._names_np
        placed_node = np.full(n_tasks, -1, dtype=np.int64)
        start_wait = tk.arrival_s.copy()
        finish = np.full(n_tasks, np.nan)
        net_ms = np.full(n_tasks, np.nan)
        lat_ms = np.full(n_tasks, np.nan)
        # network time added to finish - arrival: all of it, unless the transfer delayed the
        # start (max-min sharing), when only the latency is left to add
        added_ms = np.full(n_tasks, np.nan)
        pending = _WaitQueue(len(nodes))
        decision_tasks: list[int] = []
        forced = 0
        unplaceable: list[int] = []
        restarts = 0
        bg_spec = self.scenario.dynamics.background
        imbalance: list[float] = []
        n_done = 0
        self._push(bg_spec.tick_s, _TICK, 0)
        if self.metrics_interval > 0:
            self._push(self.metrics_interval, _METRICS, 0)
        for ft, node, down in self.failures:
            self._push(ft, _FAIL, node, down)
        for ft, site, down in self.site_failures:
            self._push(ft, _SITE_FAIL, site, down)
        for ft, link, down in self.link_failures:
            self._push(ft, _LINK_FAIL, link, down)
        next_arrival = 0
        has_output = self.has_output
        t_cpu, t_mem, t_src = self._t_cpu, self._t_mem, self._t_src
        arrivals: list[float] = tk.arrival_s.tolist()
        # a chooser that scores from column views gets the engine's own columns
        by_view = (
            chooser.choose_view
            if isinstance(chooser, PolicyChooser) and chooser.reads_view
            else None
        )

        def place(tid: int, t: float) -> bool:
            nonlocal forced
            cands = self.candidate_nodes(tid)
            n_cands = cands.shape[0]
            if not n_cands:
                return False
            if n_cands == 1:
                forced += 1
            if by_view is not None:
                k = by_view(
                    self.column_view(t), self.task_spec(tid), CandidateNames(cands, names), tid
                )
            else:
                snap = self.snapshot(t)
                k = chooser.choose(snap, self.task_spec(tid), CandidateNames(cands, names), tid)
            i = int(cands[k])
            decision_tasks.append(tid)
            req = t_cpu[tid]
            self.placed_at[tid] = t
            if t > self.published_at:
                self.fresh_req[i] += req
            self.cpu_req[i] += req
            self.mem_req[i] += t_mem[tid]
            self._sync(i)
            placed_node[tid] = i
            lat_ms[tid], net_ms[tid] = self.path(tid, i)
            added_ms[tid] = net_ms[tid]
            src = t_src[tid]
            links = self.link_path[self.node_site[src]][self.node_site[i]]
            megabits = self._t_in[tid] * 8.0
            if self.shared_links and links and megabits > 0 and src != i:
                # the input crosses shared links first; the task starts when it has arrived
                self.arriving[i].add(tid)
                self.transfers.add(t, tid, links, megabits)
                if self.inflight is not None:
                    self.inflight.start(t, links, megabits)
                added_ms[tid] = lat_ms[tid]
                self._touch(i)
                retime_transfers()
                return True
            start(tid, i, t)
            return True

        def start(tid: int, i: int, t: float) -> None:
            self._advance(i, t)
            req = t_cpu[tid]
            demand = min(req / 1000.0 * BURST_FACTOR, self.cores[i])
            self.running[i][tid] = [self._t_work[tid] / self.speed[i], demand]
            self._reschedule(i, t)

        def release(tid: int, i: int) -> None:
            """Task ``tid`` leaves node ``i``: its requests are free again."""
            if self.placed_at[tid] > self.published_at:
                self.fresh_req[i] -= t_cpu[tid]
            self.cpu_req[i] -= t_cpu[tid]
            self.mem_req[i] -= t_mem[tid]
            self._sync(i)
            self._touch(i)

        def done_at(tid: int, t: float) -> None:
            nonlocal n_done
            finish[tid] = t
            n_done += 1

        def lost(tid: int, t: float) -> None:
            """The task's work is lost (its node failed, or its data cannot move): it waits
            at the head of the queue to be placed again, as after a node failure."""
            nonlocal restarts
            restarts += 1
            start_wait[tid] = t
            pending.appendleft(self._wait_set(pending, tid), tid, t_cpu[tid], t_mem[tid])

        def send_result(tid: int, i: int, t: float) -> bool:
            """The CPU work is done; the result goes back to the data's site. With shared
            links it is a flow on the reversed input path (the task holds its requests until
            the result is in); otherwise its time is added like the input's. False when a
            failed link cuts the path: the result is lost and the task runs again."""
            if not self.reachable(tid, i):
                release(tid, i)
                lost(tid, t)
                return False
            src = int(tk.source_node[tid])
            links = self.link_path[self.node_site[src]][self.node_site[i]]
            if self.shared_links and links and src != i:
                self.sending[i].add(tid)
                self.sent_at[tid] = t
                self.transfers.add(t, ~tid, links[::-1], float(tk.output_mb[tid]) * 8.0)
                added_ms[tid] += lat_ms[tid]
                return True
            release(tid, i)
            extra = self.return_ms(tid, i)
            added_ms[tid] += extra
            net_ms[tid] += extra
            done_at(tid, t)
            return True

        retime_due = False

        def retime_transfers() -> None:
            """Rates changed: the next transfer end is to be a new event, pushed once the
            event that changed them is handled (a round of placements starts many
            transfers: one filling for all)."""
            nonlocal retime_due
            retime_due = True

        def fail_node(a: int, t: float, down_s: float | None) -> bool:
            """Node ``a`` fails (its tasks and transfers are lost) and recovers ``down_s``
            later (None: its site's recovery brings it back). A node down already (its own
            failure, or its site's) stays down until the last failure holding it is over.
            True when the node was up."""
            self.down[a] += 1
            if down_s is not None:
                self._push(t + down_s, _RECOVER, a)
            if self.down[a] > 1:
                return False
            self._advance(a, t)
            gone = [*self.running[a], *sorted(self.arriving[a]), *sorted(self.sending[a])]
            for tid in gone:
                lost(tid, t)
            self.running[a].clear()
            if self.arriving[a] or self.sending[a]:  # transfers to a dead node stop
                self.transfers.remove_all(
                    t, [*self.arriving[a], *(~tid for tid in self.sending[a])]
                )
                self.arriving[a].clear()
                self.sending[a].clear()
                retime_transfers()
            self.cpu_req[a] = 0
            self.mem_req[a] = 0
            self.fresh_req[a] = 0
            self.ready[a] = False
            self._sync(a)
            self._reschedule(a, t)
            return True

        def recover_node(a: int, t: float) -> bool:
            """One failure holding node ``a`` is over; True when the node is up again."""
            self.down[a] -= 1
            if self.down[a]:
                return False
            self.ready[a] = True
            self._sync(a)
            self._reschedule(a, t)
            return True

        def drain_pending(t: float) -> None:
            """Retry every waiting task in FIFO order, as kube-scheduler retries every
            unschedulable pod after a cluster event (no head-of-line blocking: a task that
            waits for a full site holds up no task that fits elsewhere).

            The outcome is exactly "place each task, in order, if it fits now"; two rules
            skip tasks that provably do not fit, without a candidate search, so a long
            queue stays cheap. A task tried before (not fresh) could not be placed then, and
            since then only the nodes in ``grown`` gained room: unless one of them in its
            budget fits it *now* (as the tasks before it in this drain left them: within one
            drain nodes only fill up), it waits. And once a task with a given candidate set
            fails, a later one with the same set and requests at least as large waits too
            (``_Front``). The first rule is a compiled scan forward over the waiting rows
            (``_next_worth``) with the room as it is when the scan reaches each row, so a
            drain reads the queue once however many tasks it places."""
            grown = self.grown
            shortcuts = self.drain_shortcuts
            check_all = self.retry_all or len(grown) > _GROWN_MAX or not shortcuts
            gl = sorted(grown)
            self.grown = set()
            self.retry_all = False
            ca, cr, ma, mr = self.cpu_alloc, self.cpu_req, self.mem_alloc, self.mem_req
            rd = self.ready
            # the room on the grown nodes now (-1: down), and which of them each set holds
            column = {g: c for c, g in enumerate(gl)}
            cpu_room = np.array([ca[g] - cr[g] if rd[g] else -1 for g in gl], dtype=np.int64)
            mem_room = np.array([ma[g] - mr[g] if rd[g] else -1 for g in gl], dtype=np.int64)
            # set x grown node (check_all reads neither it nor the rooms: every row is tried)
            inside = pending.members[:, np.array(gl, dtype=np.int64)]
            waiting = pending.rows  # rows stay where they are until the placed ones go
            n = waiting.shape[0]
            placed: list[int] = []
            failed: dict[object, _Front] = {}
            j = -1
            while True:
                j = j + 1 if check_all else _next_worth(waiting, j + 1, inside, cpu_room, mem_room)
                if j >= n:
                    break
                tid, cpu, mem, cset = waiting[j, _DRAIN_COLUMNS].tolist()
                key: object = cset
                if self.links_down:  # then the candidates depend on the source site too
                    key = (cset, self.node_site[t_src[tid]])
                front = failed.get(key)
                if front is not None and shortcuts and front.covers(cpu, mem):
                    continue
                if not place(tid, t):
                    if front is None:
                        front = failed[key] = _Front()
                    front.add(cpu, mem)
                    continue
                placed.append(j)
                c = column.get(int(placed_node[tid]))
                if c is not None:  # room taken on a grown node: the scan reads it from here
                    g = gl[c]
                    cpu_room[c] = ca[g] - cr[g]
                    mem_room[c] = ma[g] - mr[g]
            waiting[:, _FRESH] = 0  # each row was tried in this drain, or ruled out
            if placed:
                pending.remove(np.array(placed, dtype=np.int64))

        t = 0.0
        while True:
            if retime_due:  # the next transfer end at the new rates (older ones are stale)
                retime_due = False
                self.transfer_version += 1
                end = self.transfers.next_end()
                if math.isfinite(end):
                    self._push(end, _TRANSFER, 0, float(self.transfer_version))
            arr_t = arrivals[next_arrival] if next_arrival < n_tasks else math.inf
            if self.heap and self.heap[0][0] <= arr_t:
                t, _, kind, a, b = heapq.heappop(self.heap)
            elif next_arrival < n_tasks:
                t, kind, a, b = arr_t, _ARRIVAL, next_arrival, 0.0
                next_arrival += 1
            else:
                break
            if kind == _ARRIVAL:
                if not pending:  # what grew matters only to tasks already waiting
                    self.grown.clear()
                if not self.placeable(a):
                    unplaceable.append(a)
                elif not place(a, t):
                    pending.append(self._wait_set(pending, a), a, t_cpu[a], t_mem[a])
            elif kind == _COMPLETE:
                if int(b) != self.version[a]:
                    continue
                self._advance(a, t)
                run = self.running[a]
                # the task the event was computed for, plus any that finish together
                first = min(run, key=lambda k: run[k][0] / run[k][1])
                done = [k for k, v in run.items() if k == first or v[0] <= _EPS]
                sent = False
                for tid in done:
                    del run[tid]
                    if has_output and self._t_out[tid] > 0:
                        sent |= send_result(tid, a, t)
                        continue
                    if self.placed_at[tid] > self.published_at:
                        self.fresh_req[a] -= t_cpu[tid]
                    self.cpu_req[a] -= t_cpu[tid]
                    self.mem_req[a] -= t_mem[tid]
                    finish[tid] = t
                    n_done += 1
                self._sync(a)
                self._reschedule(a, t)
                if sent:
                    retime_transfers()
                if pending:
                    drain_pending(t)
            elif kind == _TICK:
                utils = []
                rng = self._bg_rng
                noise = rng.standard_normal(len(nodes))
                # background load shows in the snapshot only as exact usage (interval 0)
                exact = self.metrics_interval <= 0
                for i in range(len(nodes)):
                    c = self.cores[i]
                    frac = self.bg[i] / c
                    frac += bg_spec.reversion * (self.bg_mu[i] - frac)
                    frac += bg_spec.volatility * float(noise[i])
                    frac = min(max(frac, 0.0), 0.95)
                    if self.running[i]:
                        self._advance(i, t)
                        self.bg[i] = frac * c
                        self._reschedule(i, t, exact)
                    else:
                        self.bg[i] = frac * c
                        self._usage_changed(i, t)
                        if exact:
                            self._touch(i)
                    if self.ready[i]:
                        utils.append(self.usage_cores(i) / c)
                if utils:
                    imbalance.append(float(np.std(utils)))
                if n_done + len(unplaceable) < n_tasks:
                    self._push(t + bg_spec.tick_s, _TICK, 0)
                # no retry here: background load changes no request, so no task fits now
                # that did not fit after the last completion, failure or recovery
            elif kind == _TRANSFER:
                if int(b) != self.transfer_version:
                    continue
                self.transfers.advance(t)
                freed = False
                ended = self.transfers.done()
                self.transfers.remove_all(t, ended)
                for flow in ended:
                    if flow < 0:  # a result is back: the task is done
                        tid = ~flow
                        i = int(placed_node[tid])
                        self.sending[i].discard(tid)
                        net_ms[tid] += lat_ms[tid] + (t - self.sent_at.pop(tid)) * 1000.0
                        release(tid, i)
                        done_at(tid, t)
                        freed = True
                        continue
                    tid = flow
                    i = int(placed_node[tid])
                    self.arriving[i].discard(tid)
                    net_ms[tid] = lat_ms[tid] + (t - self.placed_at[tid]) * 1000.0
                    start(tid, i, t)
                retime_transfers()
                if freed and pending:
                    drain_pending(t)
            elif kind == _METRICS:
                self._publish_metrics(t)
                if n_done + len(unplaceable) < n_tasks:
                    self._push(t + self.metrics_interval, _METRICS, 0)
            elif kind == _FAIL:
                if fail_node(a, t, b) and pending:
                    drain_pending(t)
            elif kind == _RECOVER:
                if recover_node(a, t) and pending:
                    drain_pending(t)
            elif kind == _SITE_FAIL:  # every node of the site at once, then one retry
                self._push(t + b, _SITE_RECOVER, a)
                for i in self._site_nodes.get(self.cluster.sites[a].name, ()):
                    fail_node(i, t, None)
                if pending:
                    drain_pending(t)
            elif kind == _SITE_RECOVER:
                back = [
                    recover_node(i, t) for i in self._site_nodes.get(self.cluster.sites[a].name, ())
                ]
                if any(back) and pending:
                    drain_pending(t)
            elif kind == _LINK_FAIL:
                self._push(t + b, _LINK_RECOVER, a)
                self.link_down[a] += 1
                if self.link_down[a] > 1:
                    continue
                self.links_down += 1
                self._blocked.clear()
                self._blocked_mask.clear()
                # transfers crossing the link stop, as transfers to a failed node do
                cut = sorted(f for f, path in self.transfers.path.items() if a in path)
                self.transfers.remove_all(t, cut)
                for flow in cut:
                    tid = ~flow if flow < 0 else flow
                    i = int(placed_node[tid])
                    (self.sending if flow < 0 else self.arriving)[i].discard(tid)
                    release(tid, i)
                    lost(tid, t)
                if cut:
                    retime_transfers()
                    drain_pending(t)
            elif kind == _LINK_RECOVER:
                self.link_down[a] -= 1
                if self.link_down[a]:
                    continue
                self.links_down -= 1
                self._blocked.clear()
                self._blocked_mask.clear()
                self.retry_all = True  # paths are open again: any candidate set may grow
                if pending:
                    drain_pending(t)
            if next_arrival >= n_tasks and n_done + len(unplaceable) >= n_tasks:
                break
            # nothing left that could free resources: the rest can never be placed
            if (
                next_arrival >= n_tasks
                and pending
                and not any(self.running)
                and not len(self.transfers)
                and not any(e[2] in (_RECOVER, _LINK_RECOVER, _SITE_RECOVER) for e in self.heap)
            ):
                break

        completion = finish - tk.arrival_s + added_ms / 1000.0
        deadline = tk.deadline_s
        budget = tk.latency_budget_ms
        with np.errstate(invalid="ignore"):
            violated = (
                np.isnan(completion)
                | (~np.isnan(deadline) & (completion > deadline))
                | (~np.isnan(budget) & (lat_ms > budget))
            )
        return SimResult(
            scenario=self.scenario.name,
            seed=self.seed,
            policy=policy_name,
            completion_s=completion,
            network_ms=net_ms,
            latency_ms=lat_ms,
            violated=violated,
            decisions=len(decision_tasks),
            restarts=restarts,
            forced=forced,
            imbalance=float(np.mean(imbalance)) if imbalance else 0.0,
            sim_time_s=t,
            wall_s=time.perf_counter() - wall0,
            decision_tasks=decision_tasks,
            unplaceable=unplaceable,
        )


def simulator_for(policy: PlacementPolicy, scenario: Scenario, seed: int) -> Simulator:
    """A simulator for ``scenario``/``seed`` with ``policy`` attached when it reads simulator
    state (the greedy oracle's ``bind``)."""
    sim = Simulator(scenario, seed)
    bind = getattr(policy, "bind", None)
    if callable(bind):
        bind(sim)
    return sim


def run_policy(
    scenario: Scenario, seed: int, policy: PlacementPolicy, *, hide_work: bool = False
) -> SimResult:
    """Run one policy on one seeded scenario instance (``hide_work``: see PolicyChooser)."""
    chooser = PolicyChooser(policy, hide_work=hide_work)
    return simulator_for(policy, scenario, seed).run(chooser, policy.name)
