"""Decision storage: the bounded LRU and the delayed, cancellable, batched annotation writer."""

from __future__ import annotations

import threading

from edge_allocator.cluster.annotations import ANN_DECISION, DecisionRecord
from edge_allocator.extender.decisions import AnnotationWriter, DecisionLog, annotation_patch


def record(chosen: str) -> DecisionRecord:
    return DecisionRecord("p", "1", chosen, 10, 1, 1.0, (), 3, "t")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_log_is_bounded_lru() -> None:
    log = DecisionLog(capacity=2)
    log.put(("ns", "a"), "u1", record("n1"))
    log.put(("ns", "b"), "u2", record("n2"))
    assert log.get(("ns", "a")) is not None  # a is now the most recent
    log.put(("ns", "c"), "u3", record("n3"))
    assert log.get(("ns", "b")) is None and len(log) == 2


def test_writer_coalesces_delays_and_takes() -> None:
    writes: list[tuple[str, str, str, str]] = []
    outcomes: list[str] = []
    clock = Clock()
    w = AnnotationWriter(
        lambda ns, name, uid, text: writes.append((ns, name, uid, text)),
        on_result=outcomes.append,
        clock=clock,
        max_pending=3,
    )
    w.submit(("ns", "a"), "u1", record("n1"), delay_s=5)
    w.submit(("ns", "a"), "u1", record("n2"), delay_s=5)  # the latest decision wins
    w.submit(("ns", "b"), "u2", record("n3"), delay_s=5)
    assert w.pending() == 2
    assert w.take(("ns", "b"), "other-uid") is None  # a recreated pod never gets it
    text = w.take(("ns", "b"), "u2")
    assert text is not None and DecisionRecord.from_json(text).chosen == "n3"
    assert w.flush()
    assert [(ns, n, u) for ns, n, u, _ in writes] == [("ns", "a", "u1")]
    assert DecisionRecord.from_json(writes[0][3]).chosen == "n2"
    for i in range(5):  # bounded: the oldest is dropped and counted
        w.submit(("ns", f"p{i}"), "u", record("n"), delay_s=60)
    assert w.pending() == 3 and outcomes.count("dropped") == 2


def test_writer_thread_writes_when_due_and_reports_gone_pods() -> None:
    done = threading.Event()
    outcomes: list[str] = []

    class Gone(Exception):
        status = 404

    def patch(ns: str, name: str, uid: str, text: str) -> None:
        if name == "gone":
            raise Gone()

    def result(outcome: str) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 2:
            done.set()

    w = AnnotationWriter(patch, interval_s=0.01, on_result=result)
    w.start()
    w.submit(("ns", "gone"), "u", record("n"))
    w.submit(("ns", "ok"), "u", record("n"))
    assert done.wait(5), outcomes
    w.stop()
    assert sorted(outcomes) == ["pod_gone", "written"]


def test_patch_has_uid_precondition() -> None:
    assert annotation_patch("u1", "{}") == {
        "metadata": {"annotations": {ANN_DECISION: "{}"}, "uid": "u1"}
    }
