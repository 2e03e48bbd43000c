"""The operator's work queue: one run per key at a time, bursts collapse, nothing is lost."""

from __future__ import annotations

import asyncio

from edge_allocator.operator.workqueue import WorkQueue


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
