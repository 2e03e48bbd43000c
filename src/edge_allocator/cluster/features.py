"""The one feature builder: snapshot + task + candidates -> graph and candidate arrays.

The simulator (training, evaluation) and the extender (serving) both call this module, so a
policy sees identical numbers in both places. Everything is scale-free (fractions, log-scaled
capacities and latencies) so one model serves clusters of any size. Arrays are numpy float32;
the policy turns them into tensors.

Work is split by what it depends on, so a server can cache it:

* topology arrays (sites, links, node -> site): once per topology;
* node arrays (load, readiness): once per ``snapshot`` object (i.e. per revision);
* candidate arrays (task-conditioned): per request, vectorised over candidates.

Bump :data:`FEATURE_SCHEMA_VERSION` whenever the meaning or order of any column changes; model
files record the version they were trained with and refuse to load against another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_allocator.cluster.snapshot import INCREMENTAL_KEY, ClusterSnapshot, NodeState, TaskSpec

FEATURE_SCHEMA_VERSION = 1

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

BURST_FACTOR = 2.0
"""A task may use up to this many times its CPU request (its limit), as in the simulator."""

NODE_FEATURES = (
    "log_cpu_alloc",  # log1p(cores) / log1p(64)
    "log_mem_alloc",  # log1p(GiB) / log1p(256)
    "cpu_req_frac",  # requested / allocatable, clipped to [0, 2]
    "mem_req_frac",
    "cpu_used_frac",  # measured (or requested) / allocatable, clipped to [0, 2]
    "mem_used_frac",
    "has_usage",  # 1 when metrics are fresh
    "tasks_per_core",  # running tasks / cores / 4, clipped to [0, 2]
    "ready",
    "log_free_cores",  # log1p(free requested cores) / log1p(64)
    "unrequested_load",  # max(used - requested, 0) / allocatable: load requests do not show
)
SITE_FEATURES = (
    "log_nodes",  # log1p(nodes at site) / log1p(100)
    "log_intra_latency",  # log1p(ms) / log1p(100)
    "log_cores",  # log1p(total allocatable cores) / log1p(1000)
    "log_degree",  # log1p(links) / log1p(16)
)
EDGE_FEATURES = (
    "node_to_site",
    "site_to_node",
    "site_to_site",
    "log_latency",  # log1p(ms) / log1p(1000)
    "log_bandwidth",  # log1p(Mbps) / log1p(100000)
)
TASK_FEATURES = (
    "log_cpu_request",  # log1p(cores)
    "log_mem_request",  # log1p(GiB)
    "log_input",  # log1p(MB) / log1p(1000)
    "log_work",  # log1p(cpu-seconds) / log1p(100), 0 when unknown
    "has_work",
    "log_budget",  # log1p(ms) / log1p(1000), 0 when none
    "has_budget",
)
CANDIDATE_FEATURES = (
    "log_latency",  # shortest-path latency from the data source, log1p(ms) / log1p(1000)
    "log_transfer",  # input over the path's available bandwidth, log1p(ms) / log1p(1e4)
    "log_network",  # latency + transfer, log1p(ms) / log1p(1e4)
    "same_site",
    "is_source_node",
    "proj_cpu_req_frac",  # (requested + task) / allocatable, clipped to [0, 2]
    "proj_mem_req_frac",
    "proj_cpu_used_frac",  # (used + task) / allocatable, clipped to [0, 2]
    "task_cpu_frac",  # task request / allocatable
    "within_budget",  # path latency within the task's latency budget (1 when no budget)
    "log_exec",  # estimated execution seconds at the free measured CPU, log1p / log1p(1000)
    "log_completion",  # network + estimated execution, log1p(s) / log1p(1000)
    "rel_network",  # (x - min) / (max - min) over the candidates
    "rel_completion",
)
NODE_DIM = len(NODE_FEATURES)
SITE_DIM = len(SITE_FEATURES)
EDGE_DIM = len(EDGE_FEATURES)
TASK_DIM = len(TASK_FEATURES)
CAND_DIM = len(CANDIDATE_FEATURES)

_L64 = math.log1p(64.0)
_L256 = math.log1p(256.0)
_L100 = math.log1p(100.0)
_L1000 = math.log1p(1000.0)
_L1E4 = math.log1p(1e4)
_L1E5 = math.log1p(1e5)
_L16 = math.log1p(16.0)


def feature_schema() -> dict[str, object]:
    """The schema a model file records (version plus column names, for humans and checks)."""
    return {
        "version": FEATURE_SCHEMA_VERSION,
        "node": list(NODE_FEATURES),
        "site": list(SITE_FEATURES),
        "edge": list(EDGE_FEATURES),
        "task": list(TASK_FEATURES),
        "candidate": list(CANDIDATE_FEATURES),
        "burst_factor": BURST_FACTOR,
    }


@dataclass(frozen=True)
class TopologyArrays:
    """Arrays fixed by sites, links and node placement (shared across revisions)."""

    node_site: I64  # (N,) site index of each node
    site_latency_ms: F32  # (S, S) shortest-path latency (intra-site latency on the diagonal)
    site_bandwidth_mbps: F32  # (S, S) declared bottleneck (the site's intra bandwidth or inf)
    site_x: F32  # (S, SITE_DIM)
    edge_index: I64  # (2, E) over vertices [nodes 0..N-1, sites N..N+S-1]
    edge_attr: F32  # (E, EDGE_DIM)


@dataclass(frozen=True)
class NodeArrays:
    """Per-snapshot node arrays (raw units for candidate features, plus the model's node_x)."""

    cpu_alloc_m: F32
    mem_alloc_mib: F32
    cpu_req_m: F32
    mem_req_mib: F32
    cpu_used_m: F32
    ready: F32
    node_x: F32  # (N, NODE_DIM)
    raw: F32  # (N, 9) the raw columns node_x is computed from


@dataclass(frozen=True)
class CandidateArrays:
    """Task-conditioned features for one request."""

    index: I64  # (K,) node index of each candidate in the snapshot
    cand_x: F32  # (K, CAND_DIM)
    task_x: F32  # (TASK_DIM,)
    network_ms: F32  # (K,) raw network time, handy for heuristics and reports
    exec_s: F32  # (K,) raw estimated execution time (per CPU-second of work when unknown)


def topology_arrays(snapshot: ClusterSnapshot) -> TopologyArrays:
    """Topology arrays, computed once per topology and cached on the snapshot family."""
    cached: TopologyArrays | None = snapshot.topology_cache.get("features.topology")
    if cached is not None:
        return cached
    site_idx = snapshot.site_index
    n, s = len(snapshot.nodes), len(snapshot.sites)
    node_site = np.fromiter((site_idx[nd.site] for nd in snapshot.nodes), dtype=np.int64, count=n)
    lat_rows, bw_rows = snapshot.site_path_matrices()  # [i][j] by site index, as here
    lat = np.array(lat_rows, dtype=np.float32).reshape(s, s)
    bw = np.array(bw_rows, dtype=np.float32).reshape(s, s)
    counts = np.bincount(node_site, minlength=s).astype(np.float32)
    cores = np.zeros(s, dtype=np.float32)
    np.add.at(
        cores,
        node_site,
        np.array([nd.cpu_allocatable_m / 1000.0 for nd in snapshot.nodes], dtype=np.float32),
    )
    degree = np.zeros(s, dtype=np.float32)
    for link in snapshot.links:
        degree[site_idx[link.a]] += 1
        degree[site_idx[link.b]] += 1
    intra = np.array([st.intra_latency_ms for st in snapshot.sites], dtype=np.float32)
    site_x = np.stack(
        [
            np.log1p(counts) / _L100,
            np.log1p(intra) / _L100,
            np.log1p(cores) / _L1000,
            np.log1p(degree) / _L16,
        ],
        axis=1,
    ).astype(np.float32)

    src: list[int] = []
    dst: list[int] = []
    attrs: list[list[float]] = []
    for i in range(n):
        si = n + int(node_site[i])
        src += [i, si]
        dst += [si, i]
        attrs.append([1.0, 0.0, 0.0, 0.0, 1.0])
        attrs.append([0.0, 1.0, 0.0, 0.0, 1.0])
    for link in snapshot.links:
        va, vb = n + site_idx[link.a], n + site_idx[link.b]
        feat = [
            0.0,
            0.0,
            1.0,
            math.log1p(link.latency_ms) / _L1000,
            math.log1p(link.bandwidth_mbps) / _L1E5,
        ]
        src += [va, vb]
        dst += [vb, va]
        attrs += [feat, feat]
    edge_index = np.array([src, dst], dtype=np.int64).reshape(2, -1)
    edge_attr = np.array(attrs, dtype=np.float32).reshape(-1, EDGE_DIM)
    topo = TopologyArrays(node_site, lat, bw, site_x, edge_index, edge_attr)
    snapshot.topology_cache["features.topology"] = topo
    return topo


def _raw_rows(nodes: Sequence[NodeState]) -> F32:
    return np.array(
        [
            (
                nd.cpu_allocatable_m,
                nd.mem_allocatable_mib,
                nd.cpu_requested_m,
                nd.mem_requested_mib,
                nd.cpu_used_m,
                nd.mem_used_mib,
                nd.cpu_usage_m is not None,
                nd.running_tasks,
                nd.ready,
            )
            for nd in nodes
        ],
        dtype=np.float32,
    ).reshape(len(nodes), 9)


def _node_x(raw: F32) -> tuple[F32, F32, F32]:
    cpu_alloc = np.maximum(raw[:, 0], 1.0)
    mem_alloc = np.maximum(raw[:, 1], 1.0)
    cores = cpu_alloc / 1000.0
    node_x = np.empty((raw.shape[0], NODE_DIM), dtype=np.float32)
    node_x[:, 0] = np.log1p(cores) / _L64
    node_x[:, 1] = np.log1p(mem_alloc / 1024.0) / _L256
    node_x[:, 2] = np.clip(raw[:, 2] / cpu_alloc, 0.0, 2.0)
    node_x[:, 3] = np.clip(raw[:, 3] / mem_alloc, 0.0, 2.0)
    node_x[:, 4] = np.clip(raw[:, 4] / cpu_alloc, 0.0, 2.0)
    node_x[:, 5] = np.clip(raw[:, 5] / mem_alloc, 0.0, 2.0)
    node_x[:, 6] = raw[:, 6]
    node_x[:, 7] = np.clip(raw[:, 7] / np.maximum(cores, 0.1) / 4.0, 0.0, 2.0)
    node_x[:, 8] = raw[:, 8]
    node_x[:, 9] = np.log1p(np.maximum(cpu_alloc - raw[:, 2], 0.0) / 1000.0) / _L64
    node_x[:, 10] = np.clip(np.maximum(raw[:, 4] - raw[:, 2], 0.0) / cpu_alloc, 0.0, 2.0)
    return cpu_alloc, mem_alloc, node_x


NODE_ARRAYS_KEY = "features.nodes"
"""Where a snapshot's :func:`node_arrays` are cached (its ``derived_cache``)."""


def node_arrays(snapshot: ClusterSnapshot) -> NodeArrays:
    """Node arrays for this snapshot (cached on it; updated row-wise from the parent snapshot
    when it was made with ``with_nodes(changed=...)`` and the parent's arrays exist)."""
    cache = snapshot.derived_cache
    cached: NodeArrays | None = cache.get(NODE_ARRAYS_KEY)
    if cached is not None:
        return cached
    inc = cache.pop(INCREMENTAL_KEY, None)
    parent: NodeArrays | None = inc[0].get(NODE_ARRAYS_KEY) if inc is not None else None
    if inc is not None and parent is not None:
        # every derived column is a function of its own row: only the changed rows are redone
        raw = parent.raw.copy()
        cpu_alloc, mem_alloc = parent.cpu_alloc_m.copy(), parent.mem_alloc_mib.copy()
        node_x = parent.node_x.copy()
        idx = list(inc[1])
        if idx:
            raw[idx] = _raw_rows([snapshot.nodes[i] for i in idx])
            cpu_alloc[idx], mem_alloc[idx], node_x[idx] = _node_x(raw[idx])
    else:
        raw = _raw_rows(snapshot.nodes)
        cpu_alloc, mem_alloc, node_x = _node_x(raw)
    arrays = NodeArrays(
        cpu_alloc, mem_alloc, raw[:, 2], raw[:, 3], raw[:, 4], raw[:, 8], node_x, raw
    )
    cache[NODE_ARRAYS_KEY] = arrays
    return arrays


def task_vector(task: TaskSpec) -> F32:
    """The task's own features (independent of the candidates)."""
    work = task.work_cpu_s
    budget = task.latency_budget_ms
    return np.array(
        [
            math.log1p(task.cpu_request_m / 1000.0),
            math.log1p(task.mem_request_mib / 1024.0),
            math.log1p(max(task.input_mb, 0.0)) / _L1000,
            0.0 if work is None else math.log1p(max(work, 0.0)) / _L100,
            0.0 if work is None else 1.0,
            0.0 if budget is None else math.log1p(max(budget, 0.0)) / _L1000,
            0.0 if budget is None else 1.0,
        ],
        dtype=np.float32,
    )


def _relative(x: F32) -> F32:
    lo = float(x.min()) if x.size else 0.0
    span = float(x.max()) - lo if x.size else 0.0
    if span <= 1e-9:
        return np.zeros_like(x)
    return ((x - lo) / span).astype(np.float32)


def candidate_arrays(
    snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
) -> CandidateArrays:
    """Task-conditioned per-candidate features, vectorised over the candidates."""
    topo = topology_arrays(snapshot)
    na = node_arrays(snapshot)
    # a producer that has the candidates' node indices already (the simulator's candidate
    # list, the extender's IndexedNames carry them as ``nodes``) saves the name lookups
    known = getattr(candidates, "nodes", None)
    if (
        isinstance(known, np.ndarray)
        and known.dtype == np.int64
        and len(known) == len(candidates)
        and getattr(candidates, "order", snapshot.node_order) is snapshot.node_order
    ):
        index: I64 = known
    else:
        index = snapshot.indices_of(candidates)
    src_site = snapshot.site_index[task.data_source_site]
    cand_site = topo.node_site[index]
    # the network columns depend on the candidate's site alone: computed per site (S values)
    # and gathered once, then corrected on the source node (no network at all there)
    lat_s = topo.site_latency_ms[src_site]
    # what the path has available: its declared bottleneck, shared with transfers in flight
    bw_s = snapshot.available_bandwidth_row(src_site).astype(np.float32)
    with np.errstate(divide="ignore"):
        transfer_s = np.where(np.isinf(bw_s), 0.0, task.input_mb * 8000.0 / np.maximum(bw_s, 1e-6))
    network_s = (lat_s + transfer_s).astype(np.float32)
    budget = task.latency_budget_ms
    per_site = np.empty((5, lat_s.shape[0]), dtype=np.float32)
    per_site[0] = np.log1p(np.minimum(lat_s, 1e6)) / _L1000
    per_site[1] = np.log1p(np.minimum(transfer_s, 1e7)) / _L1E4
    per_site[2] = np.log1p(np.minimum(network_s, 1e7)) / _L1E4
    per_site[3] = 0.0
    per_site[3, src_site] = 1.0
    per_site[4] = 1.0 if budget is None else lat_s <= budget
    gathered = per_site.take(cand_site, axis=1)
    network = network_s[cand_site]

    k = len(candidates)
    # built row by row (contiguous writes) and handed out transposed: (K, CAND_DIM)
    rows = np.empty((CAND_DIM, k), dtype=np.float32)
    rows[0:4] = gathered[0:4]
    rows[9] = gathered[4]
    src_idx = -1
    if task.data_source_node is not None and snapshot.has_node(task.data_source_node):
        src_idx = snapshot.index_of(task.data_source_node)
    is_source = index == src_idx
    rows[4] = is_source
    if src_idx >= 0 and is_source.any():
        network[is_source] = 0.0
        rows[0:3, is_source] = 0.0  # log1p(0)
        if budget is not None:
            rows[9, is_source] = budget >= 0.0

    cpu_alloc = na.cpu_alloc_m[index]
    mem_alloc = na.mem_alloc_mib[index]
    used = na.cpu_used_m[index]
    req_cores = task.cpu_request_m / 1000.0
    limit = max(req_cores * BURST_FACTOR, 0.05)
    free_cores = np.maximum((cpu_alloc - used) / 1000.0, 0.1 * req_cores + 0.01)
    rate = np.minimum(limit, free_cores)
    work = task.work_cpu_s if task.work_cpu_s is not None else 1.0
    exec_s = (work / rate).astype(np.float32)
    completion_s = network / 1000.0 + exec_s

    np.clip((na.cpu_req_m[index] + task.cpu_request_m) / cpu_alloc, 0.0, 2.0, out=rows[5])
    np.clip((na.mem_req_mib[index] + task.mem_request_mib) / mem_alloc, 0.0, 2.0, out=rows[6])
    np.clip((used + task.cpu_request_m) / cpu_alloc, 0.0, 2.0, out=rows[7])
    np.clip(task.cpu_request_m / cpu_alloc, 0.0, 2.0, out=rows[8])
    rows[10] = np.log1p(exec_s) / _L1000
    rows[11] = np.log1p(np.minimum(completion_s, 1e6)) / _L1000
    rows[12] = _relative(rows[2])
    rows[13] = _relative(rows[11])
    return CandidateArrays(index, rows.T, task_vector(task), network, exec_s)


def build_features(
    snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
) -> tuple[TopologyArrays, NodeArrays, CandidateArrays]:
    """Everything a policy needs for one decision."""
    return (
        topology_arrays(snapshot),
        node_arrays(snapshot),
        candidate_arrays(snapshot, task, candidates),
    )
