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
Transfers within a site cross no link and are not limited, unless the site declares its own
bandwidth: then they cross that one link (:meth:`ClusterSnapshot.transfer_links`).

Rates change only when a flow starts or ends, so :class:`Transfers` advances every flow at its
rate between those events and says when the next one ends.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

_EPS = 1e-9


def max_min_rates(paths: Sequence[Sequence[int]], capacity: Sequence[float]) -> list[float]:
    """The max-min fair rate of each flow; ``paths[f]`` lists the links flow ``f`` crosses
    (indices into ``capacity``, in the same unit as the rates). A flow that crosses no link
    is unconstrained (``inf``)."""
    counts: dict[frozenset[int], int] = {}
    for path in paths:
        if path:
            key = frozenset(path)
            counts[key] = counts.get(key, 0) + 1
    users: dict[int, int] = {}
    crossing: dict[int, set[frozenset[int]]] = {}
    for key, m in counts.items():
        for link in key:
            users[link] = users.get(link, 0) + m
            crossing.setdefault(link, set()).add(key)
    rate = _fill(counts, users, crossing, capacity)
    return [rate[frozenset(path)] if path else math.inf for path in paths]


def _fill(
    counts: dict[frozenset[int], int],
    users: dict[int, int],
    crossing: dict[int, set[frozenset[int]]],
    capacity: Sequence[float],
) -> dict[frozenset[int], float]:
    """Progressive filling over classes of flows: the rate of each class (the flows that
    cross one set of links, ``counts[links]`` of them); ``users[link]`` is the flows
    crossing ``link``, ``crossing[link]`` the classes that do (neither is changed).

    Computed without a scan over every link per step (at a thousand nodes a rerate had ~200
    busy links and ~500 flows, and the scan was most of a run's time):

    * a class's ``m`` flows freeze together at the same rate, as ``m`` users of each of its
      links;
    * the next link to saturate comes from a heap of ``(fair share, link)``, an entry pushed
      whenever a link's capacity left or user count changes (older entries are skipped);
    * a frozen class takes its rate off each other link ``m`` times, one subtraction per
      flow, so every capacity left is the float the flow-by-flow filling computes (all
      flows frozen in one step have the same rate, so the order of subtractions does not
      matter), and so is every rate: ``tests/unit/test_sim_network.py`` compares the two
      for equality.
    """
    users = dict(users)
    left = {link: float(capacity[link]) for link in users}
    heap = [(left[link] / n, link) for link, n in users.items()]
    heapq.heapify(heap)
    rates: dict[frozenset[int], float] = {}
    while heap:
        share, link = heapq.heappop(heap)
        n = users.get(link)
        if n is None or left[link] / n != share:
            continue  # the link froze already, or its share changed since this entry
        rate = max(share, 0.0)
        del users[link]
        touched: set[int] = set()
        for key in crossing[link]:
            if key in rates:
                continue
            rates[key] = rate
            m = counts[key]
            for other in key:
                k = users.get(other)
                if k is None:
                    continue
                room = left[other]
                for _ in range(m):
                    room -= rate
                left[other] = room
                if k == m:
                    del users[other]
                else:
                    users[other] = k - m
                    touched.add(other)
        for other in touched:
            k = users.get(other)
            if k is not None:
                heapq.heappush(heap, (left[other] / k, other))
    return rates


class Transfers:
    """The active transfers and their fair-share rates (megabits, megabits per second).

    The flows are kept grouped by the set of links they cross (the classes
    :func:`_fill` shares bandwidth between), updated as flows come and go, so a rerate
    starts from the groups instead of rebuilding them from every flow."""

    def __init__(self, capacity_mbps: Sequence[float]) -> None:
        self.capacity = list(capacity_mbps)
        self.left_mb: dict[int, float] = {}  # flow id -> megabits still to send
        self.path: dict[int, tuple[int, ...]] = {}
        self.rate: dict[int, float] = {}
        self.at = 0.0
        self._key: dict[int, frozenset[int]] = {}  # flow -> its links (flows with any)
        self._count: dict[frozenset[int], int] = {}
        self._users: dict[int, int] = {}
        self._crossing: dict[int, set[frozenset[int]]] = {}

    def __len__(self) -> int:
        return len(self.left_mb)

    def advance(self, t: float) -> None:
        """Send at the current rates up to time ``t``."""
        dt = t - self.at
        if dt > 0:
            rate = self.rate
            for f, mb in self.left_mb.items():
                self.left_mb[f] = max(mb - rate[f] * dt, 0.0)
        self.at = max(self.at, t)

    def _rerate(self) -> None:
        by_class = _fill(self._count, self._users, self._crossing, self.capacity)
        key = self._key
        self.rate = {f: by_class[key[f]] if f in key else math.inf for f in self.left_mb}

    def add(self, t: float, flow: int, path: tuple[int, ...], megabits: float) -> None:
        self.advance(t)
        self.left_mb[flow] = megabits
        self.path[flow] = path
        if path:
            key = self._key[flow] = frozenset(path)
            m = self._count.get(key, 0)
            self._count[key] = m + 1
            for link in key:
                self._users[link] = self._users.get(link, 0) + 1
                if not m:
                    self._crossing.setdefault(link, set()).add(key)
        self._rerate()

    def remove(self, t: float, flow: int) -> None:
        """Drop a flow (its transfer finished or its node failed)."""
        self.remove_all(t, [flow])

    def remove_all(self, t: float, flows: Sequence[int]) -> None:
        """Drop several flows at ``t`` with one rerate (the same rates as one by one: no
        time passes between the removals)."""
        self.advance(t)
        gone = False
        for flow in flows:
            if flow not in self.left_mb:
                continue
            gone = True
            del self.left_mb[flow], self.path[flow]
            key = self._key.pop(flow, None)
            if key is None:
                continue
            m = self._count[key] - 1
            if m:
                self._count[key] = m
            else:
                del self._count[key]
            for link in key:
                k = self._users[link] - 1
                if k:
                    self._users[link] = k
                else:
                    del self._users[link]
                if not m:
                    self._crossing[link].discard(key)
                    if not self._crossing[link]:
                        del self._crossing[link]
        if gone:
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
