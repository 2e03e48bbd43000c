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

The filling is compiled (numba): on a corridor of a thousand nodes a path crosses dozens of
links, a rerate touches ~150 classes of flows, and it runs at every transfer start and end;
interpreted, it was three quarters of a run's time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edge_allocator.compiled import compiled

_EPS = 1e-9


def max_min_rates(paths: Sequence[Sequence[int]], capacity: Sequence[float]) -> list[float]:
    """The max-min fair rate of each flow; ``paths[f]`` lists the links flow ``f`` crosses
    (indices into ``capacity``, in the same unit as the rates). A flow that crosses no link
    is unconstrained (``inf``)."""
    classes = _Classes(len(capacity))
    of_flow = [classes.add(_key(path)) if path else -1 for path in paths]
    rate = classes.fill(np.asarray(capacity, dtype=np.float64))
    return [float(rate[c]) if c >= 0 else math.inf for c in of_flow]


def _key(path: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted(set(path)))


class _Classes:
    """Flows grouped by the set of links they cross (a class's flows always get one rate),
    kept as padded arrays for :func:`_fill`: ``links[c, :length[c]]`` and ``count[c]``
    flows; a class whose count drops to zero frees its row for the next new class."""

    def __init__(self, n_links: int) -> None:
        self.n_links = n_links
        self.index: dict[tuple[int, ...], int] = {}
        self.links = np.zeros((8, 4), dtype=np.int64)
        self.length = np.zeros(8, dtype=np.int64)
        self.count = np.zeros(8, dtype=np.int64)
        self._free: list[int] = []
        self._used = 0

    def add(self, key: tuple[int, ...]) -> int:
        c = self.index.get(key)
        if c is None:
            if key[0] < 0 or key[-1] >= self.n_links:  # compiled code reads unchecked
                raise ValueError(f"path {key}: links are numbered 0..{self.n_links - 1}")
            c = self._free.pop() if self._free else self._new_row()
            if len(key) > self.links.shape[1]:
                wider = np.zeros((self.links.shape[0], 2 * len(key)), dtype=np.int64)
                wider[:, : self.links.shape[1]] = self.links
                self.links = wider
            self.links[c, : len(key)] = key
            self.length[c] = len(key)
            self.index[key] = c
        self.count[c] += 1
        return c

    def remove(self, key: tuple[int, ...]) -> None:
        c = self.index[key]
        self.count[c] -= 1
        if not self.count[c]:
            del self.index[key]
            self._free.append(c)

    def _new_row(self) -> int:
        if self._used == self.count.shape[0]:
            grow = self._used
            self.links = np.concatenate([self.links, np.zeros_like(self.links[:grow])])
            self.length = np.concatenate([self.length, np.zeros(grow, dtype=np.int64)])
            self.count = np.concatenate([self.count, np.zeros(grow, dtype=np.int64)])
        self._used += 1
        return self._used - 1

    def fill(self, capacity: np.ndarray) -> np.ndarray:
        """Each class's max-min fair rate (rows of empty classes: meaningless)."""
        rate = np.zeros(self._used, dtype=np.float64)
        _fill(self.links[: self._used], self.length, self.count, capacity, rate)
        return rate


@compiled
def _fill(
    links: np.ndarray, length: np.ndarray, count: np.ndarray, capacity: np.ndarray, rate: np.ndarray
) -> None:  # pragma: no cover - compiled; tests/unit/test_sim_network.py checks it
    """Progressive filling over classes of flows into ``rate``: class ``c`` is ``count[c]``
    flows over ``links[c, :length[c]]``.

    * a class's ``m`` flows freeze together at the same rate, as ``m`` users of each link;
    * the next link to saturate comes from a binary heap of ``(fair share, link)``. Freezing
      flows at the smallest share can only raise the other links' shares (each loses
      users at a rate no larger than its share), so an entry is a lower bound and is
      refreshed only when it reaches the top (pushed back at the link's share now); a share
      that rounding lowered is pushed at once. The links are taken in the order a heap of
      exact shares gives, without a push per link per step;
    * a frozen class takes its rate off each other link ``m`` times, one subtraction per
      flow, so every capacity left is the float the flow-by-flow filling computes (all
      flows frozen in one step have the same rate, so the order of subtractions does not
      matter), and so is every rate: ``tests/unit/test_sim_network.py`` compares the two
      for equality.
    """
    n_cls = links.shape[0]
    n_links = capacity.shape[0]
    users = np.zeros(n_links, dtype=np.int64)
    first = np.zeros(n_links + 1, dtype=np.int64)  # classes crossing link k: CSR rows
    for c in range(n_cls):
        m = count[c]
        if m > 0:
            for j in range(length[c]):
                users[links[c, j]] += m
                first[links[c, j] + 1] += 1
    for k in range(n_links):
        first[k + 1] += first[k]
    at = first[:-1].copy()
    crossing = np.empty(first[n_links], dtype=np.int64)
    for c in range(n_cls):
        if count[c] > 0:
            for j in range(length[c]):
                k = links[c, j]
                crossing[at[k]] = c
                at[k] += 1
    left = capacity.astype(np.float64)
    size = 0
    # entries: one per link, one per share decrease, one per stale entry popped (<= touches)
    cap_heap = 2 * (n_links + first[n_links]) + 1
    heap_share = np.empty(cap_heap, dtype=np.float64)
    heap_link = np.empty(cap_heap, dtype=np.int64)
    for k in range(n_links):
        if users[k] > 0:
            size = _push(heap_share, heap_link, size, left[k] / users[k], k)
    frozen = np.zeros(n_cls, dtype=np.bool_)
    touched = np.empty(n_links, dtype=np.int64)
    is_touched = np.zeros(n_links, dtype=np.bool_)
    before = np.zeros(n_links, dtype=np.float64)  # a touched link's share when the step began
    while size > 0:
        share = heap_share[0]
        link = heap_link[0]
        size = _pop(heap_share, heap_link, size)
        n = users[link]
        if n == 0:
            continue  # the link froze already
        now = left[link] / n
        if now != share:
            if now > share:  # a lower bound: the share rose since; back in at its value
                size = _push(heap_share, heap_link, size, now, link)
            continue
        r = max(share, 0.0)
        users[link] = 0
        n_touched = 0
        for idx in range(first[link], first[link + 1]):
            c = crossing[idx]
            if frozen[c]:
                continue
            frozen[c] = True
            rate[c] = r
            m = count[c]
            for j in range(length[c]):
                other = links[c, j]
                k = users[other]
                if k == 0:
                    continue
                if k != m and not is_touched[other]:
                    is_touched[other] = True
                    before[other] = left[other] / k
                    touched[n_touched] = other
                    n_touched += 1
                room = left[other]
                for _ in range(m):
                    room -= r
                left[other] = room
                users[other] = k - m
        for t in range(n_touched):
            other = touched[t]
            is_touched[other] = False
            if users[other] > 0:
                now = left[other] / users[other]
                if now < before[other]:  # only by rounding: the entry there is no bound
                    size = _push(heap_share, heap_link, size, now, other)


@compiled
def _before(share_a: float, link_a: int, share_b: float, link_b: int) -> bool:
    return share_a < share_b or (share_a == share_b and link_a < link_b)


@compiled
def _push(
    share: np.ndarray, link: np.ndarray, size: int, s: float, k: int
) -> int:  # pragma: no cover - compiled
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if not _before(s, k, share[parent], link[parent]):
            break
        share[i] = share[parent]
        link[i] = link[parent]
        i = parent
    share[i] = s
    link[i] = k
    return size + 1


@compiled
def _pop(share: np.ndarray, link: np.ndarray, size: int) -> int:  # pragma: no cover - compiled
    """Drop the heap's top; the new size."""
    size -= 1
    s = share[size]
    k = link[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _before(share[right], link[right], share[child], link[child]):
            child = right
        if not _before(share[child], link[child], s, k):
            break
        share[i] = share[child]
        link[i] = link[child]
        i = child
    if size > 0:
        share[i] = s
        link[i] = k
    return size


class Transfers:
    """The active transfers and their fair-share rates (megabits, megabits per second).

    Each flow has a row of per-flow arrays (megabits left, rate, its class, when it was
    added), so advancing time, finding the finished flows and the next end are vector
    operations; the flows are kept grouped in :class:`_Classes`, updated as they come and go.
    """

    def __init__(self, capacity_mbps: Sequence[float]) -> None:
        self.capacity = np.asarray(capacity_mbps, dtype=np.float64)
        self.path: dict[int, tuple[int, ...]] = {}
        """Every active flow's links as given (the engine cuts the flows over a failed link)."""
        self.at = 0.0
        self._classes = _Classes(len(self.capacity))
        self._row: dict[int, int] = {}  # flow id -> row
        self._flow = np.zeros(16, dtype=np.int64)
        self._left = np.zeros(16, dtype=np.float64)  # megabits still to send; 0 in free rows
        self._rate = np.zeros(16, dtype=np.float64)  # 0 in free rows
        self._class = np.full(16, -1, dtype=np.int64)  # -1: crosses no link
        self._order = np.zeros(16, dtype=np.int64)  # when added: finished flows in this order
        self._active = np.zeros(16, dtype=np.bool_)
        self._free: list[int] = []
        self._used = 0
        self._added = 0
        self._stale = False  # flows came or went since the rates were computed

    def __len__(self) -> int:
        return len(self._row)

    def rate_of(self, flow: int) -> float:
        self._rerate()
        return float(self._rate[self._row[flow]])

    def left_of(self, flow: int) -> float:
        """Megabits the flow still has to send (as of the last advance)."""
        return float(self._left[self._row[flow]])

    def advance(self, t: float) -> None:
        """Send at the current rates up to time ``t``."""
        dt = t - self.at
        if dt > 0 and self._row:
            self._rerate()
            _send(self._left, self._rate, self._used, dt)
        self.at = max(self.at, t)

    def _rerate(self) -> None:
        """The rates for the flows now, when flows came or went since they were computed
        (several starts at one moment, a placement round, share one filling)."""
        if not self._stale:
            return
        self._stale = False
        if not self._row:
            return
        # a class with flows in it: some flow crosses a link (the others' rate is inf)
        of_class = self._classes.fill(self.capacity) if self._classes.index else _NO_CLASSES
        _rates(self._rate, self._class, self._active, self._used, of_class)

    def add(self, t: float, flow: int, path: tuple[int, ...], megabits: float) -> None:
        cls = self._classes.add(_key(path)) if path else -1  # first: it checks the links
        self.advance(t)
        row = self._free.pop() if self._free else self._new_row()
        self._row[flow] = row
        self.path[flow] = path
        self._flow[row] = flow
        self._left[row] = megabits
        self._class[row] = cls
        self._order[row] = self._added
        self._added += 1
        self._active[row] = True
        self._stale = True

    def _new_row(self) -> int:
        if self._used == self._flow.shape[0]:
            grow = self._used
            self._flow = np.concatenate([self._flow, np.zeros(grow, dtype=np.int64)])
            self._left = np.concatenate([self._left, np.zeros(grow)])
            self._rate = np.concatenate([self._rate, np.zeros(grow)])
            self._class = np.concatenate([self._class, np.full(grow, -1, dtype=np.int64)])
            self._order = np.concatenate([self._order, np.zeros(grow, dtype=np.int64)])
            self._active = np.concatenate([self._active, np.zeros(grow, dtype=np.bool_)])
        self._used += 1
        return self._used - 1

    def remove(self, t: float, flow: int) -> None:
        """Drop a flow (its transfer finished or its node failed)."""
        self.remove_all(t, [flow])

    def remove_all(self, t: float, flows: Sequence[int]) -> None:
        """Drop several flows at ``t`` with one rerate (the same rates as one by one: no
        time passes between the removals)."""
        self.advance(t)
        gone = False
        for flow in flows:
            row = self._row.pop(flow, None)
            if row is None:
                continue
            gone = True
            path = self.path.pop(flow)
            if path:
                self._classes.remove(_key(path))
            self._active[row] = False
            self._left[row] = 0.0
            self._rate[row] = 0.0
            self._class[row] = -1
            self._free.append(row)
        if gone:
            self._stale = True

    def done(self) -> list[int]:
        """Flows whose data has all arrived (as of the last advance), in the order they were
        added; under a nanosecond of sending left is rounding, not data."""
        self._rerate()
        rows = _arrived(self._left, self._rate, self._active, self._used)
        rows = rows[np.argsort(self._order[rows], kind="stable")]
        return [int(f) for f in self._flow[rows]]

    def next_end(self) -> float:
        """When the first active flow ends at the current rates (``inf`` with none)."""
        self._rerate()
        return float(_first_end(self._left, self._rate, self._active, self._used, self.at))


_NO_CLASSES = np.zeros(0)


@compiled
def _send(left: np.ndarray, rate: np.ndarray, n: int, dt: float) -> None:
    """``left[:n] = max(left - rate * dt, 0)`` in place, as ``np.maximum`` gives it (a nan
    stays nan, -0.0 stays -0.0)."""
    for i in range(n):
        v = left[i] - rate[i] * dt
        left[i] = v if v >= 0.0 or v != v else 0.0


@compiled
def _rates(
    rate: np.ndarray, cls: np.ndarray, active: np.ndarray, n: int, of_class: np.ndarray
) -> None:
    """Each flow's rate: its class's (``of_class``), inf over no link, 0 in a free row."""
    for i in range(n):
        if not active[i]:
            rate[i] = 0.0
        elif cls[i] < 0:
            rate[i] = np.inf
        else:
            rate[i] = of_class[cls[i]]


@compiled
def _arrived(left: np.ndarray, rate: np.ndarray, active: np.ndarray, n: int) -> np.ndarray:
    """The active rows with all their data sent: under a nanosecond of sending left (the
    larger of 1 and the rate as ``np.maximum`` gives it: a nan rate stays nan)."""
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        r = rate[i]
        if active[i] and left[i] <= _EPS * (r if r > 1.0 or r != r else 1.0):
            out[k] = i
            k += 1
    return out[:k]


@compiled
def _first_end(left: np.ndarray, rate: np.ndarray, active: np.ndarray, n: int, at: float) -> float:
    """When the first sending flow ends at its rate (inf with none; nan when one is, as
    ``min`` over numpy's array gives it)."""
    end = np.inf
    for i in range(n):
        if active[i] and rate[i] > 0:
            e: float = at + left[i] / rate[i]
            if e != e:
                return e
            if e < end:
                end = e
    return end
