"""The watch cache: Nodes, Pods, EdgeNetworks and node metrics folded into a ClusterSnapshot.

Reflector threads feed raw objects in; a builder thread turns what changed into a new immutable
``ClusterSnapshot`` at most every ``min_rebuild_s``; request handlers only read
``current()``. Nothing here is called with a Kubernetes API call on the request path.

The one exception to the throttle is the extender's own placement: ``assume`` patches the
current snapshot at once (one node row, ``ClusterSnapshot.with_nodes(..., changed=[i])``), so
the next pod of a burst is scored on a cluster that already holds the previous one. The
builder later recomputes that node from the same records, so nothing is counted twice.

Load accounting (per node):

* requested = the requests of the non-terminal pods bound to it, plus pods the extender has
  *assumed* there (its top choice, until the watch shows the binding or ``assume_ttl_s``
  passes), so a burst of pods does not all pile onto the node that looked emptiest;
* usage = the last metrics.k8s.io sample plus the requests of pods bound (or assumed) since
  that sample was taken; ``None`` when metrics are not served or the sample is older than
  ``metrics_max_age_s`` (policies then fall back to requests).

Transfers in flight (per link, :mod:`edge_allocator.cluster.inflight`): the EdgeTask pods bound
or assumed lately that pull an input (their data-source and input-size annotations), replayed
in binding order at each rebuild, and again when the next is estimated to have arrived.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge_allocator.cluster.annotations import (
    ANN_DATA_SOURCE_NODE,
    ANN_DATA_SOURCE_SITE,
    DEFAULT_INTRA_LATENCY_MS,
    LABEL_MANAGED,
    LABEL_TASK,
)
from edge_allocator.cluster.inflight import (
    InflightTransfers,
    TransferStart,
    replay_estimator,
    transfer_path,
)
from edge_allocator.cluster.quantity import QuantityError, cpu_millicores, memory_mib
from edge_allocator.cluster.snapshot import ClusterSnapshot, NodeState, Site, TaskSpec
from edge_allocator.cluster.topology import UNZONED_SITE, NetworkModel
from edge_allocator.extender.nodeinfo import NodeInfo, parse_node
from edge_allocator.extender.podtask import effective_requests, input_mb_hint

log = logging.getLogger(__name__)

NODES, PODS, NETWORKS = "nodes", "pods", "edgenetworks"


def parse_time(text: str | None) -> float | None:
    """RFC 3339 timestamp to epoch seconds."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class PodInfo:
    uid: str
    node: str
    cpu_m: int
    mem_mib: int
    managed: bool
    bound_at: float
    source_site: str | None = None  # an EdgeTask pod's data source and input size
    source_node: str | None = None
    input_mb: float = 0.0

    def transfer(self) -> TransferStart:
        """Its input's transfer, started when it was bound."""
        return TransferStart(
            self.bound_at, self.uid, self.source_site, self.source_node, self.input_mb, self.node
        )


def parse_pod(obj: dict[str, Any]) -> PodInfo | None:
    """The bound, non-terminal pod's footprint, or None when it does not occupy a node."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    node = spec.get("nodeName")
    if not node or status.get("phase") in ("Succeeded", "Failed"):
        return None
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}

    def reqs(c: dict[str, Any]) -> dict[str, Any]:
        return (c.get("resources") or {}).get("requests") or {}

    try:
        cpu, mem = effective_requests(
            [reqs(c) for c in spec.get("containers") or []],
            [
                (reqs(c), c.get("restartPolicy") == "Always")
                for c in spec.get("initContainers") or []
            ],
            spec.get("overhead") or {},
            reqs(spec),
        )
    except (QuantityError, ArithmeticError):  # unreadable or out of range: count nothing
        cpu, mem = 0, 0
    bound_at = 0.0
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "True":
            bound_at = parse_time(cond.get("lastTransitionTime")) or 0.0
    annotations = meta.get("annotations") or {}
    return PodInfo(
        uid=str(meta.get("uid", "")),
        node=str(node),
        cpu_m=cpu,
        mem_mib=mem,
        managed=labels.get(LABEL_MANAGED) == "true" or LABEL_TASK in labels,
        bound_at=bound_at,
        source_site=annotations.get(ANN_DATA_SOURCE_SITE) or None,
        source_node=annotations.get(ANN_DATA_SOURCE_NODE) or None,
        input_mb=input_mb_hint(annotations),
    )


@dataclass(frozen=True, slots=True)
class Sample:
    cpu_m: int
    mem_mib: int
    at: float


@dataclass(frozen=True, slots=True)
class Assumed:
    node: str
    cpu_m: int
    mem_mib: int
    at: float
    transfer: TransferStart | None = None  # the input it pulls over the network, if any


INFLIGHT_WINDOW_S = 600.0
"""Pods bound longer ago than this are taken to have their input (the in-flight estimate
replays only the pods bound since)."""


class WatchCache:
    """Thread-safe store for reflectors plus the snapshot builder. See the module docstring."""

    def __init__(
        self,
        *,
        min_rebuild_s: float = 0.02,
        metrics_max_age_s: float = 180.0,
        assume_ttl_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        kinds: tuple[str, ...] = (NODES, PODS, NETWORKS),
        pace: Callable[[], object] | None = None,
    ) -> None:
        self.min_rebuild_s = min_rebuild_s
        self.metrics_max_age_s = metrics_max_age_s
        self.assume_ttl_s = assume_ttl_s
        self.clock = clock
        self.pace = pace
        """Called by the builder thread before each rebuild (the verb gate)."""
        self.on_publish: Callable[[], object] | None = None
        """Called by the builder thread after it published a new snapshot (the extender queues
        the policy's per-snapshot work on it, ahead of the next request)."""
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, PodInfo] = {}
        self._node_pods: dict[str, set[str]] = {}
        self._transfer_pods: dict[str, PodInfo] = {}  # bound lately and pulling an input
        self._networks: dict[str, dict[str, Any]] = {}
        self._topology = NetworkModel()
        self._samples: dict[str, Sample] = {}
        self.metrics_served: bool | None = None
        self._assumed: dict[str, Assumed] = {}
        self._states: dict[str, NodeState] = {}
        self._order: list[str] = []  # node names in snapshot order
        self._dirty: set[str] = set()
        self._full = True
        self._synced = dict.fromkeys(kinds, False)
        self._snapshot: ClusterSnapshot | None = None
        self._revision = 0
        self._built_at = 0.0
        self._inflight_next = math.inf  # when the next estimated transfer arrives
        # the last replay's estimator and the topology it numbers links by, which the
        # extender's own placements then extend (see _inflight_started_locked)
        self._inflight_est: tuple[dict[str, Any], InflightTransfers] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- what the request path reads -------------------------------------------------------

    def current(self) -> ClusterSnapshot | None:
        """The latest snapshot (None until the first full sync)."""
        return self._snapshot

    @property
    def synced(self) -> bool:
        return self._snapshot is not None

    def age_seconds(self) -> float | None:
        return None if self._snapshot is None else max(self.clock() - self._built_at, 0.0)

    def assume(
        self,
        pod_uid: str,
        node: str,
        cpu_m: int,
        mem_mib: int,
        *,
        wait: bool = True,
        task: TaskSpec | None = None,
    ) -> bool:
        """Count a pod on ``node`` until the watch reports where it really went.

        Visible to the very next ``current()``: the snapshot's row for ``node`` (and for the
        node this pod was assumed on before, if any) is patched in place of a rebuild, and so
        are the transfers in flight when ``task`` pulls an input over the network.
        ``wait=False``: give up at once (False) when the cache is busy (a rebuild or a relist
        holds it), for a caller that must not block; then nothing was assumed.
        """
        if not pod_uid:
            return True
        if not self._lock.acquire(blocking=wait):
            return False
        try:
            if pod_uid in self._pods:  # already bound: the watch was faster
                return True
            now = self.clock()
            transfer = None
            if task is not None and task.input_mb > 0:
                transfer = TransferStart(
                    now, pod_uid, task.data_source_site, task.data_source_node, task.input_mb, node
                )
            a = Assumed(node, cpu_m, mem_mib, now, transfer)
            prev = self._assumed.get(pod_uid)
            self._assumed[pod_uid] = a
            self._dirty.add(node)
            if prev is not None:
                self._dirty.add(prev.node)
            self._patch_locked(prev, a)
            return True
        finally:
            self._lock.release()

    def _patch_locked(self, prev: Assumed | None, new: Assumed) -> None:
        """Apply one assumption's change to the published snapshot (O(1) node rows; the
        transfers in flight are replayed only when this pod pulls an input)."""
        snap = self._snapshot
        if snap is None:
            return
        deltas: dict[int, tuple[int, int, int]] = {}
        for a, sign in ((prev, -1), (new, 1)):
            if a is None or not snap.has_node(a.node):
                continue
            i = snap.index_of(a.node)
            c, m, t = deltas.get(i, (0, 0, 0))
            deltas[i] = (c + sign * a.cpu_m, m + sign * a.mem_mib, t + sign)
        changed = sorted(i for i, d in deltas.items() if d != (0, 0, 0))
        if not changed:
            return
        nodes = list(snap.nodes)
        for i in changed:
            nodes[i] = nodes[i].with_pods(*deltas[i])
        inflight = None
        if prev is not None and prev.transfer is not None:
            inflight = self._inflight_locked(snap, new.at)  # moved: no way to take one back
        elif new.transfer is not None:
            inflight = self._inflight_started_locked(snap, new.transfer)
        self._revision += 1
        self._snapshot = snap.with_nodes(
            tuple(nodes),
            revision=self._revision,
            taken_at=self.clock(),
            changed=changed,
            inflight=inflight,
        )

    def pod_footprint(self, pod_uid: str) -> tuple[str, int, int] | None:
        """(node, millicores, MiB) of a bound pod the watch has seen, for what-if questions."""
        with self._lock:
            info = self._pods.get(pod_uid)
        return None if info is None else (info.node, info.cpu_m, info.mem_mib)

    # ----- reflector store interface ----------------------------------------------------------

    def replace(self, kind: str, items: list[dict[str, Any]]) -> None:
        with self._lock:
            if kind == NODES:
                self._nodes = {}
                for obj in items:
                    info = parse_node(obj)
                    self._nodes[info.name] = info
                self._full = True
            elif kind == PODS:
                self._pods, self._node_pods, self._transfer_pods = {}, {}, {}
                for obj in items:
                    self._put_pod(obj)
                self._full = True
            elif kind == NETWORKS:
                self._networks = {self._name(o): o for o in items}
                self._topology = NetworkModel.from_objects(self._networks.values())
                self._full = True
        self._wake.set()

    def upsert(self, kind: str, obj: dict[str, Any]) -> None:
        with self._lock:
            if kind == NODES:
                info = parse_node(obj)
                old = self._nodes.get(info.name)
                if old is None or (old.zone, old.node_class) != (info.zone, info.node_class):
                    self._full = True  # the node set or its place in the topology changed
                self._nodes[info.name] = info
                self._dirty.add(info.name)
            elif kind == PODS:
                self._put_pod(obj)
            elif kind == NETWORKS:
                self._networks[self._name(obj)] = obj
                self._topology = NetworkModel.from_objects(self._networks.values())
                self._full = True
        self._wake.set()

    def delete(self, kind: str, obj: dict[str, Any]) -> None:
        with self._lock:
            if kind == NODES:
                self._nodes.pop(self._name(obj), None)
                self._full = True
            elif kind == PODS:
                self._drop_pod(str((obj.get("metadata") or {}).get("uid", "")))
            elif kind == NETWORKS:
                self._networks.pop(self._name(obj), None)
                self._topology = NetworkModel.from_objects(self._networks.values())
                self._full = True
        self._wake.set()

    def mark_synced(self, kind: str) -> None:
        with self._lock:
            self._synced[kind] = True
        self._wake.set()

    def set_metrics(self, samples: dict[str, Sample] | None) -> None:
        """A metrics.k8s.io poll result; None when the API is not served."""
        with self._lock:
            self.metrics_served = samples is not None
            old = self._samples
            self._samples = samples or {}
            self._dirty.update(old.keys() | self._samples.keys())
        self._wake.set()

    @staticmethod
    def _name(obj: dict[str, Any]) -> str:
        return str((obj.get("metadata") or {}).get("name", ""))

    def _put_pod(self, obj: dict[str, Any]) -> None:
        uid = str((obj.get("metadata") or {}).get("uid", ""))
        info = parse_pod(obj)
        self._drop_pod(uid)
        if info is None:
            return
        if info.bound_at == 0.0 and self._synced.get(PODS):
            info = dataclasses.replace(info, bound_at=self.clock())
        self._pods[uid] = info
        self._node_pods.setdefault(info.node, set()).add(uid)
        if info.input_mb > 0:
            self._transfer_pods[uid] = info
        self._dirty.add(info.node)

    def _drop_pod(self, uid: str) -> None:
        old = self._pods.pop(uid, None)
        self._transfer_pods.pop(uid, None)
        if old is not None:
            self._node_pods.get(old.node, set()).discard(uid)
            self._dirty.add(old.node)
        assumed = self._assumed.pop(uid, None)
        if assumed is not None:
            self._dirty.add(assumed.node)

    # ----- the builder ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snapshot-builder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            wait = self._built_at + self.min_rebuild_s - self.clock()
            if wait > 0:
                self._stop.wait(wait)
            try:
                if self.pace is not None:
                    self.pace()
                before = self._snapshot
                snap = self.rebuild()
                if snap is not None and snap is not before and self.on_publish is not None:
                    self.on_publish()
            except Exception:  # a bad object must not kill the builder
                log.exception("snapshot rebuild failed")

    def rebuild(self) -> ClusterSnapshot | None:
        """Fold pending changes into a new snapshot (also called directly by tests)."""
        now = self.clock()
        with self._lock:
            for uid, a in list(self._assumed.items()):
                if now - a.at > self.assume_ttl_s:
                    del self._assumed[uid]
                    self._dirty.add(a.node)
            if not all(self._synced.values()):
                return None
            if (
                not self._full
                and not self._dirty
                and self._snapshot is not None
                and now < self._inflight_next
            ):
                return self._snapshot
            snap = self._build_locked(now)
            self._snapshot = snap
            self._built_at = now
            return snap

    def _build_locked(self, now: float) -> ClusterSnapshot:
        topo = self._topology
        if self._full:
            self._states = {}
            names: set[str] = set(self._nodes)
        else:
            names = self._dirty & self._nodes.keys()
        by_node_assumed: dict[str, list[Assumed]] = {}
        for a in self._assumed.values():
            by_node_assumed.setdefault(a.node, []).append(a)
        changed_names: list[str] = []
        for name in names:
            state = self._node_state(self._nodes[name], topo, by_node_assumed.get(name, ()), now)
            if self._states.get(name) != state:
                self._states[name] = state
                changed_names.append(name)
        # no state outlives its node: a node added or deleted forces a full rebuild, which
        # starts from no states, and a partial one only visits nodes that exist
        prev = self._snapshot if not self._full else None
        inflight = self._inflight_locked(prev, now) if prev is not None else ()
        if prev is not None and not changed_names and inflight == prev.inflight:
            # events that change no node's scheduler-visible state (a pod turning Running, an
            # assumption confirmed by its binding, a node heartbeat): no new revision, so
            # nothing downstream (features, embeddings) is recomputed for them
            self._dirty.clear()
            return prev
        if self._full or len(self._order) != len(self._states):
            self._order = sorted(self._states)  # the node set changes rarely: sort only then
        nodes = tuple(map(self._states.__getitem__, self._order))
        if prev is not None:  # same nodes and topology: share caches
            # the rebuilt nodes' indices let feature arrays be patched row-wise, not rebuilt
            changed = sorted(prev.index_of(n) for n in changed_names)
            snap = prev.with_nodes(
                nodes, revision=self._revision + 1, taken_at=now, changed=changed, inflight=inflight
            )
        else:
            sites = dict(topo.sites)
            for st in nodes:
                if st.site not in sites:
                    sites[st.site] = Site(st.site, DEFAULT_INTRA_LATENCY_MS)
            snap = ClusterSnapshot(
                nodes=nodes,
                sites=tuple(sites[s] for s in sorted(sites)),
                links=topo.links,
                taken_at=now,
                revision=self._revision + 1,
            )
            # a new topology numbers its links anew: the transfers are replayed over it
            snap = snap.with_nodes(
                nodes,
                revision=snap.revision,
                taken_at=now,
                inflight=self._inflight_locked(snap, now),
            )
        # only now that the snapshot exists: a failure above leaves the work to the next call
        self._dirty.clear()
        self._full = False
        self._revision += 1
        return snap

    def _inflight_locked(self, snap: ClusterSnapshot, now: float) -> tuple[int, ...]:
        """Input transfers estimated in flight at ``now`` over ``snap``'s links: the pods bound
        (or assumed) in the last :data:`INFLIGHT_WINDOW_S` that pull an input, replayed in
        order (:func:`edge_allocator.cluster.inflight.replay`); also notes when the next one
        is due to arrive, so the builder publishes the change then."""
        since = now - INFLIGHT_WINDOW_S
        for uid in [u for u, p in self._transfer_pods.items() if p.bound_at < since]:
            del self._transfer_pods[uid]  # arrived long ago: never counted again
        starts = [p.transfer() for p in self._transfer_pods.values()]
        starts += [
            a.transfer for a in self._assumed.values() if a.transfer is not None and a.at >= since
        ]
        if not starts:
            self._inflight_next = math.inf
            self._inflight_est = None
            return ()
        est, later = replay_estimator(snap, starts, now)
        counts = est.counts(now)
        self._inflight_next = min(est.next_arrival(), later)
        self._inflight_est = (snap.topology_cache, est)
        return counts

    def _inflight_started_locked(
        self, snap: ClusterSnapshot, start: TransferStart
    ) -> tuple[int, ...]:
        """The counts with one more assumed transfer, added to the last replay's estimator (an
        assumption is the newest start, so this equals a replay; O(path), not O(pods), on the
        request path), or by a replay when there is none for this topology."""
        kept = self._inflight_est
        if kept is None or kept[0] is not snap.topology_cache:
            return self._inflight_locked(snap, start.at)
        est = kept[1]
        est.start(start.at, transfer_path(snap, start), start.input_mb * 8.0)
        self._inflight_next = min(self._inflight_next, est.next_arrival())
        return est.counts(start.at)

    def _node_state(
        self, info: NodeInfo, topo: NetworkModel, assumed: Any, now: float
    ) -> NodeState:
        cpu = mem = tasks = 0
        sample = self._samples.get(info.name)
        fresh = sample is not None and now - sample.at <= self.metrics_max_age_s
        extra_cpu = extra_mem = 0
        for uid in self._node_pods.get(info.name, ()):
            p = self._pods[uid]
            cpu += p.cpu_m
            mem += p.mem_mib
            tasks += p.managed
            if fresh and sample is not None and p.bound_at > sample.at:
                extra_cpu += p.cpu_m
                extra_mem += p.mem_mib
        for a in assumed:
            cpu += a.cpu_m
            mem += a.mem_mib
            tasks += 1
            extra_cpu += a.cpu_m
            extra_mem += a.mem_mib
        return NodeState(
            name=info.name,
            site=topo.site_of(info.name, info.zone) or UNZONED_SITE,
            node_class=topo.class_of(info.name, info.node_class),
            cpu_capacity_m=info.cpu_capacity_m,
            mem_capacity_mib=info.mem_capacity_mib,
            cpu_allocatable_m=info.cpu_allocatable_m,
            mem_allocatable_mib=info.mem_allocatable_mib,
            cpu_requested_m=cpu,
            mem_requested_mib=mem,
            cpu_usage_m=sample.cpu_m + extra_cpu if fresh and sample else None,
            mem_usage_mib=sample.mem_mib + extra_mem if fresh and sample else None,
            running_tasks=tasks,
            ready=info.ready,
        )


def parse_node_metrics(items: list[dict[str, Any]]) -> dict[str, Sample]:
    """metrics.k8s.io NodeMetrics items to samples (unparsable items are skipped)."""
    out: dict[str, Sample] = {}
    for obj in items:
        try:
            name = str(obj["metadata"]["name"])
            usage = obj.get("usage") or {}
            at = parse_time(obj.get("timestamp")) or 0.0
            out[name] = Sample(cpu_millicores(usage["cpu"]), memory_mib(usage["memory"]), at)
        except (KeyError, TypeError, QuantityError, ArithmeticError):
            continue
    return out
