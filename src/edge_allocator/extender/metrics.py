"""Prometheus metrics of the extender, on a registry of its own (one per app instance).

Labels are bounded: verbs, outcomes and error kinds are fixed sets; model identity is one
info-style gauge whose labels change only on activation.
"""

from __future__ import annotations

import gc
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


_NUMBERED = re.compile(r"[-_ ]?\(?\d+\)?(?:[-_ ].*)?$")


def thread_group(name: str) -> str:
    """A thread's name without its pool number ("extender-verb_0" -> "extender-verb",
    "AnyIO worker thread" stays), so the label set stays bounded however many threads run."""
    if name.startswith("Thread-"):
        return "unnamed"
    return _NUMBERED.sub("", name) or name


def native_thread_cpu_s(known: set[int]) -> float:
    """CPU seconds of this process's threads that Python does not know (``known``: their
    native ids): threads a library started, such as a BLAS or OpenMP pool, whose spinning
    between calls is otherwise invisible. 0.0 where /proc is not there."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 0.0
    for tid in tids:
        if int(tid) in known:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick


class ThreadCpuCollector(Collector):
    """CPU seconds used by this process's live threads, summed per thread group (Linux
    per-thread CPU clocks): which part of the extender (verb worker, event loop, binder, watches,
    writer) pays for a pod, read from /metrics. Threads no Python code started are one group,
    ``native``. Threads that ended are not counted."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "edge_allocator_thread_cpu_seconds",
            "CPU seconds used by the extender's live threads, by thread group.",
            labels=["thread"],
        )
        totals: dict[str, float] = {}
        known: set[int] = set()
        for t in threading.enumerate():
            if t.ident is None:
                continue
            if t.native_id is not None:
                known.add(t.native_id)
            try:
                cpu = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
            except (OSError, AttributeError):  # ended meanwhile, or no per-thread clocks here
                continue
            group = "event-loop" if t is threading.main_thread() else thread_group(t.name)
            totals[group] = totals.get(group, 0.0) + cpu
        totals["native"] = native_thread_cpu_s(known)
        for group, cpu in sorted(totals.items()):
            family.add_metric([group], cpu)
        yield family


class _GcPauses:
    """Seconds the interpreter spent in cyclic GC, per generation: every thread waits for a
    collection (it holds the interpreter lock), so a full one is a pause on the verbs too. One
    callback per process, installed by the first :class:`GcCollector`."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info.get("generation", 2)
        self.seconds[generation] += time.perf_counter() - self._started
        self.collections[generation] += 1


_GC_PAUSES = _GcPauses()


class GcCollector(Collector):
    """``edge_allocator_gc_pause_seconds_total{generation}`` and the collections behind it."""

    def __init__(self) -> None:
        if _GC_PAUSES not in gc.callbacks:
            gc.callbacks.append(_GC_PAUSES)

    def collect(self) -> Iterator[CounterMetricFamily]:
        pauses = CounterMetricFamily(
            "edge_allocator_gc_pause_seconds",
            "Seconds spent in the interpreter's cyclic garbage collector, by generation.",
            labels=["generation"],
        )
        count = CounterMetricFamily(
            "edge_allocator_gc_collections",
            "Cyclic garbage collections, by generation.",
            labels=["generation"],
        )
        for g in range(3):
            pauses.add_metric([str(g)], _GC_PAUSES.seconds[g])
            count.add_metric([str(g)], _GC_PAUSES.collections[g])
        yield pauses
        yield count


class CallbackFamily(Collector):
    """A metric family read at scrape time from ``read()`` (label value -> value), for figures
    other components keep themselves: totals (reflector events, the verb gate's waits) as a
    counter, current values (transfers in flight) as a gauge (``gauge=True``)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        read: Callable[[], Mapping[str, float]],
        *,
        gauge: bool = False,
    ) -> None:
        self.name, self.documentation, self.label, self.read = name, documentation, label, read
        self.kind = GaugeMetricFamily if gauge else CounterMetricFamily

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        family = self.kind(self.name, self.documentation, labels=[self.label])
        for value, current in sorted(self.read().items()):
            family.add_metric([value], current)
        yield family


class ExtenderMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        r.register(ThreadCpuCollector())
        r.register(GcCollector())
        self.verb_queue_seconds = Histogram(
            "edge_allocator_verb_queue_seconds",
            "Time a verb waited for the verb worker (busy with the previous pod's work, e.g. "
            "preparing the next snapshot's embeddings) before its own scoring started.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_seconds = Histogram(
            "edge_allocator_extender_request_seconds",
            "Time to answer one request, by verb (filter, prioritize, score, admin).",
            ["verb"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "edge_allocator_inference_seconds",
            "Time the policy took to score one request's candidates.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.candidates = Histogram(
            "edge_allocator_extender_candidates",
            "Candidate nodes per scored request.",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.prioritize_where = Counter(
            "edge_allocator_prioritize_scored_total",
            "/prioritize calls by where they were scored: loop (the event loop itself, the work "
            "bounded) or worker (the verb worker).",
            ["where"],
            registry=r,
        )
        self.errors = Counter(
            "edge_allocator_extender_errors_total",
            "Requests answered with an error, by verb and kind.",
            ["verb", "kind"],
            registry=r,
        )
        self.decisions = Counter(
            "edge_allocator_decisions_total",
            "Decision records by outcome (with_binding, written, pod_gone, failed, dropped).",
            ["outcome"],
            registry=r,
        )
        self.cache_age = Gauge(
            "edge_allocator_cache_age_seconds",
            "Seconds since the cluster snapshot was last rebuilt (-1 before the first sync).",
            registry=r,
        )
        self.cache_nodes = Gauge(
            "edge_allocator_cache_nodes", "Nodes in the current snapshot.", registry=r
        )
        self.model_info = Gauge(
            "edge_allocator_model_info",
            "The active policy (value 1) with its name and version as labels.",
            ["policy", "version"],
            registry=r,
        )

        self.shadow_requests = Counter(
            "edge_allocator_shadow_requests_total",
            "Decisions the shadow policy scored, by outcome: same_top (it would have chosen the "
            "active policy's node), different_top, dropped (its queue was full), failed.",
            ["outcome"],
            registry=r,
        )
        self.shadow_rank_correlation = Histogram(
            "edge_allocator_shadow_rank_correlation",
            "Spearman rank correlation of the shadow's and the active policy's candidate scores.",
            buckets=(-0.5, 0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0),
            registry=r,
        )
        self.shadow_gain_seconds = Histogram(
            "edge_allocator_shadow_predicted_gain_seconds",
            "Estimated completion time on the active policy's node minus on the shadow's "
            "(positive: the shadow's choice is predicted faster).",
            buckets=(-10.0, -1.0, -0.1, -0.01, 0.0, 0.01, 0.1, 1.0, 10.0),
            registry=r,
        )
        self.shadow_info = Gauge(
            "edge_allocator_shadow_info",
            "The shadow policy (value 1) with its name and version as labels; none when unset.",
            ["policy", "version"],
            registry=r,
        )

    def bind_cache(self, age: Callable[[], float | None], nodes: Callable[[], int]) -> None:
        self.cache_age.set_function(lambda: -1.0 if (a := age()) is None else a)
        self.cache_nodes.set_function(lambda: float(nodes()))

    def bind_inflight(self, counts: Callable[[], Mapping[str, float]]) -> None:
        """Export the input transfers the snapshot counts in flight, per link (``counts``:
        link -> transfers; bounded by the EdgeNetworks' links and sites)."""
        self.registry.register(
            CallbackFamily(
                "edge_allocator_transfers_in_flight",
                "Input transfers estimated in flight per link: pods placed lately whose input "
                "crosses it, counted until their estimated arrival (a site's own network is "
                "labelled with the site's name).",
                "link",
                counts,
                gauge=True,
            )
        )

    def bind_watches(self, counts: Callable[[], Mapping[str, float]]) -> None:
        """Export the reflectors' event counts (``counts``: kind -> events so far); every
        event is parsed and folded into the cache: its cost per pod is this count times the
        size."""
        self.registry.register(
            CallbackFamily(
                "edge_allocator_watch_events",
                "Watch events received from the API server, by collection.",
                "kind",
                counts,
            )
        )

    def bind_gate(self, waited: Callable[[], Mapping[str, float]]) -> None:
        """Export how long background work waited for the verbs (``waited``: kind of work ->
        seconds so far, the verb gate's totals)."""
        self.registry.register(
            CallbackFamily(
                "edge_allocator_background_wait_seconds",
                "Seconds background work (watch events, snapshot rebuilds, decision records, "
                "annotation writes, the shadow policy) waited for the verbs in flight.",
                "work",
                waited,
            )
        )

    def set_model(self, policy: str, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(policy=policy, version=version).set(1)

    def set_shadow(self, policy: str | None, version: str | None) -> None:
        self.shadow_info.clear()
        if policy is not None:
            self.shadow_info.labels(policy=policy, version=version or "").set(1)
