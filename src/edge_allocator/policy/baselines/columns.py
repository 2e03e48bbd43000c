"""Vectorised scoring for the baselines: the node numbers they read, per decision, as arrays.

A baseline's ``score(snapshot, task, candidates)`` is the reference: a loop over candidate
names, formula by formula. ``score_view(view, task, nodes)`` computes the same numbers for the
candidates' node indices with numpy or a compiled loop (numba), in float64 and in the same
order of operations, so every score is bit for bit the loop's (integers below 2**53 are exact
in float64, and IEEE +, -, *, /, min and max round alike in both).

A :class:`ColumnView` is what those fast paths read: the node columns, the site arrays, the
bandwidth a new transfer can expect, and the revision. :class:`SnapshotView` reads them off a
:class:`ClusterSnapshot`; the simulator keeps its own columns up to date as tasks come and go
and hands them over without building a snapshot at all (``Simulator.column_view``), which is
most of what makes a heuristic's decision cheap there. The simulator's
:class:`~edge_allocator.sim.engine.PolicyChooser` calls ``score_view`` when a policy has it;
``tests/unit/test_sim_vectorised.py`` checks both views give the loop's scores.

:func:`node_columns` is cached on the snapshot. A snapshot made with
``with_nodes(..., changed=...)`` from one whose columns exist takes the parent's array over
and rewrites only the changed nodes, so a producer that emits one snapshot per decision pays
O(changed) per decision, not O(nodes). The parent's columns are then stale: read again, they
are rebuilt from the parent's own nodes (never wrong, only slower), which a producer that
moves forward one snapshot at a time never does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_allocator.cluster.snapshot import INCREMENTAL_KEY, ClusterSnapshot, NodeState, TaskSpec

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

COLUMNS_KEY = "baselines.columns"
TOPOLOGY_KEY = "baselines.topology"

# rows of NodeColumns.data, ordered so that each policy reads one contiguous block
CPU_USED, CPU_ALLOC, CPU_ALLOC1, MEM_ALLOC1, CPU_REQ, MEM_REQ, CPU_USAGE, MEM_ALLOC = range(8)
_ROWS = 8


def _row(nd: NodeState) -> tuple[float, ...]:
    return (
        nd.cpu_used_m,
        nd.cpu_allocatable_m,
        max(nd.cpu_allocatable_m, 1),
        max(nd.mem_allocatable_mib, 1),
        nd.cpu_requested_m,
        nd.mem_requested_mib,
        np.nan if nd.cpu_usage_m is None else nd.cpu_usage_m,
        nd.mem_allocatable_mib,
    )


class _Buffer:
    """One array of columns and the :class:`NodeColumns` whose values it holds now."""

    __slots__ = ("data", "owner")

    def __init__(self, data: F64) -> None:
        self.data = data
        self.owner: NodeColumns | None = None


class NodeColumns:
    """``data[row, node]`` (float64) for the rows named above: used CPU (measured, else
    requested), allocatable CPU, allocatable CPU and memory floored at 1 (the divisors
    kube-scheduler uses), requests, measured CPU (nan without a measurement), allocatable
    memory."""

    __slots__ = ("_buf",)

    def __init__(self, buf: _Buffer) -> None:
        self._buf = buf
        buf.owner = self

    @property
    def valid(self) -> bool:
        """False once a later snapshot's columns took the array over."""
        return self._buf.owner is self

    @property
    def data(self) -> F64:
        return self._buf.data


def node_rows(nodes: Sequence[NodeState]) -> F64:
    """The columns of ``nodes`` as a new (rows, nodes) array."""
    n = len(nodes)
    data = np.array([_row(nd) for nd in nodes], dtype=np.float64).reshape(n, _ROWS)
    out: F64 = np.ascontiguousarray(data.T)
    return out


def _full(nodes: Sequence[NodeState]) -> NodeColumns:
    return NodeColumns(_Buffer(node_rows(nodes)))


def node_columns(snapshot: ClusterSnapshot) -> NodeColumns:
    """The snapshot's node columns (cached on it; see the module docstring)."""
    cache = snapshot.derived_cache
    cached: NodeColumns | None = cache.get(COLUMNS_KEY)
    if cached is not None and cached.valid:
        return cached
    inc: tuple[dict[str, object], tuple[int, ...]] | None = cache.get(INCREMENTAL_KEY)
    parent = inc[0].get(COLUMNS_KEY) if inc is not None and cached is None else None
    if inc is not None and isinstance(parent, NodeColumns) and parent.valid:
        buf = parent._buf
        data, nodes = buf.data, snapshot.nodes
        for i in inc[1]:
            data[:, i] = _row(nodes[i])
        cols = NodeColumns(buf)  # the parent's columns are stale from here on
    else:
        cols = _full(snapshot.nodes)
    cache[COLUMNS_KEY] = cols
    return cols


@dataclass(frozen=True)
class SiteArrays:
    """Per topology: each node's site index and the all-pairs path latency (float64, as
    :meth:`ClusterSnapshot.site_latency_ms` returns it). Bandwidth is per snapshot
    (:meth:`ClusterSnapshot.available_bandwidth_row`): transfers in flight share it."""

    node_site: I64
    latency_ms: F64


def site_arrays(snapshot: ClusterSnapshot) -> SiteArrays:
    """Topology arrays (cached on the snapshot family)."""
    cached: SiteArrays | None = snapshot.topology_cache.get(TOPOLOGY_KEY)
    if cached is not None:
        return cached
    idx = snapshot.site_index
    lat_rows, _ = snapshot.site_path_matrices()  # [i][j] by site index
    lat = np.array(lat_rows, np.float64)
    s = len(snapshot.sites)
    arrays = SiteArrays(
        np.array([idx[nd.site] for nd in snapshot.nodes], dtype=np.int64), lat.reshape(s, s)
    )
    snapshot.topology_cache[TOPOLOGY_KEY] = arrays
    return arrays


class ColumnView(Protocol):
    """What a baseline's fast path reads at one decision. ``data``: :class:`NodeColumns`'
    rows by node, valid for the decision it was handed over for (a producer may update the
    array in place afterwards); ``revision``: the snapshot revision it shows."""

    @property
    def data(self) -> F64: ...

    @property
    def revision(self) -> int: ...

    @property
    def sites(self) -> SiteArrays: ...

    @property
    def site_index(self) -> Mapping[str, int]: ...

    def node_index(self, name: str) -> int:
        """The node's index, -1 when no node has that name."""
        ...

    def bandwidth_row(self, site: int) -> F64:
        """:meth:`ClusterSnapshot.available_bandwidth_row` from site index ``site``."""
        ...


class SnapshotView:
    """A :class:`ColumnView` of one snapshot (its columns are built on first read)."""

    __slots__ = ("snapshot",)

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot = snapshot

    @property
    def data(self) -> F64:
        return node_columns(self.snapshot).data

    @property
    def revision(self) -> int:
        return self.snapshot.revision

    @property
    def sites(self) -> SiteArrays:
        return site_arrays(self.snapshot)

    @property
    def site_index(self) -> Mapping[str, int]:
        return self.snapshot.site_index

    def node_index(self, name: str) -> int:
        return self.snapshot.index_of(name) if self.snapshot.has_node(name) else -1

    def bandwidth_row(self, site: int) -> F64:
        row: F64 = self.snapshot.available_bandwidth_row(site)
        return row


def source_index(view: ColumnView, task: TaskSpec) -> int:
    """The index of the task's source node, -1 when it has none among the nodes."""
    src = task.data_source_node
    return -1 if src is None else view.node_index(src)


def site_latency(view: ColumnView, task: TaskSpec, nodes: I64) -> F64:
    """Path latency from the task's data site to each node's site (0.0 not applied for the
    source node: callers that want it set it)."""
    sa = view.sites
    row = sa.latency_ms[view.site_index[task.data_source_site]]
    out: F64 = row[sa.node_site[nodes]]
    return out


def network_time_ms(view: ColumnView, task: TaskSpec, nodes: I64) -> F64:
    """:meth:`ClusterSnapshot.network_time_ms` for each node: 0 on the source node, else
    latency plus the input over the path's available bandwidth."""
    sa = view.sites
    s = view.site_index[task.data_source_site]
    # over an unbounded bandwidth (within a site) the transfer is x / inf * 1000 = 0.0, the
    # loop's 0.0; an unreachable site (bandwidth 0) gives inf, where the loop would raise
    with np.errstate(divide="ignore", invalid="ignore"):
        per_site = task.input_mb * 8.0 / view.bandwidth_row(s)
    per_site *= 1000.0
    per_site += sa.latency_ms[s]
    out: F64 = per_site.take(sa.node_site[nodes])
    src = source_index(view, task)
    if src >= 0:
        out[nodes == src] = 0.0
    return out


def is_source(view: ColumnView, task: TaskSpec, nodes: I64) -> npt.NDArray[np.bool_]:
    """Whether each node is the task's source node."""
    src = source_index(view, task)
    if src < 0:
        return np.zeros(nodes.shape[0], dtype=bool)
    same: npt.NDArray[np.bool_] = nodes == src
    return same


def least_allocated(data: F64, task: TaskSpec, nodes: I64) -> F64:
    """:func:`~edge_allocator.policy.baselines.kube_default.least_allocated` per node
    (``data``: :class:`NodeColumns` rows)."""
    ca, ma, cr, mr = data[CPU_ALLOC1 : MEM_REQ + 1].take(nodes, axis=1)
    cpu = np.maximum(ca - cr - task.cpu_request_m, 0.0) * 100.0 / ca
    mem = np.maximum(ma - mr - task.mem_request_mib, 0.0) * 100.0 / ma
    out: F64 = (cpu + mem) / 2.0
    return out


def balanced_allocation(data: F64, task: TaskSpec, nodes: I64) -> F64:
    """:func:`~edge_allocator.policy.baselines.kube_default.balanced_allocation` per node
    (``data``: :class:`NodeColumns` rows)."""
    ca, ma, cr, mr = data[CPU_ALLOC1 : MEM_REQ + 1].take(nodes, axis=1)
    f_cpu = np.minimum((cr + task.cpu_request_m) / ca, 1.0)
    f_mem = np.minimum((mr + task.mem_request_mib) / ma, 1.0)
    out: F64 = (1.0 - np.abs(f_cpu - f_mem) / 2.0) * 100.0
    return out
