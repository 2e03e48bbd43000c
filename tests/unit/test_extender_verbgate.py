"""The verb gate: background work waits while a verb is in flight, for a quiet moment after it,
never longer than the bound; the waits are counted per kind of work."""

from __future__ import annotations

import threading
import time

import pytest

from edge_allocator.extender.verbgate import VerbGate


def _waiter(gate: VerbGate, work: str, out: list[float], **kw: object) -> threading.Thread:
    t = threading.Thread(target=lambda: out.append(gate.wait_quiet(work, **kw)))  # type: ignore[arg-type]
    t.start()
    return t


def test_no_verb_no_wait() -> None:
    gate = VerbGate(quiet_s=0.01)
    assert gate.wait_quiet("watch") == 0.0
    assert gate.waited() == {}


def test_background_waits_for_the_verb_and_the_quiet_after_it() -> None:
    gate = VerbGate(quiet_s=0.05, max_wait_s=5.0)
    gate.verb_started()
    out: list[float] = []
    t = _waiter(gate, "watch", out)
    time.sleep(0.2)
    assert t.is_alive() and not out  # held while the verb is in flight
    ended = time.monotonic()
    gate.verb_finished()
    t.join(timeout=5)
    assert not t.is_alive()
    assert time.monotonic() - ended >= 0.05  # and for the quiet moment after it
    assert 0.25 <= out[0] < 5.0
    assert gate.waited()["watch"] == out[0]


def test_the_wait_is_bounded_while_verbs_never_stop() -> None:
    gate = VerbGate(quiet_s=0.0, max_wait_s=0.1)
    with gate.verb():
        t0 = time.monotonic()
        waited = gate.wait_quiet("recorder")
        assert 0.1 <= time.monotonic() - t0 < 1.0
        assert 0.1 <= waited < 1.0
        assert gate.in_flight == 1
    assert gate.in_flight == 0


def test_unbounded_waits_until_stopped() -> None:
    gate = VerbGate(quiet_s=0.0, max_wait_s=0.01)
    stop = threading.Event()
    gate.verb_started()
    out: list[float] = []
    t = _waiter(gate, "shadow", out, unbounded=True, stop=stop)
    time.sleep(0.2)
    assert t.is_alive()  # past the bound: unbounded ignores it
    stop.set()
    with gate._cond:  # wake it to see the stop
        gate._cond.notify_all()
    t.join(timeout=5)
    assert not t.is_alive() and out[0] >= 0.2


def test_several_verbs_hold_until_the_last_ends() -> None:
    gate = VerbGate(quiet_s=0.0, max_wait_s=5.0)
    gate.verb_started()
    gate.verb_started()
    out: list[float] = []
    t = _waiter(gate, "binder", out)
    gate.verb_finished()
    time.sleep(0.1)
    assert t.is_alive()
    gate.verb_finished()
    t.join(timeout=5)
    assert not t.is_alive()


def test_work_whose_wait_ran_out_passes_freely_for_a_while() -> None:
    """Under verbs that never stop, a kind of work that waited its whole bound then passes at
    once for the next bound (half of the time is its own), other kinds are not affected."""
    gate = VerbGate(quiet_s=0.0, max_wait_s=0.5)
    with gate.verb():
        assert gate.wait_quiet("watch") >= 0.5  # ran out of bound
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.1:
            assert gate.wait_quiet("watch") == 0.0  # its turn
        assert gate.wait_quiet("recorder") >= 0.5  # another kind still waits
        time.sleep(0.1)  # 0.7 s after the watch's free spell began: over
        assert gate.wait_quiet("watch") >= 0.5  # it waits again


def test_an_unmatched_finish_is_refused() -> None:
    """A verb_finished without its verb_started would leave the count negative and the gate
    held for good: refused."""
    gate = VerbGate()
    with pytest.raises(RuntimeError):
        gate.verb_finished()
    assert gate.in_flight == 0 and gate.wait_quiet("watch") == 0.0


def test_the_builder_and_the_writer_wait_on_the_gate() -> None:
    """The snapshot builder paces each rebuild and the annotation writer each write through
    the gate's pacer: while a verb is in flight neither moves; after it, both do."""
    from edge_allocator.extender.cache import NETWORKS, NODES, PODS, WatchCache
    from edge_allocator.extender.decisions import AnnotationWriter

    gate = VerbGate(quiet_s=0.0, max_wait_s=30.0)
    cache = WatchCache(min_rebuild_s=0.0, pace=gate.pacer("snapshot"))
    for kind in (NODES, PODS, NETWORKS):
        cache.replace(kind, [])
        cache.mark_synced(kind)
    written: list[str] = []
    writer = AnnotationWriter(
        lambda ns, name, uid, text: written.append(name),
        interval_s=0.01,
        pace=gate.pacer("annotation"),
    )
    gate.verb_started()
    cache.start()
    writer.start()
    writer.submit_text(("ns", "p"), "u", "{}")
    time.sleep(0.3)
    assert cache.current() is None and written == []  # both held by the verb in flight
    gate.verb_finished()
    deadline = time.monotonic() + 10
    while (cache.current() is None or not written) and time.monotonic() < deadline:
        time.sleep(0.01)
    cache.stop()
    writer.stop(flush=False)
    assert cache.current() is not None and written == ["p"]
    assert gate.waited()["snapshot"] >= 0.2 and gate.waited()["annotation"] >= 0.2
