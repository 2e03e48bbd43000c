"""Wire the watch cache to a real cluster: reflectors for Nodes, Pods, EdgeNetworks, a metrics poll.

Pods are watched with a field selector (bound, non-terminal) so the cache never holds the pending
queue; EdgeNetwork is optional (the CRD may not be installed yet); metrics.k8s.io is polled and,
when not served, the cache falls back to requests. ``pace`` (the extender's verb gate) is
called before each watch event is handled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge_allocator.extender.cache import NETWORKS, NODES, PODS, WatchCache, parse_node_metrics
from edge_allocator.extender.kubeapi import ApiError, KubeApi
from edge_allocator.extender.reflector import Reflector

log = logging.getLogger(__name__)

POD_SELECTOR = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
EDGENETWORKS_PATH = "/apis/edge-allocator.io/v1alpha1/edgenetworks"
NODE_METRICS_PATH = "/apis/metrics.k8s.io/v1beta1/nodes"


class LiveCluster:
    """Starts and stops the background feeders of one WatchCache."""

    def __init__(
        self,
        api: KubeApi,
        cache: WatchCache,
        *,
        metrics_interval_s: float = 15.0,
        pace: Callable[[], object] | None = None,
    ):
        self.api, self.cache = api, cache
        self.metrics_interval_s = metrics_interval_s
        self._stop = threading.Event()
        pods = {"fieldSelector": POD_SELECTOR}
        self.reflectors = [
            Reflector(api, NODES, "/api/v1/nodes", cache, pace=pace),
            Reflector(api, PODS, "/api/v1/pods", cache, params=pods, pace=pace),
            Reflector(api, NETWORKS, EDGENETWORKS_PATH, cache, optional=True, pace=pace),
        ]
        self._poller = threading.Thread(target=self._poll_metrics, name="metrics-poll", daemon=True)

    def start(self) -> None:
        self.cache.start()
        for r in self.reflectors:
            r.start()
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        for r in self.reflectors:
            r.stop()
        self.cache.stop()

    def _poll_metrics(self) -> None:
        while not self._stop.is_set():
            try:
                items, _ = self.api.list_all(NODE_METRICS_PATH)
                self.cache.set_metrics(parse_node_metrics(items))
            except ApiError as exc:
                if exc.status in (404, 503):  # not served: requests are the fallback
                    self.cache.set_metrics(None)
                else:
                    log.warning("node metrics poll failed: %s", exc)
            except Exception as exc:
                log.warning("node metrics poll failed: %s", exc)
            self._stop.wait(self.metrics_interval_s)
