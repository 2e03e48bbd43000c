"""The operator's work queue: one run per key at a time, bursts collapse, nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from edge_allocator.operator.cache import ClusterCache
from edge_allocator.operator.config import OperatorConfig
from edge_allocator.operator.controller import Controller
from edge_allocator.operator.kubeapi import ApiError
from edge_allocator.operator.metrics import OperatorMetrics
from edge_allocator.operator.workqueue import ItemBackoff, WorkQueue


async def test_duplicate_adds_collapse_while_waiting() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a", "b"):
        q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_adds_while_running_give_exactly_one_more_run() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")
    assert q._queue.empty()  # not handed to a second worker while the first runs
    q.done(key)
    assert await asyncio.wait_for(q.get(), timeout=1) == "a"
    q.done("a")
    assert len(q) == 0 and q._queue.empty()


async def test_workers_never_run_one_key_twice_at_once() -> None:
    q: WorkQueue[int] = WorkQueue()
    running: set[int] = set()
    overlaps = 0
    runs = 0

    async def worker() -> None:
        nonlocal overlaps, runs
        while True:
            key = await q.get()
            overlaps += key in running
            running.add(key)
            await asyncio.sleep(0.01)
            running.discard(key)
            runs += 1
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for _ in range(50):
        for key in range(3):
            q.add(key)
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)
    for w in workers:
        w.cancel()
    assert overlaps == 0
    assert len(q) == 0
    assert 3 <= runs <= 9  # 150 adds: each key ran, at most once more per run in progress


# -- per-key backoff ---------------------------------------------------------------------------


def test_backoff_doubles_from_base_up_to_the_cap() -> None:
    b: ItemBackoff[str] = ItemBackoff(base_s=1.0, factor=2.0, max_s=300.0, jitter=0.0)
    delays = [b.failed("a") for _ in range(12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert b.failures("a") == 12


def test_backoff_never_overflows_after_many_failures() -> None:
    b: ItemBackoff[str] = ItemBackoff(base_s=0.5, factor=3.0, max_s=60.0, jitter=0.0)
    for _ in range(5000):
        delay = b.failed("a")
    assert delay == 60.0
    assert b.nominal_s(10**6) == 60.0


def test_backoff_is_per_key_and_reset_by_success() -> None:
    b: ItemBackoff[str] = ItemBackoff(base_s=1.0, jitter=0.0)
    for _ in range(5):
        b.failed("broken")
    assert b.failed("healthy") == 1.0  # one key's failures never slow another down
    assert b.failed("broken") == 32.0
    assert len(b) == 2
    b.forget("broken")
    assert b.failures("broken") == 0 and len(b) == 1
    assert b.failed("broken") == 1.0  # starts over at the base


def test_backoff_jitter_only_shortens_and_stays_within_its_fraction() -> None:
    lowest: ItemBackoff[str] = ItemBackoff(base_s=1.0, max_s=300.0, jitter=0.2, rand=lambda: 1.0)
    highest: ItemBackoff[str] = ItemBackoff(base_s=1.0, max_s=300.0, jitter=0.2, rand=lambda: 0.0)
    for n in range(1, 15):
        low, high = lowest.failed("a"), highest.failed("a")
        nominal = min(2.0 ** (n - 1), 300.0)
        assert high == nominal
        assert low == pytest.approx(0.8 * nominal)
    real: ItemBackoff[str] = ItemBackoff(base_s=1.0, max_s=8.0, jitter=0.2)
    spread = {real.failed(f"k{i}") for i in range(200)}  # first failure of 200 keys
    assert all(0.8 <= d <= 1.0 for d in spread) and len(spread) > 100


@pytest.mark.parametrize(
    "kwargs",
    [{"base_s": 0.0}, {"base_s": 5.0, "max_s": 1.0}, {"factor": 0.5}, {"jitter": 1.0}],
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ItemBackoff(**kwargs)  # type: ignore[arg-type]


def test_the_queue_carries_one_backoff_per_queue() -> None:
    first: WorkQueue[str] = WorkQueue()
    second: WorkQueue[str] = WorkQueue()
    first.backoff.failed("a")
    assert first.backoff.failures("a") == 1 and second.backoff.failures("a") == 0


async def test_reconcile_failures_back_off_per_task_and_a_success_resets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = OperatorMetrics()
    ctl = Controller(cast(Any, None), ClusterCache(), OperatorConfig(), metrics)
    ctl.queue.backoff = ItemBackoff(base_s=1.0, max_s=300.0, jitter=0.0)
    errors: list[Exception | None] = [
        ApiError(500, "InternalError", "etcd"),
        OSError("connection reset"),
        RuntimeError("bug"),
        None,
    ]

    async def fake_reconcile(key: tuple[str, str]) -> None:
        err = errors.pop(0) if key == ("ns", "broken") else None
        if err is not None:
            raise err

    delays: list[tuple[tuple[str, str], float]] = []
    monkeypatch.setattr(ctl, "_reconcile", fake_reconcile)
    monkeypatch.setattr(ctl, "requeue", lambda key, delay: delays.append((key, delay)))
    backing_off = "edge_allocator_operator_backoff_tasks"
    for _ in range(3):
        await ctl.reconcile(("ns", "broken"))
        await ctl.reconcile(("ns", "fine"))
    assert delays == [(("ns", "broken"), 1.0), (("ns", "broken"), 2.0), (("ns", "broken"), 4.0)]
    assert metrics.registry.get_sample_value(backing_off) == 1
    assert (
        metrics.registry.get_sample_value(
            "edge_allocator_operator_errors_total", {"kind": "internal"}
        )
        == 1
    )
    await ctl.reconcile(("ns", "broken"))  # succeeds
    assert ctl.queue.backoff.failures(("ns", "broken")) == 0
    assert metrics.registry.get_sample_value(backing_off) == 0
