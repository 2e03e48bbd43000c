"""Where decisions live: a bounded in-memory LRU plus the pod annotation, written in batches.

The request path only appends to a dict. When kube-scheduler lets the extender bind (``bindVerb``),
the bind verb takes the pod's record and the Binding itself carries it as an annotation (the API
server copies a Binding's annotations onto the pod): one write for both. Records not taken that
way (another replica bound the pod, or binding is off) are PATCHed by a writer thread that
merges everything queued since its last round (one PATCH per pod, the latest decision wins),
with the pod's uid as a precondition so a recreated pod of the same name is never stamped with
an old decision. Every replica and the operator read the annotation, so a decision survives a
restart and does not depend on which replica scored the pod. Memory is bounded twice: the LRU
holds ``capacity`` records and the write queue ``max_pending`` (oldest dropped, and counted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from edge_allocator.cluster.annotations import ANN_DECISION, DecisionRecord

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, pod name)


class DecisionLog:
    """A thread-safe LRU of the latest decision per pod."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Key, tuple[str, DecisionRecord]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: Key, uid: str, record: DecisionRecord) -> None:
        with self._lock:
            self._items[key] = (uid, record)
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, key: Key) -> tuple[str, DecisionRecord] | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class _Pending:
    uid: str
    text: str
    due: float


PatchFn = Callable[[str, str, str, str], None]
"""patch(namespace, name, uid, annotation_json); raises on failure."""


class AnnotationWriter:
    """Writes decision annotations onto pods from a background thread, in batches.

    ``submit(..., delay_s)`` holds a record back so that the bind verb can ``take`` it and
    record it with the binding itself (no extra write); whatever is not taken in time is
    PATCHed, ``concurrency`` requests at a time, each after ``pace()`` (the verb gate).
    """

    def __init__(
        self,
        patch: PatchFn,
        *,
        interval_s: float = 0.2,
        max_pending: int = 5_000,
        concurrency: int = 4,
        on_result: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        pace: Callable[[], object] | None = None,
    ) -> None:
        self._patch = patch
        self._pace = pace
        self.interval_s = interval_s
        self.max_pending = max_pending
        self.clock = clock
        self._on_result = on_result or (lambda _outcome: None)
        self._pending: OrderedDict[Key, _Pending] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="decision-patch")
        self._thread = threading.Thread(target=self._run, name="decision-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, flush: bool = True) -> None:
        if flush:
            self.flush()
        self._stop.set()
        self._wake.set()

    def submit(self, key: Key, uid: str, record: DecisionRecord, delay_s: float = 0.0) -> None:
        self.submit_text(key, uid, record.to_json(), delay_s)

    def submit_text(self, key: Key, uid: str, text: str, delay_s: float = 0.0) -> None:
        with self._lock:
            self._pending.pop(key, None)
            self._pending[key] = _Pending(uid, text, self.clock() + delay_s)
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
                self._on_result("dropped")
        if delay_s <= 0:
            self._wake.set()

    def take(self, key: Key, uid: str) -> str | None:
        """Remove and return the pending record of this pod (None if none or another uid)."""
        with self._lock:
            item = self._pending.get(key)
            if item is None or (uid and item.uid and item.uid != uid):
                return None
            del self._pending[key]
            return item.text

    def pending(self) -> int:
        return len(self._pending)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write everything pending now (delays ignored); False if it did not finish in time."""
        with self._lock:
            batch = list(self._pending.items())
            self._pending.clear()
        futures = [self._pool.submit(self._write, ns, name, item) for (ns, name), item in batch]
        _, not_done = wait(futures, timeout=timeout_s)
        return not not_done

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=self.interval_s)
            self._wake.clear()
            self._stop.wait(self.interval_s)  # let a batch gather
            now = self.clock()
            with self._lock:
                due = [(k, v) for k, v in self._pending.items() if v.due <= now]
                for k, _ in due:
                    del self._pending[k]
            futures = [self._pool.submit(self._write, ns, name, item) for (ns, name), item in due]
            wait(futures)

    def _write(self, namespace: str, name: str, item: _Pending) -> None:
        try:
            if self._pace is not None:
                self._pace()
            self._patch(namespace, name, item.uid, item.text)
            self._on_result("written")
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status in (404, 409, 422):  # pod gone or replaced: nothing to record on
                self._on_result("pod_gone")
            else:
                log.warning("decision for %s/%s not recorded: %s", namespace, name, exc)
                self._on_result("failed")


def annotation_patch(uid: str, text: str) -> dict[str, object]:
    """The merge patch that records ``text``; the uid makes the API server check identity."""
    meta: dict[str, object] = {"annotations": {ANN_DECISION: text}}
    if uid:
        meta["uid"] = uid
    return {"metadata": meta}
