"""Shadow scoring: a second policy scores every decision off the request path, for comparison.

Before a model goes live, it can watch live traffic: each decision the active policy takes is
queued (the snapshot it was scored on, the task, the candidates and the active scores) and a
background thread scores it with the shadow policy. Per decision it records:

* whether the shadow's top node is the active policy's top node;
* Spearman's rank correlation between the two score vectors over the candidates (average
  ranks for ties; undefined, and skipped, when either vector is constant or n < 2);
* the predicted gain in seconds: the estimated completion time (the ``est-completion``
  estimator: network time plus CPU time at the node's free rate) on the active policy's node
  minus on the shadow's node; positive means the shadow's choice is predicted faster.

The cost is bounded so the shadow never slows the verbs: ``submit`` never blocks (a full queue
drops the job and counts it); the thread starts a job only when the :class:`VerbGate` is quiet
(no verb in flight and none ended in its last ``quiet_s``; the verbs share the interpreter lock
with it), however long that takes; and it sleeps
``(1 - duty) / duty`` times as long as it scored, so it uses at most ``duty`` of one core.
Under sustained verb load the shadow therefore falls behind and drops jobs - by design.

Activation can be gated on evidence: :func:`card_regression` says when a model's held-out
model card is worse than the active policy's (the admin API then refuses unless forced).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.dashboard.model_card import summarize_model
from edge_allocator.extender.metrics import ExtenderMetrics
from edge_allocator.extender.scoring import rank
from edge_allocator.extender.verbgate import VerbGate
from edge_allocator.policy.base import PlacementPolicy
from edge_allocator.policy.baselines import EstimatedCompletionPolicy
from edge_allocator.policy.registry import GNN, ModelIndex

log = logging.getLogger(__name__)


def average_ranks(values: Sequence[float]) -> list[float]:
    """Rank of each value (1 = smallest), ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on average ranks); None when undefined."""
    n = len(a)
    if n < 2 or n != len(b):
        return None
    ra, rb = average_ranks(a), average_ranks(b)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    if va == 0 or vb == 0:
        return None
    return max(-1.0, min(1.0, cov / math.sqrt(va * vb)))


_ESTIMATOR = EstimatedCompletionPolicy()


def predicted_gain_s(snap: ClusterSnapshot, task: TaskSpec, active: str, shadow: str) -> float:
    """Estimated completion seconds on ``active`` minus on ``shadow`` (see the module doc)."""
    if active == shadow:
        return 0.0
    on_active, on_shadow = _ESTIMATOR.score(snap, task, [active, shadow])
    return float(on_shadow - on_active)  # scores are negated times


@dataclass(frozen=True)
class Job:
    snapshot: ClusterSnapshot
    task: TaskSpec
    candidates: tuple[str, ...]
    active_raw: tuple[float, ...]
    active_top: int


@dataclass
class ShadowStats:
    """Running totals since the shadow policy was set."""

    scored: int = 0
    same_top: int = 0
    correlated: int = 0
    correlation_sum: float = 0.0
    gain_sum_s: float = 0.0
    dropped: int = 0
    failed: int = 0


class ShadowScorer:
    """Owns the shadow policy, its queue and its thread (started when a policy is first set)."""

    def __init__(
        self,
        metrics: ExtenderMetrics,
        *,
        capacity: int = 256,
        duty: float = 0.25,
        gate: VerbGate | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if not 0 < duty <= 1:
            raise ValueError("duty must be in (0, 1]")
        self.metrics = metrics
        self.duty = duty
        self.gate = gate or VerbGate()
        self._sleep = sleep
        self._queue: queue.Queue[tuple[int, Job] | None] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._name: str | None = None
        self._policy: PlacementPolicy | None = None
        self._generation = 0
        self._stats = ShadowStats()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def policy(self) -> PlacementPolicy | None:
        return self._policy

    def set_policy(self, name: str | None, policy: PlacementPolicy | None) -> None:
        """Shadow ``policy`` (already validated) from now on; None stops shadowing. The totals
        start again, and jobs queued for the previous policy are discarded."""
        with self._lock:
            self._name, self._policy = (name, policy) if policy is not None else (None, None)
            self._generation += 1
            self._stats = ShadowStats()
        self.metrics.set_shadow(
            policy.name if policy else None, str(policy.version) if policy else None
        )
        if policy is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
            self._thread.start()

    def submit(
        self,
        snap: ClusterSnapshot,
        task: TaskSpec,
        candidates: Sequence[str],
        raw: Sequence[float],
        top: int,
    ) -> None:
        """Queue one decision for the shadow; never blocks (a full queue drops it)."""
        if self._policy is None:
            return
        job = Job(snap, task, tuple(candidates), tuple(raw), top)
        try:
            self._queue.put_nowait((self._generation, job))
        except queue.Full:
            with self._lock:
                self._stats.dropped += 1
            self.metrics.shadow_requests.labels(outcome="dropped").inc()

    def stats(self) -> dict[str, Any]:
        """What the admin API and the dashboard show."""
        with self._lock:
            s, name, policy = self._stats, self._name, self._policy
            return {
                "name": name,
                "policy": policy.name if policy else None,
                "version": str(policy.version) if policy else None,
                "scored": s.scored,
                "sameTop": s.same_top,
                "agreement": round(s.same_top / s.scored, 4) if s.scored else None,
                "meanRankCorrelation": (
                    round(s.correlation_sum / s.correlated, 4) if s.correlated else None
                ),
                "meanPredictedGainS": round(s.gain_sum_s / s.scored, 6) if s.scored else None,
                "dropped": s.dropped,
                "failed": s.failed,
                "queued": self._queue.qsize(),
            }

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued job is scored (tests and shutdown); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self) -> None:
        """Stop the thread after its current job (never blocks, even on a full queue)."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # full: the flag is seen after the current job
            self._queue.put_nowait(None)

    def _run(self) -> None:
        while not self._stopping.is_set():
            item = self._queue.get()
            try:
                if item is None:
                    return
                generation, job = item
                self.gate.wait_quiet("shadow", unbounded=True, stop=self._stopping)
                t0 = time.perf_counter()
                self._score(generation, job)
                spent = time.perf_counter() - t0
            finally:
                self._queue.task_done()
            if self.duty < 1:
                self._sleep(spent * (1 - self.duty) / self.duty)

    def _score(self, generation: int, job: Job) -> None:
        policy = self._policy
        if policy is None or generation != self._generation:
            return  # the shadow changed since this job was queued
        try:
            raw = [float(x) for x in policy.score(job.snapshot, job.task, job.candidates)]
            if len(raw) != len(job.candidates):
                raise ValueError(f"{len(raw)} scores for {len(job.candidates)} candidates")
            top = rank(job.candidates, raw, 1)[0]  # the verbs' tie rule: by name
            corr = spearman(job.active_raw, raw)
            gain = predicted_gain_s(
                job.snapshot, job.task, job.candidates[job.active_top], job.candidates[top]
            )
        except Exception as exc:  # a broken shadow must never matter to the active path
            log.warning("shadow policy %s failed: %r", policy.name, exc)
            with self._lock:
                if generation == self._generation:
                    self._stats.failed += 1
            self.metrics.shadow_requests.labels(outcome="failed").inc()
            return
        same = top == job.active_top
        with self._lock:
            if generation != self._generation:
                return
            s = self._stats
            s.scored += 1
            s.same_top += same
            s.gain_sum_s += gain
            if corr is not None:
                s.correlated += 1
                s.correlation_sum += corr
        self.metrics.shadow_requests.labels(outcome="same_top" if same else "different_top").inc()
        if corr is not None:
            self.metrics.shadow_rank_correlation.observe(corr)
        self.metrics.shadow_gain_seconds.observe(gain)


def _heldout_relative(name: str, index: ModelIndex) -> tuple[dict[str, float], str]:
    """(policy -> held-out completion relative to kube-default, the model's own row name) from
    the model card next to ``name``'s file; empty for a baseline or a model without a card."""
    path: Path | None = None
    own = name
    if name == GNN:
        path = next((m.path for m in index.models() if m.shipped), None)
        own = GNN
    elif name.startswith(GNN + "@"):
        version = name.split("@", 1)[1]
        found = next((m for m in index.models() if m.name == GNN and m.version == version), None)
        path, own = (found.path, found.name) if found else (None, GNN)
    summary = summarize_model(name, own, "", path)
    return {c.policy: c.relative for c in summary.comparison}, own


def card_regression(candidate: str, active: str, index: ModelIndex) -> str | None:
    """Why activating ``candidate`` over ``active`` looks like a regression on held-out
    scenarios, or None (no evidence either way counts as no regression).

    Each side's figure is its own row in its own model card (mean completion time relative to
    kube-default, held-out split); a heuristic baseline has no card of its own, so its row in
    the other side's card stands in for it.
    """
    cand_rows, cand_own = _heldout_relative(candidate, index)
    act_rows, act_own = _heldout_relative(active, index)
    cand = cand_rows.get(cand_own, act_rows.get(cand_own))
    act = act_rows.get(act_own, cand_rows.get(act_own))
    if cand is None or act is None or cand <= act:
        return None
    return (
        f"its held-out card is worse than the active {active!r}: mean completion "
        f"{cand:.3f} vs {act:.3f} of kube-default's (lower is better)"
    )
