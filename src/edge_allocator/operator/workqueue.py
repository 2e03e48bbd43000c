"""A de-duplicating work queue of task keys, as controller-runtime's workqueue does it.

Watch events only mark a task dirty; a fixed number of workers reconcile dirty tasks. A task
is never reconciled by two workers at once, and any number of events that arrive while it
waits or runs collapse into one more reconcile with the newest state. So a burst of events
costs memory per task, not per event, and API writes per change, not per event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()

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
