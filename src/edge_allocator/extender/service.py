"""The extender's logic, free of HTTP: filter, prioritize and what-if scoring over one snapshot.

Handlers in ``app`` parse and validate; this module decides. Everything here is CPU only: it
reads the snapshot the cache built in the background, calls the policy, and hands the decision
to the log and the annotation writer (which only enqueue).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import numpy as np

from edge_allocator.cluster.annotations import (
    ANN_DECISION,
    ANN_POLICY,
    TOP_CANDIDATES_KEPT,
    CandidateScore,
    DecisionRecord,
)
from edge_allocator.cluster.quantity import QuantityError
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.extender.decisions import AnnotationWriter, DecisionLog
from edge_allocator.extender.metrics import ExtenderMetrics
from edge_allocator.extender.models import (
    ModelManager,
    ModelValidationError,
    allowed_name,
    validate,
)
from edge_allocator.extender.podtask import (
    TaskInputError,
    effective_requests,
    is_edge_task,
    task_from_pod,
)
from edge_allocator.extender.scoring import filter_candidates, rank, to_extender_scores
from edge_allocator.extender.shadow import ShadowScorer
from edge_allocator.extender.verbgate import VerbGate
from edge_allocator.extender.wire import ExtenderArgs, Pod
from edge_allocator.policy.base import PlacementPolicy, Preparable
from edge_allocator.policy.model_file import ModelLoadError
from edge_allocator.policy.registry import (
    GNN,
    ModelIndex,
    UnknownPolicyError,
    get_policy,
    policy_names,
)


class SnapshotSource(Protocol):
    """What the service needs from a cache (the watch cache, or a fixed snapshot in tests)."""

    def current(self) -> ClusterSnapshot | None: ...
    def age_seconds(self) -> float | None: ...
    def assume(
        self,
        pod_uid: str,
        node: str,
        cpu_m: int,
        mem_mib: int,
        *,
        wait: bool = True,
        task: TaskSpec | None = None,
    ) -> bool: ...
    def pod_footprint(self, pod_uid: str) -> tuple[str, int, int] | None: ...


class StaticSource:
    """A fixed snapshot: for tests, benchmarks and what-if tools.

    ``apply_assumptions``: each assumption becomes a new revision with that node's load patched
    (as the watch cache does), so a stream of requests sees one node changed each time.
    """

    def __init__(
        self, snapshot: ClusterSnapshot | None, *, apply_assumptions: bool = False
    ) -> None:
        self.snapshot = snapshot
        self.apply_assumptions = apply_assumptions
        self.assumed: list[tuple[str, str, int, int]] = []

    def current(self) -> ClusterSnapshot | None:
        return self.snapshot

    def age_seconds(self) -> float | None:
        return None if self.snapshot is None else 0.0

    def assume(
        self,
        pod_uid: str,
        node: str,
        cpu_m: int,
        mem_mib: int,
        *,
        wait: bool = True,
        task: TaskSpec | None = None,
    ) -> bool:
        self.assumed.append((pod_uid, node, cpu_m, mem_mib))
        snap = self.snapshot
        if self.apply_assumptions and snap is not None and snap.has_node(node):
            i = snap.index_of(node)
            nodes = list(snap.nodes)
            nodes[i] = nodes[i].with_pods(cpu_m, mem_mib, 1)
            self.snapshot = snap.with_nodes(
                tuple(nodes), revision=snap.revision + 1, taken_at=snap.taken_at, changed=[i]
            )
        return True

    def pod_footprint(self, pod_uid: str) -> tuple[str, int, int] | None:
        for uid, node, cpu, mem in self.assumed:
            if uid == pod_uid:
                return node, cpu, mem
        return None


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


@dataclass(frozen=True)
class Prioritized:
    """A /prioritize answer: the candidates in the order given, their scores, and (from a
    bounded call whose cache was busy) the placement's assumption still to be made."""

    names: list[str]
    scores: list[int]
    assume: Callable[[], object] | None = None


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


class NotResolvedYet(LookupError):
    """A pod's policy is not resolved for the current models yet (a load is due)."""


class NotPrepared(LookupError):
    """The policy's per-snapshot work on this snapshot is not done (or no longer cached)."""


class PolicyResolver:
    """A pod's own policy (annotation ``edge-allocator.io/policy``, from EdgeTask
    ``spec.policy``), resolved and validated once per name, then a dict lookup.

    The first pod naming a policy loads it and checks it scores the probe cluster (on a verb
    worker thread, never the event loop); unknown or refused names are remembered as well, so a
    pod stuck on ``gnn@9.9.9`` costs a dict lookup per scheduling cycle, not a scan of the
    models directory. Entries are keyed by the model index's generation: when the background
    refresh sees a model file appear or change, the names are looked up again.
    """

    FIELD = f"annotation {ANN_POLICY} (EdgeTask spec.policy)"
    MAX_ENTRIES = 256

    def __init__(self, models: ModelManager, index: ModelIndex | None = None) -> None:
        self.models = models
        self.index = index or ModelIndex()
        self._entries: dict[str, tuple[int, PlacementPolicy | str]] = {}
        self._validated: dict[str, PlacementPolicy] = {}
        self._lock = threading.Lock()

    def resolve(self, requested: str | None, *, load: bool = True) -> PlacementPolicy:
        """The policy to score with; raises TaskInputError naming the field when refused.
        ``load=False`` (the event loop): raises NotResolvedYet instead of listing, loading or
        validating anything."""
        active = self.models.active
        if not requested or requested == active.name:
            return active.policy
        hit = self._entries.get(requested)
        if hit is None or hit[0] != self.index.generation:
            if not load:
                raise NotResolvedYet(requested)
            with self._lock:  # one load per name, however many pods ask at once
                self.index.models()  # the first lookup ever lists the directory once
                generation = self.index.generation
                hit = self._entries.get(requested)
                if hit is None or hit[0] != generation:
                    hit = (generation, self._load(requested))
                    if len(self._entries) >= self.MAX_ENTRIES:
                        self._entries.clear()
                    self._entries[requested] = hit
        found = hit[1]
        if isinstance(found, str):
            raise TaskInputError(found)
        return found

    def _load(self, name: str) -> PlacementPolicy | str:
        """The validated policy, or the message that refuses it."""
        if len(name) > 63 or not allowed_name(name):
            known = ", ".join(policy_names())
            return (
                f"{self.FIELD}: unknown policy {name[:80]!r}; known: {known}, "
                f"or {GNN}@<version> of a model file{self._versions()}"
            )
        try:
            policy = get_policy(name)
        except UnknownPolicyError as exc:
            return f"{self.FIELD}: {exc}{self._versions()}"
        except ModelLoadError as exc:
            return f"{self.FIELD}: policy {name!r} cannot be loaded: {exc}"
        if self._validated.get(name) is not policy:
            try:
                validate(policy, None)
            except ModelValidationError as exc:
                return f"{self.FIELD}: policy {name!r} refused: {exc}"
            self._validated[name] = policy
        return policy

    def _versions(self) -> str:
        versions = self.index.versions(GNN)
        return f" (model versions found: {', '.join(versions)})" if versions else ""


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
        model_index: ModelIndex | None = None,
        gate: VerbGate | None = None,
    ) -> None:
        self.bind_grace_s = bind_grace_s
        """How long a decision waits for the bind verb to carry it before it is PATCHed."""
        self.source = source
        self.models = models
        self.log = log or DecisionLog()
        self.writer = writer
        self.metrics = metrics or ExtenderMetrics()
        self.policies = PolicyResolver(models, model_index)
        self.gate = gate or VerbGate()
        """Verbs in flight; the background threads (shadow included) wait for them."""
        self.shadow = ShadowScorer(self.metrics, gate=self.gate)
        """A second policy scoring every decision off the request path (none until set)."""
        self._recording: dict[tuple[str, str], threading.Event] = {}
        """Pods whose decision record is still to be made by a deferred step (see
        :meth:`prioritize`), each with the event set once it is made."""
        self._recording_lock = threading.Lock()

    def snapshot(self) -> ClusterSnapshot:
        snap = self.source.current()
        if snap is None:
            raise NotReadyError("the cluster cache has not synced yet")
        return snap

    # ----- kube-scheduler verbs ---------------------------------------------------------------

    def _task(
        self, pod: Pod, snap: ClusterSnapshot, *, load: bool = True
    ) -> tuple[TaskSpec, PlacementPolicy]:
        """The pod's task and the policy it is scored with (TaskInputError names the field;
        with ``load=False`` NotResolvedYet when the policy would have to be loaded first)."""
        try:
            task = task_from_pod(pod.metadata.annotations, pod_requests(pod), snap)
        except QuantityError as exc:
            raise TaskInputError(f"Pod.spec resources: {exc}") from exc
        except ArithmeticError as exc:  # e.g. decimal.Overflow from 1e999999999: bad input too
            raise TaskInputError(
                f"Pod.spec resources: a quantity is out of range ({exc!r})"
            ) from exc
        return task, self.policies.resolve(pod.metadata.annotations.get(ANN_POLICY), load=load)

    def filter(self, args: ExtenderArgs) -> dict[str, Any]:
        names = args.candidate_names()
        annotations = args.Pod.metadata.annotations
        if not is_edge_task(annotations):  # neutral: everything passes, no cache needed
            return self._filter_result(args, names, {}, {})
        snap = self.snapshot()
        try:
            task, policy = self._task(args.Pod, snap)
        except TaskInputError as exc:
            reason = f"edge-allocator cannot place this pod: {exc}"
            return self._filter_result(args, [], {}, dict.fromkeys(names, reason))
        out = filter_candidates(snap, task, names)
        if len(out.passed) == 1:  # kube-scheduler skips prioritize: record the decision here
            self._decide(args.Pod, snap, task, policy, out.passed)
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

    def prioritize(
        self, args: ExtenderArgs, defer: list[Callable[[], None]] | None = None
    ) -> list[tuple[str, int]]:
        """(host, score) for every candidate, in the order given (see
        :meth:`prioritize_columns`)."""
        return list(zip(*self.prioritize_columns(args, defer), strict=True))

    def prioritize_columns(
        self, args: ExtenderArgs, defer: list[Callable[[], None]] | None = None
    ) -> tuple[list[str], list[int]]:
        """The candidates, in the order given, and their scores.

        The placement is assumed before this returns (the next pod sees it). With ``defer``,
        the decision's bookkeeping (its record, the writer, the shadow policy) is appended there
        instead of done, for the caller to run once the answer is out: it is not on the
        scheduler's serial path. Until it has run, :meth:`record_pending` is true for the pod.
        """
        out = self._prioritize(args, defer, None)
        assert out is not None  # only a bounded call declines
        return out.names, out.scores

    def prioritize_bounded(
        self, args: ExtenderArgs, defer: list[Callable[[], None]], max_candidates: int
    ) -> Prioritized | None:
        """:meth:`prioritize_columns` when its work is bounded, for a caller that must not
        block (the event loop): at most ``max_candidates`` candidates and a policy whose
        per-snapshot work on the current snapshot is done (:class:`Preparable`), so the cost is
        O(candidates) with no wait on another thread. None (before any side effect) when it is
        not. The placement is assumed unless the cache is busy (a rebuild holds it): then the
        outcome's ``assume`` is left for the caller to run where it may wait, before the
        answer goes out."""
        return self._prioritize(args, defer, max_candidates)

    def _prioritize(
        self,
        args: ExtenderArgs,
        defer: list[Callable[[], None]] | None,
        bound: int | None,
    ) -> Prioritized | None:
        names = args.candidate_names()
        if bound is not None and len(names) > bound:
            return None
        if not is_edge_task(args.Pod.metadata.annotations):
            return Prioritized(names, [0] * len(names))
        snap = self.snapshot()
        try:
            task, policy = self._task(args.Pod, snap, load=bound is None)
        except TaskInputError:  # filter already explained it; score neutrally
            return Prioritized(names, [0] * len(names))
        except NotResolvedYet:  # its model is to be loaded: on a worker
            return None
        if bound is not None and not (isinstance(policy, Preparable) and policy.prepared(snap)):
            return None
        indexed = snap.indexed(names)  # each name looked up once, for every later step
        known = indexed if indexed is not None else [n for n in names if snap.has_node(n)]
        later: list[Callable[[], object]] | None = None if bound is None else []
        try:
            scored = self._decide(args.Pod, snap, task, policy, known, defer, later)
        except NotPrepared:  # evicted since the check above: nothing was done yet
            return None
        assume = later[0] if later else None
        if scored is None:
            return Prioritized(names, [0] * len(names), assume)
        if indexed is not None:
            return Prioritized(names, scored.scores, assume)
        by_name = dict(zip(scored.candidates, scored.scores, strict=True))
        return Prioritized(names, [by_name.get(n, 0) for n in names], assume)

    def _decide(
        self,
        pod: Pod,
        snap: ClusterSnapshot,
        task: TaskSpec,
        policy: PlacementPolicy,
        candidates: list[str],
        defer: list[Callable[[], None]] | None = None,
        assume_later: list[Callable[[], object]] | None = None,
    ) -> Scored | None:
        """Score, assume the placement, record the decision (or defer the record). With
        ``assume_later`` the assumption does not wait for a busy cache: it is appended there."""
        if not candidates:
            return None
        bounded = assume_later is not None
        scored = self.score(snap, task, candidates, policy, latencies="top", prepared=bounded)
        best = scored.candidates[scored.top]
        uid, cpu, mem = pod.metadata.uid, task.cpu_request_m, task.mem_request_mib
        if assume_later is None:
            self.source.assume(uid, best, cpu, mem, task=task)
        elif not self.source.assume(uid, best, cpu, mem, wait=False, task=task):
            assume_later.append(partial(self.source.assume, uid, best, cpu, mem, task=task))
        if defer is None:
            self._record(pod, snap, task, policy, scored)
            return scored
        key = (pod.metadata.namespace, pod.metadata.name)
        done = threading.Event()
        with self._recording_lock:
            self._recording[key] = done

        def record() -> None:
            try:
                self._record(pod, snap, task, policy, scored)
            finally:
                with self._recording_lock:  # a newer decision for the pod keeps its own entry
                    if self._recording.get(key) is done:
                        del self._recording[key]
                done.set()

        defer.append(record)
        return scored

    def record_pending(self, namespace: str, name: str) -> bool:
        """Whether this pod's decision record is still to be made by a deferred step."""
        return (namespace, name) in self._recording

    def wait_recorded(self, namespace: str, name: str, timeout_s: float = 2.0) -> bool:
        """Block until this pod's deferred record (if any) is made; False on timeout."""
        done = self._recording.get((namespace, name))
        return done is None or done.wait(timeout_s)

    def _record(
        self,
        pod: Pod,
        snap: ClusterSnapshot,
        task: TaskSpec,
        policy: PlacementPolicy,
        scored: Scored,
    ) -> None:
        """Keep the decision: its record (memory, then the pod's annotation), and the shadow."""
        best = scored.candidates[scored.top]
        self.shadow.submit(snap, task, scored.candidates, scored.raw, scored.top)
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
            candidate_count=len(scored.candidates),
            at=now_iso(),
        )
        key = (pod.metadata.namespace, pod.metadata.name)
        self.log.put(key, pod.metadata.uid, record)
        if self.writer is not None:
            self.writer.submit(key, pod.metadata.uid, record, self.bind_grace_s)

    def decide_at_bind(self, pod_obj: dict[str, Any], node: str) -> dict[str, str]:
        """The decision for a pod bound without a scoring call (kube-scheduler skips prioritize
        when one node is feasible; or this replica restarted in between): the policy scores
        that one node and it is recorded like any other, carried by the Binding."""
        pod = Pod.model_validate(pod_obj)
        snap = self.source.current()
        if not is_edge_task(pod.metadata.annotations) or snap is None or not snap.has_node(node):
            return {}
        try:
            task, policy = self._task(pod, snap)
        except TaskInputError:
            return {}
        self._decide(pod, snap, task, policy, [node])
        return self.binding_annotations(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid)

    def prepare_next(self) -> None:
        """Do the active policy's per-snapshot work on the snapshot the next pod will see (the
        one holding the placement just made), while kube-scheduler runs its own plugins for
        that pod: the next /prioritize then only scores its candidates."""
        snap = self.source.current()
        policy = self.models.active.policy
        if snap is not None and isinstance(policy, Preparable):
            policy.prepare(snap)

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
        prepared: bool = False,
    ) -> Scored:
        """Score ``candidates`` (all in ``snap``) with ``policy`` (default: the active one).
        ``prepared``: only from the policy's prepared per-snapshot work (NotPrepared if it is
        not there), never computing it."""
        policy = policy or self.models.active.policy
        # a list is kept as it is (an IndexedNames keeps its indices for the policy)
        names = candidates if isinstance(candidates, list) else list(candidates)
        t0 = time.perf_counter()
        if prepared:
            got = (
                policy.score_prepared(snap, task, names) if isinstance(policy, Preparable) else None
            )
            if got is None:
                raise NotPrepared(policy.name)
        else:
            got = policy.score(snap, task, names)
        values = np.asarray(got, dtype=np.float64)
        self.metrics.inference_seconds.observe(time.perf_counter() - t0)
        self.metrics.candidates.observe(len(names))
        scores, top = to_extender_scores(names, values)
        raw: list[float] = values.tolist()  # plain floats for the record (C speed)
        if latencies == "all":
            lat = [snap.network_time_ms(task, snap.node(n)) for n in names]
        else:
            lat = [0.0] * len(names)
            lat[top] = snap.network_time_ms(task, snap.node(names[top]))
        return Scored(policy, names, raw, scores, top, lat)
