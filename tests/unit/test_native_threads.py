"""Threads no Python code started (capped for BLAS, counted in the CPU metric) and GC pauses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from edge_allocator.extender.metrics import native_thread_cpu_s

_COUNT_THREADS = """
import edge_allocator, numpy as np, os
a = np.ones((4000, 64), np.float32)
for _ in range(50):
    a @ np.ones((64, 64), np.float32)
print(len(os.listdir("/proc/self/task")))
"""


def test_importing_the_package_first_keeps_numpy_on_one_thread() -> None:
    """Without the cap OpenBLAS starts a spinning worker per core (checked: 2 tasks here)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", _COUNT_THREADS], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1", out.stdout + out.stderr


def test_native_thread_cpu_counts_threads_python_does_not_know() -> None:
    t0 = time.thread_time()
    while time.thread_time() - t0 < 0.3:  # CPU on this (a known) thread
        pass
    known = {t.native_id for t in threading.enumerate() if t.native_id is not None}
    everything = native_thread_cpu_s(set())
    unknown = native_thread_cpu_s(known)
    assert everything >= 0.25  # this thread's 0.3 s at least, read from /proc
    assert everything - unknown >= 0.25  # and none of it counted as native once known


def test_gc_pauses_are_counted_by_generation() -> None:
    import gc

    from prometheus_client import CollectorRegistry, generate_latest

    from edge_allocator.extender.metrics import GcCollector

    registry = CollectorRegistry()
    registry.register(GcCollector())

    def sample(name: str) -> float:
        text = generate_latest(registry).decode()
        line = next(x for x in text.splitlines() if x.startswith(name))
        return float(line.rsplit(" ", 1)[1])

    before = sample('edge_allocator_gc_collections_total{generation="2"}')
    paused = sample('edge_allocator_gc_pause_seconds_total{generation="2"}')
    junk = [[i] for i in range(200_000)]  # something for a full collection to walk
    gc.collect()
    del junk
    assert sample('edge_allocator_gc_collections_total{generation="2"}') >= before + 1
    assert sample('edge_allocator_gc_pause_seconds_total{generation="2"}') > paused
