"""List-then-watch one API collection in a background thread (a minimal client-go reflector).

The store gets the full list once (``replace``), then each change (``upsert``/``delete``). When
the watch expires (410 Gone) or breaks, the reflector lists again after a short backoff, so the
store converges to the server's state without any call on the request path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from edge_allocator.extender.kubeapi import ApiError, KubeApi

log = logging.getLogger(__name__)


class Store(Protocol):
    def replace(self, kind: str, items: list[dict[str, Any]]) -> None: ...
    def upsert(self, kind: str, obj: dict[str, Any]) -> None: ...
    def delete(self, kind: str, obj: dict[str, Any]) -> None: ...
    def mark_synced(self, kind: str) -> None: ...


class Reflector:
    """Keeps ``store`` in step with the collection at ``path``.

    ``optional``: a 404 on list (the CRD is not installed) counts as an empty, synced collection
    and the list is retried every ``absent_retry_s``. ``pace`` is called before each watch event
    is handled (the extender's verb gate: events wait for the verbs in flight).
    """

    def __init__(
        self,
        api: KubeApi,
        kind: str,
        path: str,
        store: Store,
        *,
        params: dict[str, str] | None = None,
        optional: bool = False,
        absent_retry_s: float = 30.0,
        watch_timeout_s: int = 300,
        pace: Callable[[], object] | None = None,
    ) -> None:
        self.api, self.kind, self.path, self.store = api, kind, path, store
        self.pace = pace
        self.params = params or {}
        self.optional = optional
        self.absent_retry_s = absent_retry_s
        self.watch_timeout_s = watch_timeout_s
        self.events = 0  # watch events received (written by this reflector's thread only)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reflector-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._list_and_watch()
                backoff = 0.5
            except ApiError as exc:
                if exc.status == 404 and self.optional:
                    self.store.replace(self.kind, [])
                    self.store.mark_synced(self.kind)
                    self._stop.wait(self.absent_retry_s)
                    continue
                log.warning("%s: list/watch failed: %s; retrying in %.1fs", self.kind, exc, backoff)
            except Exception as exc:  # network errors, server restarts: relist after backoff
                log.warning("%s: list/watch failed: %s; retrying in %.1fs", self.kind, exc, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _list_and_watch(self) -> None:
        items, rv = self.api.list_all(self.path, self.params)
        self.store.replace(self.kind, items)
        self.store.mark_synced(self.kind)
        while not self._stop.is_set():
            started = time.monotonic()
            events = self.api.watch(
                self.path, rv, self.params, self.watch_timeout_s, pace=self.pace
            )
            for event in events:
                self.events += 1
                etype, obj = event.get("type"), event.get("object") or {}
                if etype == "ERROR":
                    code = obj.get("code")
                    if code == 410:  # too old: relist
                        return
                    raise ApiError(int(code or 500), str(obj.get("message", "watch error")))
                rv = str((obj.get("metadata") or {}).get("resourceVersion", rv))
                if etype in ("ADDED", "MODIFIED"):
                    self.store.upsert(self.kind, obj)
                elif etype == "DELETED":
                    self.store.delete(self.kind, obj)
                if self._stop.is_set():
                    return
            if time.monotonic() - started < 1.0:  # a stream that ends at once: do not spin
                self._stop.wait(1.0)
