"""Links shared by concurrent transfers: max-min fair bandwidth along each transfer's path.

Without this model every transfer gets its path's bottleneck bandwidth however many others
share the links, so the network part of a placement is free of contention. Here each active
transfer is a flow over the links of its shortest-latency path (the same path
:class:`ClusterSnapshot` measures latency and bandwidth on), and flows get their max-min fair
rates by progressive filling:

1. every unfrozen flow's rate rises together; a link's fair share is its capacity left over
   the frozen flows, divided by its unfrozen flows;
2. the link with the smallest fair share saturates first: its unfrozen flows freeze at that
   share, their rate is taken off every other link they cross;
3. repeat until every flow is frozen.

No flow can then gain without taking from a flow that has no more than it (the max-min
property). A single flow on an empty path gets the path's bottleneck, exactly as before.
Transfers within a site cross no link and are not limited (as before).

Rates change only when a flow starts or ends, so :class:`Transfers` advances every flow at its
rate between those events and says when the next one ends.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

from edge_allocator.cluster.snapshot import Link, Site

_EPS = 1e-9


def max_min_rates(paths: Sequence[Sequence[int]], capacity: Sequence[float]) -> list[float]:
    """The max-min fair rate of each flow; ``paths[f]`` lists the links flow ``f`` crosses
    (indices into ``capacity``, in the same unit as the rates). A flow that crosses no link
    is unconstrained (``inf``)."""
    rates = [math.inf] * len(paths)
    left = [float(c) for c in capacity]
    users: dict[int, set[int]] = {}
    for f, path in enumerate(paths):
        for link in set(path):
            users.setdefault(link, set()).add(f)
    while users:
        link, share = min(
            ((lk, left[lk] / len(fs)) for lk, fs in users.items()), key=lambda x: (x[1], x[0])
        )
        frozen = users.pop(link)
        for f in frozen:
            rates[f] = max(share, 0.0)
            for other in set(paths[f]):
                if other == link or other not in users:
                    continue
                left[other] -= rates[f]
                users[other].discard(f)
                if not users[other]:
                    del users[other]
    return rates


def link_paths(sites: Sequence[Site], links: Sequence[Link]) -> list[list[tuple[int, ...]]]:
    """For every (source site, destination site), the links (indices into ``links``) of the
    shortest-latency path, ties broken towards the larger bottleneck bandwidth as
    :meth:`ClusterSnapshot._compute_paths` does; ``()`` within a site or when unreachable."""
    n = len(sites)
    idx = {s.name: i for i, s in enumerate(sites)}
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for k, link in enumerate(links):
        adj[idx[link.a]].append((idx[link.b], k))
        adj[idx[link.b]].append((idx[link.a], k))
    out: list[list[tuple[int, ...]]] = []
    for src in range(n):
        dist = [math.inf] * n
        neck = [0.0] * n
        via: list[int] = [-1] * n  # the link that reaches each site
        prev: list[int] = [-1] * n
        dist[src], neck[src] = 0.0, math.inf
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
            path: list[int] = []
            v = dst
            while v != src and via[v] >= 0:
                path.append(via[v])
                v = prev[v]
            row.append(tuple(reversed(path)) if v == src else ())
        out.append(row)
    return out


class Transfers:
    """The active transfers and their fair-share rates (megabits, megabits per second)."""

    def __init__(self, capacity_mbps: Sequence[float]) -> None:
        self.capacity = list(capacity_mbps)
        self.left_mb: dict[int, float] = {}  # flow id -> megabits still to send
        self.path: dict[int, tuple[int, ...]] = {}
        self.rate: dict[int, float] = {}
        self.at = 0.0

    def __len__(self) -> int:
        return len(self.left_mb)

    def advance(self, t: float) -> None:
        """Send at the current rates up to time ``t``."""
        dt = t - self.at
        if dt > 0:
            for f in self.left_mb:
                self.left_mb[f] = max(self.left_mb[f] - self.rate[f] * dt, 0.0)
        self.at = max(self.at, t)

    def _rerate(self) -> None:
        flows = list(self.left_mb)
        rates = max_min_rates([self.path[f] for f in flows], self.capacity)
        self.rate = dict(zip(flows, rates, strict=True))

    def add(self, t: float, flow: int, path: tuple[int, ...], megabits: float) -> None:
        self.advance(t)
        self.left_mb[flow] = megabits
        self.path[flow] = path
        self._rerate()

    def remove(self, t: float, flow: int) -> None:
        """Drop a flow (its transfer finished or its node failed)."""
        self.advance(t)
        if flow in self.left_mb:
            del self.left_mb[flow], self.path[flow]
            self._rerate()

    def done(self) -> list[int]:
        """Flows whose data has all arrived (as of the last advance); under a nanosecond of
        sending left is rounding, not data."""
        return [f for f, mb in self.left_mb.items() if mb <= _EPS * max(1.0, self.rate[f])]

    def next_end(self) -> float:
        """When the first active flow ends at the current rates (``inf`` with none)."""
        return min(
            (self.at + mb / self.rate[f] for f, mb in self.left_mb.items() if self.rate[f] > 0),
            default=math.inf,
        )
