"""Input transfers a placement set in motion, and which of them are estimated in flight now.

Links between edge sites congest: a task placed away from its data pulls its input over every
link on the path, and so does each task placed there before it. No metric reports what a link
carries right now, but the placer knows what it started: each placement names the path (the
data's site to the node's) and the input's size. Like kube-scheduler's assumed pods, which count
a pod's requests before the kubelet reports it, this estimate counts a transfer from its
placement until it should have arrived, so the next decision sees the link as shared.

The estimate: a transfer started at ``t`` over links ``L`` expects the path's bottleneck of
``bandwidth / (1 + transfers in flight)`` per link at ``t`` (the max-min share it would get if
nothing else changed), so it is in flight until ``t + megabits / that share``. Counts go up at
placement and down at the estimated arrival. The simulator and the extender both run it over
the placements they know, and a snapshot carries the counts (``ClusterSnapshot.inflight``).

Pure and deterministic: the same placements in the same order give the same counts.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge_allocator.cluster.snapshot import ClusterSnapshot


class InflightTransfers:
    """Counts of transfers estimated in flight per link (``ClusterSnapshot.transfer_links``
    numbering), updated as placements start transfers and estimated arrivals pass."""

    def __init__(self, capacity_mbps: Sequence[float]) -> None:
        self.capacity = list(capacity_mbps)
        self._count = [0] * len(self.capacity)
        self._ends: list[tuple[float, int, tuple[int, ...]]] = []  # (arrival, seq, links)
        self._seq = 0
        self._counts: tuple[int, ...] | None = ()

    def __len__(self) -> int:
        """Transfers in flight (those not yet expired)."""
        return len(self._ends)

    def start(self, t: float, links: tuple[int, ...], megabits: float) -> float:
        """Record a transfer of ``megabits`` over ``links`` starting at ``t``; returns its
        estimated arrival (``t`` when nothing crosses a link)."""
        self.expire(t)
        if not links or megabits <= 0:
            return t
        share = min(self.capacity[k] / (1 + self._count[k]) for k in links)
        arrival = t + megabits / share
        self._seq += 1
        heapq.heappush(self._ends, (arrival, self._seq, links))
        for k in links:
            self._count[k] += 1
        self._counts = None
        return arrival

    def expire(self, t: float) -> None:
        """Drop the transfers estimated to have arrived by ``t``."""
        ends = self._ends
        while ends and ends[0][0] <= t:
            _, _, links = heapq.heappop(ends)
            for k in links:
                self._count[k] -= 1
            self._counts = None

    def counts(self, t: float) -> tuple[int, ...]:
        """Transfers in flight per link at ``t`` (the same tuple object until they change;
        empty when none are)."""
        self.expire(t)
        if self._counts is None:
            self._counts = tuple(self._count) if self._ends else ()
        return self._counts

    def next_arrival(self) -> float:
        """When the next transfer is estimated to arrive (``inf`` when none is in flight)."""
        return self._ends[0][0] if self._ends else math.inf


@dataclass(frozen=True, slots=True)
class TransferStart:
    """A placement that pulls a task's input: when, from where (site, optional node), how much,
    and to which node (the extender's record of a bound or assumed pod)."""

    at: float
    key: str  # a tie-break that orders equal times the same way every time (the pod's uid)
    source_site: str | None
    source_node: str | None
    input_mb: float
    node: str


def transfer_path(snapshot: ClusterSnapshot, start: TransferStart) -> tuple[int, ...]:
    """The links the input crosses (``ClusterSnapshot.transfer_links`` numbering); none when it
    stays on its node, or when a site or node is unknown to the snapshot."""
    if start.node == start.source_node or not snapshot.has_node(start.node):
        return ()
    site = start.source_site
    if site is None and start.source_node is not None and snapshot.has_node(start.source_node):
        site = snapshot.node(start.source_node).site
    idx = snapshot.site_index
    if site not in idx:
        return ()
    paths, _ = snapshot.transfer_links()
    return paths[idx[site]][idx[snapshot.node(start.node).site]]


def replay(
    snapshot: ClusterSnapshot, starts: Iterable[TransferStart], now: float
) -> tuple[tuple[int, ...], float]:
    """The counts in flight at ``now`` after the given placements (in time order, ties by key),
    and when they next change (an estimated arrival, or a start stamped later than ``now`` by
    a clock ahead of this one, which counts from then): what a placer that keeps only its
    pods (not its estimator) reconstructs."""
    est, later = replay_estimator(snapshot, starts, now)
    return est.counts(now), min(est.next_arrival(), later)


def replay_estimator(
    snapshot: ClusterSnapshot, starts: Iterable[TransferStart], now: float
) -> tuple[InflightTransfers, float]:
    """:func:`replay`'s estimator itself (to go on with placements made after ``now``), and
    the earliest start it left for later."""
    _, capacity = snapshot.transfer_links()
    est = InflightTransfers(capacity)
    later = math.inf
    for s in sorted(starts, key=lambda s: (s.at, s.key)):
        links = transfer_path(snapshot, s)
        if not links or s.input_mb <= 0:
            continue
        if s.at > now:
            later = min(later, s.at)
            continue
        est.start(s.at, links, s.input_mb * 8.0)
    return est, later


def inflight_by_link(snapshot: ClusterSnapshot) -> dict[str, int]:
    """The snapshot's transfers in flight per link that can be shared (each declared link as
    ``"a<->b"``, a site's own network under the site's name when it declares a bandwidth),
    zeros included: what the extender exports as a metric."""
    _, capacity = snapshot.transfer_links()
    counts = snapshot.inflight or (0,) * len(capacity)
    out = {f"{lk.a}<->{lk.b}": counts[k] for k, lk in enumerate(snapshot.links)}
    base = len(snapshot.links)
    for i, site in enumerate(snapshot.sites):
        if site.intra_bandwidth_mbps is not None:
            out[site.name] = counts[base + i]
    return out
