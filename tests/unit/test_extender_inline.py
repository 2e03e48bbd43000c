"""/prioritize on the event loop itself when its work is bounded, on a verb worker otherwise.

Bounded means: at most ``Settings.inline_candidates`` candidates, a policy whose per-snapshot
work on the current snapshot is done (the GNN's embedding), no other verb on a worker, and no
wait for the watch cache's lock (a rebuild may hold it for tens of milliseconds: the
assumption is then made on a worker before the answer goes out).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_extender_burst import NODE_NAMES, T0, equal_fleet
from test_extender_cache import Clock, bound_pod
from test_extender_helpers import fleet, make_app, pod

from edge_allocator.cluster import annotations as ann
from edge_allocator.extender.app import create_app
from edge_allocator.extender.cache import PODS
from edge_allocator.extender.models import ModelManager
from edge_allocator.extender.service import ExtenderService
from edge_allocator.extender.settings import Settings
from edge_allocator.extender.wire import ExtenderArgs
from edge_allocator.policy.base import Preparable

NAMES = [f"node-{i:04d}" for i in range(6)]


def _scoring_threads(service: ExtenderService) -> list[str]:
    """The names of the threads ``service.score`` runs on, call by call."""
    names: list[str] = []
    score = service.score

    def spy(*a: Any, **kw: Any) -> Any:
        names.append(threading.current_thread().name)
        return score(*a, **kw)

    service.score = spy  # type: ignore[method-assign]
    return names


def _on_worker(thread: str) -> bool:
    return thread.startswith("extender-verb")


def test_a_prepared_snapshot_is_scored_without_a_worker() -> None:
    app, service, _ = make_app(policy="gnn")
    threads = _scoring_threads(service)
    c = TestClient(app)
    body = {"Pod": pod(), "NodeNames": NAMES}
    first = c.post("/prioritize", json=body)  # a snapshot never embedded: a worker scores it
    assert first.status_code == 200, first.text
    second = c.post("/prioritize", json=body)  # the same snapshot, embedded by then
    assert second.status_code == 200, second.text
    assert _on_worker(threads[0]) and not _on_worker(threads[1]), threads
    assert second.json() == first.json()
    assert service.gate.in_flight == 0
    where = service.metrics.prioritize_where
    assert [where.labels(where=w)._value.get() for w in ("loop", "worker")] == [1.0, 1.0]


def test_more_candidates_than_the_bound_or_a_policy_without_preparation_go_to_a_worker() -> None:
    app, service, _ = make_app(policy="gnn", inline_candidates=len(NAMES) - 1)
    threads = _scoring_threads(service)
    c = TestClient(app)
    for _ in range(3):
        assert c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES}).status_code == 200
    assert c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES[:2]}).status_code == 200
    assert [_on_worker(t) for t in threads] == [True, True, True, False]
    app, service, _ = make_app(policy="est-completion")  # nothing to prepare: no bound known
    threads = _scoring_threads(service)
    c = TestClient(app)
    for _ in range(2):
        assert c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES}).status_code == 200
    assert all(_on_worker(t) for t in threads)


def test_inline_and_worker_answers_are_the_same_decisions() -> None:
    """A stream of pods, each placement assumed (the next pod sees it): scoring on the loop or
    on a worker makes the same choices, pod for pod."""
    answers = []
    for inline in (2_000, 0):
        app, service, source = make_app(fleet(12, 3), policy="gnn", inline_candidates=inline)
        source.apply_assumptions = True
        threads = _scoring_threads(service)
        c = TestClient(app)
        names = [n.name for n in fleet(12, 3).nodes]
        got = []
        for i in range(12):
            r = c.post("/prioritize", json={"Pod": pod(f"p{i}", uid=f"u{i}"), "NodeNames": names})
            assert r.status_code == 200, r.text
            got.append(r.json())
            deadline = time.monotonic() + 10  # the next snapshot prepared (the gate free)
            while service.gate.in_flight and time.monotonic() < deadline:
                time.sleep(0.005)
        answers.append(got)
        # after the first pod every snapshot was prepared in time: all on the loop, or none
        assert [_on_worker(t) for t in threads] == [True] + [not inline] * 11
        assert [a[1] for a in source.assumed] == [
            next(h["Host"] for h in g if h["Score"] == 10) for g in got
        ]
    assert answers[0] == answers[1]


@pytest.mark.timeout(60)  # a blocking assumption would wait on this test's lock for good
def test_a_busy_cache_hands_the_assumption_back_instead_of_waiting() -> None:
    cache = equal_fleet(Clock(T0))
    service = ExtenderService(cache, ModelManager("gnn"))
    args = ExtenderArgs.model_validate({"Pod": pod(site="a"), "NodeNames": NODE_NAMES})
    service.prepare_next()  # the current snapshot's embedding, as after a previous pod
    assert cache._lock.acquire()  # a rebuild or a relist in progress
    try:
        later: list[Any] = []
        out = service.prioritize_bounded(args, later, 100)
        assert out is not None and out.assume is not None
        before = cache.current()
        assert before is not None and sum(n.running_tasks for n in before.nodes) == 0
    finally:
        cache._lock.release()
    out.assume()  # where waiting is allowed (a worker), before the answer goes out
    snap = cache.current()
    assert snap is not None
    chosen = NODE_NAMES[out.scores.index(10)]
    assert snap.node(chosen).running_tasks == 1
    # not busy: the assumption is made at once
    args2 = ExtenderArgs.model_validate(
        {"Pod": pod("p2", site="a", uid="u2"), "NodeNames": NODE_NAMES}
    )
    service.prepare_next()
    out2 = service.prioritize_bounded(args2, [], 100)
    assert out2 is not None and out2.assume is None
    snap2 = cache.current()
    assert snap2 is not None and sum(n.running_tasks for n in snap2.nodes) == 2


def test_a_snapshot_not_yet_prepared_is_declined_before_any_side_effect() -> None:
    cache = equal_fleet(Clock(T0))
    service = ExtenderService(cache, ModelManager("gnn"))
    args = ExtenderArgs.model_validate({"Pod": pod(site="a"), "NodeNames": NODE_NAMES})
    later: list[Any] = []
    assert service.prioritize_bounded(args, later, 100) is None
    assert later == [] and not service.record_pending("ns", "p")
    snap = cache.current()
    assert snap is not None and sum(n.running_tasks for n in snap.nodes) == 0


def test_the_builder_announces_each_new_snapshot_and_only_new_ones() -> None:
    """``on_publish`` runs on the builder thread after a rebuild that published a new snapshot
    (the extender prepares it there, ahead of the next request), not after one that changed
    nothing the scheduler sees."""
    cache = equal_fleet(Clock(T0))
    published = threading.Semaphore(0)
    cache.on_publish = published.release
    cache.start()
    try:
        cache.upsert(PODS, bound_pod("x", "n1", "500m", "64Mi"))  # n1's requests change
        assert published.acquire(timeout=10)
        first = cache.current()
        cache.upsert(PODS, bound_pod("x", "n1", "500m", "64Mi"))  # the same object again
        assert not published.acquire(timeout=0.5)
        assert cache.current() is first
    finally:
        cache.stop()


def test_a_snapshot_prepared_on_announcement_is_scored_on_the_loop() -> None:
    """A new snapshot (a rebuild between two pods) is not prepared by the last answer's
    preparation; ``prepare_soon`` (what the builder calls) prepares it, and the next
    /prioritize is scored on the loop instead of waiting for a worker to embed it."""
    results = []
    for announce in (False, True):
        app, service, source = make_app(policy="gnn")
        threads = _scoring_threads(service)
        c = TestClient(app)
        body = {"Pod": pod(), "NodeNames": NAMES}
        assert c.post("/prioritize", json=body).status_code == 200
        _wait_gate_free(service)
        snap = source.snapshot
        assert snap is not None
        source.snapshot = snap.with_nodes(snap.nodes, revision=snap.revision + 1, taken_at=1.0)
        if announce:
            assert app.prepare_soon is not None
            announcer = threading.Thread(target=app.prepare_soon)  # as the builder does
            announcer.start()
            announcer.join()
            _wait_gate_free(service)
        assert c.post("/prioritize", json=body).status_code == 200
        results.append(_on_worker(threads[-1]))
    assert results == [True, False]


def _wait_gate_free(service: ExtenderService) -> None:
    deadline = time.monotonic() + 10
    time.sleep(0.01)
    while service.gate.in_flight and time.monotonic() < deadline:
        time.sleep(0.005)
    assert service.gate.in_flight == 0


@pytest.mark.timeout(60)
def test_the_answer_waits_for_an_assumption_the_busy_cache_deferred() -> None:
    """Through the app: the cache's lock is held (a rebuild) while /prioritize is scored on the
    loop; the assumption is made on a worker once the lock is free, and only then does the
    answer go out, with the placement already in the snapshot the next pod reads."""
    cache = equal_fleet(Clock(T0))
    service = ExtenderService(cache, ModelManager("gnn"))
    c = TestClient(create_app(service, Settings()))
    threads = _scoring_threads(service)
    service.prepare_next()
    assert cache._lock.acquire()
    releaser = threading.Timer(0.3, cache._lock.release)
    releaser.start()
    t0 = time.monotonic()
    r = c.post("/prioritize", json={"Pod": pod(site="a"), "NodeNames": NODE_NAMES})
    waited = time.monotonic() - t0
    releaser.join()
    assert r.status_code == 200, r.text
    assert not _on_worker(threads[0]) and waited >= 0.25
    chosen = next(h["Host"] for h in r.json() if h["Score"] == 10)
    snap = cache.current()
    assert snap is not None and snap.node(chosen).running_tasks == 1


def test_a_policy_still_to_be_loaded_is_resolved_on_a_worker_first() -> None:
    """A pod naming a model the extender has not resolved yet: the load (directory listing,
    torch.load, validation) happens on the worker, never on the loop; later such pods are a
    dict lookup and can be scored on the loop."""
    app, service, _ = make_app(policy="est-completion")
    threads = _scoring_threads(service)
    loaded_on: list[str] = []
    load = service.policies._load

    def spy(name: str) -> Any:
        loaded_on.append(threading.current_thread().name)
        return load(name)

    service.policies._load = spy  # type: ignore[method-assign]
    c = TestClient(app)
    body = {"Pod": pod(extra={ann.ANN_POLICY: "gnn"}), "NodeNames": NAMES}
    for _ in range(3):
        assert c.post("/prioritize", json=body).status_code == 200
        _wait_gate_free(service)
    # loaded (and the unchanging snapshot embedded) on the worker, then dict lookups
    assert [_on_worker(t) for t in threads] == [True, False, False]
    assert len(loaded_on) == 1 and _on_worker(loaded_on[0])


def test_no_preparation_is_queued_after_the_app_shut_down() -> None:
    app, service, _ = make_app(policy="gnn")
    with TestClient(app) as c:  # runs the lifespan: shut down on exit
        assert c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES}).status_code == 200
        _wait_gate_free(service)
    assert app.prepare_soon is not None
    app.prepare_soon()  # a snapshot published during shutdown
    assert service.gate.in_flight == 0


def test_scores_from_prepared_work_only() -> None:
    """score_prepared never embeds: None for a snapshot it has not prepared, the same scores
    as score once it has."""
    _, service, source = make_app(policy="gnn")
    policy = service.models.active.policy
    snap = source.snapshot
    assert snap is not None
    task, _ = service._task(
        ExtenderArgs.model_validate({"Pod": pod(), "NodeNames": NAMES}).Pod, snap
    )
    assert isinstance(policy, Preparable)
    assert policy.score_prepared(snap, task, NAMES) is None and not policy.prepared(snap)
    policy.prepare(snap)
    assert policy.score_prepared(snap, task, NAMES) == policy.score(snap, task, NAMES)
