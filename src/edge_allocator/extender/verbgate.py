"""Verbs first: the extender's background threads yield the interpreter lock to the verbs.

kube-scheduler waits for ``/prioritize`` on its serial cycle, so every millisecond of it is a
millisecond per pod. The extender's other threads (watch reflectors, the snapshot builder, the
decision recorder, binders, the annotation writer, the shadow policy) run Python too, and they
share one interpreter lock with the verb worker: each time the worker lets the lock go (a BLAS
call, a queue hand-off), a busy background thread takes it and the worker waits up to a whole
switch interval to get it back, several times per request. Measured with three threads doing
watch-event work next to the latency bench's server (1,000 nodes, 238 candidates, 10 ms
apart): ``/prioritize`` server p50 1.17-1.24 ms alone, 1.83-2.22 ms with them busy, 1.09-1.29
ms with them waiting here first.

So background work asks :meth:`VerbGate.wait_quiet` before each unit of Python work (not
work that mostly waits on the network, such as a binding's API call): it waits
while a verb (or the next snapshot's preparation that follows one) is in flight and for
``quiet_s`` after the last one ended. The wait is bounded (``max_wait_s``), and a kind of work
whose wait ran out of bound passes freely for the next ``max_wait_s``: under verbs that never
stop (several schedulers calling one replica) the background still gets half of the time, so
the watch cache cannot fall behind for good. What it waited is counted per kind of work for
``/metrics``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

QUIET_S = 0.002
"""How long after a verb background work keeps waiting: long enough for the verb worker's
next job queued behind it (the next snapshot's preparation, or ``/prioritize`` after
``/filter`` when both are called), short against kube-scheduler's cycle."""

MAX_WAIT_S = 0.05
"""The longest a unit of background work waits; a watch event or a record is late by at most
this much (well inside the snapshot rebuild's own pacing and the bind's wait for its record)."""


class VerbGate:
    """Counts the verbs in flight; background work waits for a quiet moment."""

    def __init__(
        self,
        quiet_s: float = QUIET_S,
        max_wait_s: float | None = MAX_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self.clock = clock
        self._cond = threading.Condition()
        self._in_flight = 0
        self._last_end = float("-inf")
        self._waited: dict[str, float] = {}
        self._free_until: dict[str, float] = {}  # kinds whose last wait ran out of bound

    def verb_started(self) -> None:
        with self._cond:
            self._in_flight += 1

    def verb_finished(self) -> None:
        with self._cond:
            if self._in_flight <= 0:  # unmatched: never let the count hold the gate for good
                raise RuntimeError("VerbGate.verb_finished without verb_started")
            self._in_flight -= 1
            self._last_end = self.clock()
            self._cond.notify_all()

    @contextmanager
    def verb(self) -> Iterator[None]:
        """Hold the gate for the duration of a ``with`` block."""
        self.verb_started()
        try:
            yield
        finally:
            self.verb_finished()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def wait_quiet(
        self,
        work: str = "background",
        *,
        unbounded: bool = False,
        stop: threading.Event | None = None,
    ) -> float:
        """Block until no verb is in flight and none ended in the last ``quiet_s``, for at
        most the gate's ``max_wait_s`` (``unbounded``: however long it takes) or until ``stop``
        is set. Returns the seconds waited, also added to :meth:`waited` under ``work``."""
        bound = None if unbounded else self.max_wait_s
        start = self.clock()
        if not self._in_flight and start - self._last_end >= self.quiet_s:
            return 0.0  # the common case off-load: no lock taken
        if bound is not None and start < self._free_until.get(work, float("-inf")):
            return 0.0  # its last wait ran out of bound: its turn now
        deadline = None if bound is None else start + bound
        with self._cond:
            while stop is None or not stop.is_set():
                now = self.clock()
                if self._in_flight:
                    left = 0.1
                else:
                    left = self._last_end + self.quiet_s - now
                    if left <= 0:
                        break
                if deadline is not None:
                    if now >= deadline:
                        self._free_until[work] = now + (deadline - start)
                        break
                    left = min(left, deadline - now)
                self._cond.wait(timeout=left)
            waited = self.clock() - start
            self._waited[work] = self._waited.get(work, 0.0) + waited
        return waited

    def pacer(self, work: str) -> Callable[[], float]:
        """``wait_quiet`` for one kind of work, as a plain callable (for hooks)."""
        return lambda: self.wait_quiet(work)

    def waited(self) -> dict[str, float]:
        """Seconds background work has waited for the verbs, by kind of work."""
        with self._cond:
            return dict(self._waited)
