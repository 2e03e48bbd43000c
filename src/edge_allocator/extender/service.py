"""The extender's logic, free of HTTP: filter, prioritize and what-if scoring over one snapshot.

Handlers in ``app`` parse and validate; this module decides. Everything here is CPU only: it
reads the snapshot the cache built in the background, calls the policy, and hands the decision
to the log and the annotation writer (which only enqueue).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from edge_allocator.cluster.annotations import (
    ANN_DECISION,
    ANN_POLICY,
    TOP_CANDIDATES_KEPT,
    CandidateScore,
    DecisionRecord,
)
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.extender.decisions import AnnotationWriter, DecisionLog
from edge_allocator.extender.metrics import ExtenderMetrics
from edge_allocator.extender.models import ModelManager
from edge_allocator.extender.podtask import (
    TaskInputError,
    effective_requests,
    is_edge_task,
    task_from_pod,
)
from edge_allocator.extender.quantity import QuantityError
from edge_allocator.extender.scoring import filter_candidates, rank, to_extender_scores
from edge_allocator.extender.wire import ExtenderArgs, Pod
from edge_allocator.policy.base import PlacementPolicy


class SnapshotSource(Protocol):
    """What the service needs from a cache (the watch cache, or a fixed snapshot in tests)."""

    def current(self) -> ClusterSnapshot | None: ...
    def age_seconds(self) -> float | None: ...
    def assume(self, pod_uid: str, node: str, cpu_m: int, mem_mib: int) -> None: ...


class StaticSource:
    """A fixed snapshot: for tests, benchmarks and what-if tools."""

    def __init__(self, snapshot: ClusterSnapshot | None) -> None:
        self.snapshot = snapshot
        self.assumed: list[tuple[str, str, int, int]] = []

    def current(self) -> ClusterSnapshot | None:
        return self.snapshot

    def age_seconds(self) -> float | None:
        return None if self.snapshot is None else 0.0

    def assume(self, pod_uid: str, node: str, cpu_m: int, mem_mib: int) -> None:
        self.assumed.append((pod_uid, node, cpu_m, mem_mib))


class NotReadyError(Exception):
    """The cache has no snapshot yet; the scheduler should carry on without us."""


@dataclass(frozen=True)
class Scored:
    """One task scored on one snapshot, candidates in the order given."""

    policy: PlacementPolicy
    candidates: list[str]
    raw: list[float]
    scores: list[int]
    top: int
    latency_ms: list[float]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pod_requests(pod: Pod) -> tuple[int, int]:
    spec = pod.spec
    return effective_requests(
        [c.resources.requests for c in spec.containers],
        [(c.resources.requests, c.restart_policy == "Always") for c in spec.init_containers],
        spec.overhead,
        spec.resources.requests if spec.resources is not None else None,
    )


class ExtenderService:
    def __init__(
        self,
        source: SnapshotSource,
        models: ModelManager,
        *,
        log: DecisionLog | None = None,
        writer: AnnotationWriter | None = None,
        metrics: ExtenderMetrics | None = None,
        bind_grace_s: float = 0.0,
    ) -> None:
        self.bind_grace_s = bind_grace_s
        """How long a decision waits for the bind verb to carry it before it is PATCHed."""
        self.source = source
        self.models = models
        self.log = log or DecisionLog()
        self.writer = writer
        self.metrics = metrics or ExtenderMetrics()

    def snapshot(self) -> ClusterSnapshot:
        snap = self.source.current()
        if snap is None:
            raise NotReadyError("the cluster cache has not synced yet")
        return snap

    # ----- kube-scheduler verbs ---------------------------------------------------------------

    def _task(self, pod: Pod, snap: ClusterSnapshot) -> TaskSpec:
        try:
            return task_from_pod(pod.metadata.annotations, pod_requests(pod), snap)
        except QuantityError as exc:
            raise TaskInputError(f"Pod.spec resources: {exc}") from exc

    def filter(self, args: ExtenderArgs) -> dict[str, Any]:
        names = args.candidate_names()
        annotations = args.Pod.metadata.annotations
        if not is_edge_task(annotations):  # neutral: everything passes, no cache needed
            return self._filter_result(args, names, {}, {})
        snap = self.snapshot()
        try:
            task = self._task(args.Pod, snap)
        except TaskInputError as exc:
            reason = f"edge-allocator cannot place this pod: {exc}"
            return self._filter_result(args, [], {}, dict.fromkeys(names, reason))
        out = filter_candidates(snap, task, names)
        if len(out.passed) == 1:  # kube-scheduler skips prioritize: record the decision here
            self._decide(args.Pod, snap, task, out.passed)
        return self._filter_result(args, out.passed, out.failed, out.unresolvable)

    @staticmethod
    def _filter_result(
        args: ExtenderArgs, passed: list[str], failed: dict[str, str], unresolvable: dict[str, str]
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "FailedNodes": failed,
            "FailedAndUnresolvableNodes": unresolvable,
            "Error": "",
        }
        if args.NodeNames is not None:
            result["NodeNames"] = passed
            result["Nodes"] = None
        else:
            result["NodeNames"] = None
            result["Nodes"] = {"items": passed}  # names; app swaps in the original objects
        return result

    def prioritize(self, args: ExtenderArgs) -> list[tuple[str, int]]:
        """(host, score) for every candidate, in the order given."""
        names = args.candidate_names()
        if not is_edge_task(args.Pod.metadata.annotations):
            return [(n, 0) for n in names]
        snap = self.snapshot()
        try:
            task = self._task(args.Pod, snap)
        except TaskInputError:  # filter already explained it; score neutrally
            return [(n, 0) for n in names]
        known = [n for n in names if snap.has_node(n)]
        scored = self._decide(args.Pod, snap, task, known)
        if scored is None:
            return [(n, 0) for n in names]
        if len(known) == len(names):
            return list(zip(names, scored.scores, strict=True))
        by_name = dict(zip(scored.candidates, scored.scores, strict=True))
        return [(n, by_name.get(n, 0)) for n in names]

    def _decide(
        self, pod: Pod, snap: ClusterSnapshot, task: TaskSpec, candidates: list[str]
    ) -> Scored | None:
        if not candidates:
            return None
        policy = self.models.policy_for(pod.metadata.annotations.get(ANN_POLICY))
        scored = self.score(snap, task, candidates, policy, latencies="top")
        best = scored.candidates[scored.top]
        self.source.assume(pod.metadata.uid, best, task.cpu_request_m, task.mem_request_mib)
        order = rank(scored.candidates, scored.raw, TOP_CANDIDATES_KEPT)
        record = DecisionRecord(
            policy=policy.name,
            model_version=policy.version,
            chosen=best,
            score=scored.scores[scored.top],
            rank=1,
            latency_ms=round(scored.latency_ms[scored.top], 3),
            candidates=tuple(
                CandidateScore(scored.candidates[i], scored.scores[i], float(scored.raw[i]))
                for i in order
            ),
            candidate_count=len(candidates),
            at=now_iso(),
        )
        key = (pod.metadata.namespace, pod.metadata.name)
        self.log.put(key, pod.metadata.uid, record)
        if self.writer is not None:
            self.writer.submit(key, pod.metadata.uid, record, self.bind_grace_s)
        return scored

    def binding_annotations(self, namespace: str, name: str, uid: str) -> dict[str, str]:
        """The annotations a Binding of this pod should carry: its decision, when there is one.

        Takes the record out of the writer's queue (the Binding records it instead of a PATCH);
        falls back to this replica's memory when it was already written.
        """
        key = (namespace, name)
        text = self.writer.take(key, uid) if self.writer is not None else None
        if text is None:
            hit = self.log.get(key)
            if hit is not None and (not uid or not hit[0] or hit[0] == uid):
                text = hit[1].to_json()
        return {ANN_DECISION: text} if text is not None else {}

    def binding_failed(
        self, namespace: str, name: str, uid: str, annotations: dict[str, str]
    ) -> None:
        """Put a record back for the writer when the Binding that was to carry it failed."""
        text = annotations.get(ANN_DECISION)
        if text is not None and self.writer is not None:
            self.writer.submit_text((namespace, name), uid, text)

    # ----- scoring (verbs and what-if) --------------------------------------------------------

    def score(
        self,
        snap: ClusterSnapshot,
        task: TaskSpec,
        candidates: Sequence[str],
        policy: PlacementPolicy | None = None,
        *,
        latencies: str = "all",
    ) -> Scored:
        """Score ``candidates`` (all in ``snap``) with ``policy`` (default: the active one)."""
        policy = policy or self.models.active.policy
        names = list(candidates)
        t0 = time.perf_counter()
        raw = [float(x) for x in policy.score(snap, task, names)]
        self.metrics.inference_seconds.observe(time.perf_counter() - t0)
        self.metrics.candidates.observe(len(names))
        scores, top = to_extender_scores(names, raw)
        if latencies == "all":
            lat = [snap.network_time_ms(task, snap.node(n)) for n in names]
        else:
            lat = [0.0] * len(names)
            lat[top] = snap.network_time_ms(task, snap.node(names[top]))
        return Scored(policy, names, raw, scores, top, lat)
