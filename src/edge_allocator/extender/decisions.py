"""Where decisions live: a bounded in-memory LRU plus the pod annotation, written in batches.

The request path only appends to a dict; a writer thread merges everything queued since its last
round (one PATCH per pod, the latest decision wins) and patches pods in the background, with
the pod's uid as a precondition so a recreated pod of the same name is never stamped with an
old decision. Every replica and the operator read the annotation, so a decision survives a
restart and does not depend on which replica scored the pod. Memory is bounded twice: the LRU
holds ``capacity`` records and the write queue ``max_pending`` (oldest dropped, and counted).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
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


PatchFn = Callable[[str, str, str, str], None]
"""patch(namespace, name, uid, annotation_json); raises on failure."""


class AnnotationWriter:
    """Batches decision annotations onto pods from a background thread."""

    def __init__(
        self,
        patch: PatchFn,
        *,
        interval_s: float = 0.2,
        max_pending: int = 5_000,
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        self._patch = patch
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._on_result = on_result or (lambda _outcome: None)
        self._pending: OrderedDict[Key, _Pending] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="decision-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, flush: bool = True) -> None:
        if flush:
            self.flush()
        self._stop.set()
        self._wake.set()

    def submit(self, key: Key, uid: str, record: DecisionRecord) -> None:
        with self._lock:
            self._pending.pop(key, None)
            self._pending[key] = _Pending(uid, record.to_json())
            self._idle.clear()
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
                self._on_result("dropped")
        self._wake.set()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything submitted so far has been written (or given up on)."""
        self._wake.set()
        return self._idle.wait(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            self._stop.wait(self.interval_s)  # let a batch gather
            while True:
                with self._lock:
                    batch = list(self._pending.items())
                    self._pending.clear()
                if not batch:
                    break
                for (namespace, name), item in batch:
                    self._write(namespace, name, item)
            with self._lock:
                if not self._pending:
                    self._idle.set()

    def _write(self, namespace: str, name: str, item: _Pending) -> None:
        try:
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
