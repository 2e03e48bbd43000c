"""A de-duplicating work queue of task keys, as controller-runtime's workqueue does it.

Watch events only mark a task dirty; a fixed number of workers reconcile dirty tasks. A task
is never reconciled by two workers at once, and any number of events that arrive while it
waits or runs collapse into one more reconcile with the newest state. So a burst of events
costs memory per task, not per event, and API writes per change, not per event.

A key whose reconcile keeps failing backs off on its own (``failed``/``forget``, as client-go's
ItemExponentialFailureRateLimiter): one broken task is retried ever less often, while the others
are not slowed down at all.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class ItemBackoff(Generic[K]):
    """Per-key exponential backoff: the ``n``-th failure in a row waits about
    ``min(base_s * factor**(n-1), max_s)``, less up to ``jitter`` of it at random (so keys that
    failed together, e.g. in an API outage, do not all come back in the same instant).

    Jitter only ever shortens a delay, so ``max_s`` is a hard ceiling. ``forget`` on success
    starts the key over at ``base_s``.
    """

    def __init__(
        self,
        base_s: float = 1.0,
        factor: float = 2.0,
        max_s: float = 300.0,
        jitter: float = 0.2,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not (0 < base_s <= max_s and factor >= 1 and 0 <= jitter < 1):
            raise ValueError("backoff: need 0 < base_s <= max_s, factor >= 1, 0 <= jitter < 1")
        self.base_s = base_s
        self.factor = factor
        self.max_s = max_s
        self.jitter = jitter
        self._rand = rand
        self._failures: dict[K, int] = {}

    def nominal_s(self, failures: int) -> float:
        """The delay after ``failures`` failures in a row, before jitter."""
        if failures <= 0:
            return 0.0
        delay = self.base_s
        for _ in range(failures - 1):  # stepwise: no float overflow however long it fails
            delay *= self.factor
            if delay >= self.max_s:
                return self.max_s
        return min(delay, self.max_s)

    def failed(self, key: K) -> float:
        """Count one more failure of ``key``; returns how long to wait before retrying it."""
        n = self._failures.get(key, 0) + 1
        self._failures[key] = n
        return self.nominal_s(n) * (1.0 - self.jitter * self._rand())

    def forget(self, key: K) -> None:
        """``key`` succeeded (or is gone): its next failure waits ``base_s`` again."""
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def __len__(self) -> int:
        """How many keys are backing off (failed at least once since their last success)."""
        return len(self._failures)


class WorkQueue(Generic[K]):
    def __init__(self, backoff: ItemBackoff[K] | None = None) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self.backoff: ItemBackoff[K] = backoff if backoff is not None else ItemBackoff()

    def add(self, key: K) -> None:
        """Ask for ``key`` to be processed (again) soon."""
        if key in self._active:
            self._dirty.add(key)  # once more after the current run
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)

    async def get(self) -> K:
        """The next key; the caller must call ``done(key)`` when finished with it."""
        key = await self._queue.get()
        self._waiting.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._waiting) + len(self._dirty)
