"""Prometheus metrics and the liveness endpoint, served on one port (``/metrics``, ``/healthz``).

Labels are bounded: phases and reasons come from fixed vocabularies, never task or pod names.
"""

from __future__ import annotations

import time
from collections import Counter as _Tally
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PHASES = ("Pending", "Scheduled", "Running", "Succeeded", "Failed")


class PhaseTracker(Collector):
    """Current phase of every known task; exported as ``edge_allocator_operator_tasks``."""

    def __init__(self) -> None:
        self._phase: dict[tuple[str, str], str] = {}

    def set(self, key: tuple[str, str], phase: str | None) -> None:
        self._phase[key] = phase or "Pending"

    def forget(self, key: tuple[str, str]) -> None:
        self._phase.pop(key, None)

    def counts(self) -> dict[str, int]:
        tally = _Tally(self._phase.values())
        return {p: tally.get(p, 0) for p in PHASES}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "edge_allocator_operator_tasks", "EdgeTasks by phase", labels=["phase"]
        )
        for phase, count in self.counts().items():
            fam.add_metric([phase], count)
        yield fam


class OperatorMetrics:
    """All operator metrics in a private registry (several operators can live in one test)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.phases = PhaseTracker()
        self.registry.register(self.phases)
        self.placements = Counter(
            "edge_allocator_operator_placements_total",
            "Task pods observed bound to a node",
            registry=self.registry,
        )
        self.pods_created = Counter(
            "edge_allocator_operator_pods_created_total",
            "Pods created for EdgeTask attempts",
            registry=self.registry,
        )
        self.reschedules = Counter(
            "edge_allocator_operator_reschedules_total",
            "Attempts that ended without success and were retried, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "edge_allocator_operator_reconcile_duration_seconds",
            "Time to plan and apply one EdgeTask reconcile",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.moves = Counter(
            "edge_allocator_operator_moves_total",
            "Running tasks moved to another node (make-before-break), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.move_candidates = Gauge(
            "edge_allocator_operator_move_candidates",
            "Running tasks that the last re-placement sweep considered moving, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "edge_allocator_operator_errors_total",
            "Errors while reconciling, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.backing_off = Gauge(
            "edge_allocator_operator_backoff_tasks",
            "EdgeTasks whose last reconcile failed, waiting out their per-task backoff",
            registry=self.registry,
        )
        self.api_requests = Counter(
            "edge_allocator_operator_api_requests_total",
            "Requests the operator made to the API server itself (kopf's watches excluded)",
            ["method", "code"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "edge_allocator_operator_leader",
            "1 while this replica holds the leader lease",
            registry=self.registry,
        )
        self.started = time.time()
        self.is_leader = False

    def count_request(self, method: str, status: int) -> None:
        self.api_requests.labels(method, str(status)).inc()

    def set_leader(self, value: bool) -> None:
        self.is_leader = value
        self.leader.set(1 if value else 0)


def _bounded_reason(reason: str) -> str:
    """Pod failure reasons are open-ended strings; keep a small fixed set."""
    known = {"PodDeleted", "NodeLost", "NodeNotReady", "Evicted", "PodFailed", "DeadlineExceeded"}
    return reason if reason in known else "Other"


def count_reschedule(metrics: OperatorMetrics, reason: str) -> None:
    metrics.reschedules.labels(_bounded_reason(reason)).inc()


async def serve(metrics: OperatorMetrics, host: str, port: int) -> web.AppRunner:
    """Start the HTTP endpoint; returns the runner (``await runner.cleanup()`` to stop)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "leader": metrics.is_leader})

    async def prom(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prom)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
