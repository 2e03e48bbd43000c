"""The FastAPI app: thin handlers that validate, call ExtenderService, and answer JSON.

The verbs' work (policy scoring) runs on a dedicated worker thread and their bookkeeping
(decision records) on a recorder thread, never on the event loop, so probes, metrics and the
admin API answer while a pod is being scored; one worker by default, so decisions are taken
one after another and each sees the assumption of the one before (kube-scheduler's scheduling
cycle is serial anyway).

Verb answers are serialised by hand (``json.dumps`` to a ``Response``) because FastAPI's
generic encoder costs milliseconds for a thousand-node answer; the declared response models
still document them in the OpenAPI document. Every error is JSON with the request id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from json.encoder import encode_basestring
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, ValidationError
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Scope

from edge_allocator.cluster.annotations import DecisionRecord
from edge_allocator.cluster.quantity import QuantityError
from edge_allocator.extender.api_models import (
    ActiveModel,
    BatchScoreRequest,
    BatchScoreResponse,
    CandidateOut,
    DecisionResponse,
    ErrorResponse,
    ModelEntry,
    ModelsResponse,
    ScoreRequest,
    ScoreResponse,
)
from edge_allocator.extender.fastpath import Handler, VerbFastPath
from edge_allocator.extender.models import ModelValidationError, allowed_name, load_validated
from edge_allocator.extender.scoring import MAX_SCORE, filter_candidates, rank
from edge_allocator.extender.security import (
    RequestGuard,
    TokenBucket,
    error_body,
    request_id_of,
    token_matches,
)
from edge_allocator.extender.service import ExtenderService, NotReadyError, Prioritized
from edge_allocator.extender.settings import Settings
from edge_allocator.extender.shadow import card_regression
from edge_allocator.extender.tls import client_cert_subject
from edge_allocator.extender.whatif import predicted_gain, without_pod
from edge_allocator.extender.wire import (
    ExtenderArgs,
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
    HostPriority,
)
from edge_allocator.policy.model_file import ModelLoadError
from edge_allocator.policy.registry import (
    BASELINES,
    GNN,
    UnknownPolicyError,
    get_policy,
    policy_names,
)

log = logging.getLogger(__name__)

Binder = Callable[[str, str, str, str, dict[str, str]], None]
"""bind(namespace, pod, uid, node, annotations): create the pod's Binding; raises on failure."""

AnnotationReader = Callable[[str, str], tuple[str, str] | None]
"""(namespace, pod) -> (uid, decision annotation JSON) or None; may call the API server."""

PodReader = Callable[[str, str], dict[str, Any] | None]
"""(namespace, pod) -> the Pod object or None when absent; calls the API server."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "malformed JSON"),
        (401, "missing or wrong bearer token"),
        (403, "client certificate required"),
        (404, "not found"),
        (413, "body too large"),
        (422, "invalid body (the message names the field)"),
        (429, "admin rate limit"),
        (503, "not ready"),
    )
}


T = TypeVar("T")


class ShadowRequest(BaseModel):
    policy: str | None = Field(
        description="Policy to shadow (a baseline, gnn or gnn@<version>); null stops shadowing."
    )


class ShadowStatus(BaseModel):
    """The shadow policy's record since it was set (see ``extender.shadow``)."""

    name: str | None = None
    policy: str | None = None
    version: str | None = None
    scored: int = 0
    sameTop: int = 0
    agreement: float | None = Field(None, description="share of decisions with the same top")
    meanRankCorrelation: float | None = Field(None, description="mean Spearman correlation")
    meanPredictedGainS: float | None = Field(
        None, description="mean estimated seconds saved had the shadow chosen (>0: it is faster)"
    )
    dropped: int = 0
    failed: int = 0
    queued: int = 0


_VERBS = ("filter", "prioritize", "bind")
BINDER_THREADS = 32
"""Bindings in flight at once (each holds one kept-alive connection of the API client's write
pool while it waits on the API server)."""
_JSON = "application/json"


class _HostPrefixes(dict[str, str]):
    """``{"Host":"<name>","Score":`` per node name, made once: the names repeat from pod to
    pod, so an answer is one lookup and one concatenation per candidate. Bounded: cleared when
    it outgrows any real cluster (node names that churn)."""

    LIMIT = 100_000

    def __missing__(self, host: str) -> str:
        if len(self) >= self.LIMIT:
            self.clear()
        # encode_basestring escapes and quotes like json.dumps (C-accelerated)
        prefix = self[host] = '{"Host":' + encode_basestring(host) + ',"Score":'
        return prefix


_PREFIXES = _HostPrefixes()
_SCORE_ENDS = [f"{score}}}" for score in range(MAX_SCORE + 1)]


def _host_priorities(hosts: Sequence[str], scores: Sequence[int]) -> bytes:
    """A HostPriorityList (scores 0..MAX_SCORE, as the verb gives), written directly: ~12x
    faster than json.dumps on 1,000 dicts."""
    prefixes, ends = _PREFIXES, _SCORE_ENDS
    body = ",".join([prefixes[h] + ends[s] for h, s in zip(hosts, scores, strict=True)])
    return f"[{body}]".encode()


def _json(content: Any, status: int = 200) -> Response:
    return Response(
        content=json.dumps(content, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
    )


def _error(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        content=error_body(status, message, request_id_of(request.scope)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _explain(errors: list[Any]) -> str:
    """Pydantic/FastAPI errors to one line that names each field and the rule."""
    parts: list[str] = []
    for e in errors[:5]:
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        where = ".".join(loc) or "body"
        if e.get("type") == "json_invalid":
            ctx = e.get("ctx") or {}
            parts.append(f"body is not valid JSON: {ctx.get('error', e.get('msg'))}")
        else:
            parts.append(f"{where}: {e.get('msg')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


class _Workers:
    """The verbs' thread pool, started on first use (again after a shutdown: an app may be
    served, stopped and served again, as tests do)."""

    def __init__(self, size: int, name: str = "extender-verb") -> None:
        self.size, self.name = size, name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.size, thread_name_prefix=self.name)
                pool = self._pool
        return pool

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)


class _ExtenderApp(FastAPI):
    """FastAPI with ``front`` (the request guard and the verbs' lean path) in front of its own
    middleware stack: the verbs skip the server-error, telemetry and body-limit layers too,
    per-request work on the event loop that the scheduler's serial cycle waits for (the lean
    path answers every error itself with the app's handlers)."""

    front: Callable[[ASGIApp], ASGIApp] | None = None
    prepare_soon: Callable[[], None] | None = None
    """Queue the newest snapshot's policy work on the verb worker (thread-safe): for the
    snapshot source to call when it publishes a new snapshot."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.front is None else self.front(stack)


def create_app(
    service: ExtenderService,
    settings: Settings,
    *,
    ready: Callable[[], dict[str, bool]] | None = None,
    read_annotation: AnnotationReader | None = None,
    binder: Binder | None = None,
    read_pod: PodReader | None = None,
) -> _ExtenderApp:
    """Build the app around ``service``; ``ready`` reports readiness checks by name."""
    workers = _Workers(settings.verb_workers)
    # Bindings wait on the API server (tens of ms under load): their own threads, so they
    # never queue behind scoring nor take the admin endpoints' AnyIO threads
    binders = _Workers(BINDER_THREADS, "binder")
    # A decision's bookkeeping, after its answer: one thread (records in answer order), apart
    # from the verb worker so the next pod's scoring never queues behind it
    recorder = _Workers(1, "decision-recorder")

    prepare_lock = threading.Lock()
    stopped = threading.Event()  # no preparation is queued once the app shut its workers

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stopped.clear()
        yield
        with prepare_lock:  # a snapshot published from here on is not prepared any more
            stopped.set()
        workers.shutdown()
        binders.shutdown()
        recorder.shutdown()

    queue_seconds = service.metrics.verb_queue_seconds

    def after_queue(submitted: float, fn: Callable[..., T], *args: Any) -> T:
        queue_seconds.observe(time.perf_counter() - submitted)
        return fn(*args)

    gate = service.gate

    off_loop_verbs = 0  # verb calls on the workers now (changed on the event loop only)

    async def off_loop(fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on a verb worker: the event loop keeps serving while it scores, and the
        background threads wait for it (the gate)."""
        nonlocal off_loop_verbs
        gate.verb_started()
        off_loop_verbs += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                workers.get(), partial(after_queue, time.perf_counter(), fn, *args)
            )
        finally:
            off_loop_verbs -= 1
            gate.verb_finished()

    def prioritize_inline(
        args: ExtenderArgs, later: list[Callable[[], None]]
    ) -> Prioritized | None:
        """Score on the event loop when that is bounded (``Settings.inline_candidates``) and
        no verb is on a worker (decisions stay serial); None: a worker must."""
        if off_loop_verbs:  # the service checks the bound itself
            return None
        gate.verb_started()
        try:
            return service.prioritize_bounded(args, later, settings.inline_candidates)
        finally:
            gate.verb_finished()

    prepare_queued = False  # a prepare_next is queued and has not read the snapshot yet

    def prepare_next() -> None:
        nonlocal prepare_queued
        with prepare_lock:  # from here on, a newer snapshot queues its own preparation
            prepare_queued = False
        try:
            service.prepare_next()
        except Exception:  # a failure here only costs the next request the work
            log.exception("preparing the next snapshot failed")
        finally:
            gate.verb_finished()  # held since it was queued: the next pod's work

    def prepare_soon() -> None:
        """Queue the newest snapshot's policy work on the verb worker (the gate held until it
        ran), unless one is queued that has not started: it will read the newest snapshot.
        Thread-safe: called after each answer and by the snapshot builder after each new
        snapshot, so the next /prioritize finds it prepared (and can be scored on the loop)."""
        nonlocal prepare_queued
        with prepare_lock:
            if prepare_queued or stopped.is_set():
                return
            prepare_queued = True
            gate.verb_started()
            try:
                workers.get().submit(prepare_next)
            except RuntimeError:  # the pool is shutting down: nothing to prepare for
                prepare_queued = False
                gate.verb_finished()

    def run_logged(fn: Callable[[], None]) -> None:
        try:
            gate.wait_quiet("recorder")
            fn()
        except Exception:  # the answer is out; only this step's work is lost
            log.exception("recording a decision failed")

    async def after_decision(later: list[Callable[[], None]]) -> None:
        """Queue a decision's deferred bookkeeping on the recorder, and the next snapshot's
        policy work on the verb worker (at most one queued; the gate is held until it ran)."""
        for fn in later:
            recorder.get().submit(run_logged, fn)
        prepare_soon()

    def annotations_once_recorded(ns: str, name: str, uid: str) -> dict[str, str]:
        service.wait_recorded(ns, name)
        return service.binding_annotations(ns, name, uid)

    app = _ExtenderApp(
        lifespan=lifespan,
        title="Edge Allocator scheduler extender",
        version="v1",
        description=(
            "kube-scheduler extender verbs (/filter, /prioritize; extender v1 JSON with Go "
            "field names) and the admin API (/v1/*: bearer token when configured)."
        ),
        responses=_ERRORS,
    )
    metrics = service.metrics
    bucket = TokenBucket(settings.admin_rate_per_s, settings.admin_burst)
    checks = ready or (lambda: {"cache": service.source.current() is not None, "model": True})

    # ----- errors -----------------------------------------------------------------------------

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        status = 400 if any(e.get("type") == "json_invalid" for e in errors) else 422
        count_error(request, "invalid")
        return _error(request, status, _explain(errors))

    @app.exception_handler(ValidationError)
    async def model_error(request: Request, exc: ValidationError) -> Response:
        return _error(request, 422, _explain(list(exc.errors())))

    def count(verb: str, kind: str) -> None:
        metrics.errors.labels(verb=verb if verb in _VERBS else "admin", kind=kind).inc()

    def count_error(request: Request, kind: str) -> None:
        count(request.url.path.strip("/").split("/")[0], kind)

    @app.exception_handler(QuantityError)
    async def quantity_error(request: Request, exc: QuantityError) -> Response:
        """A quantity that escaped a handler's own check is still the client's input: 400."""
        count_error(request, "invalid")
        return _error(request, 400, f"invalid quantity: {exc}")

    @app.exception_handler(NotReadyError)
    async def not_ready(request: Request, exc: NotReadyError) -> Response:
        count_error(request, "not_ready")
        return _error(request, 503, str(exc), {"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        count_error(request, "internal")
        log.error("request %s failed: %r", request_id_of(request.scope), exc, exc_info=exc)
        return _error(request, 500, "internal error; see the extender log for this request id")

    # ----- dependencies -----------------------------------------------------------------------

    # async: FastAPI runs a plain-def dependency on a worker thread, a hop per request
    async def verb_auth(request: Request) -> None:
        if settings.client_ca and client_cert_subject(request.scope) is None:
            raise HTTPException(403, "a client certificate signed by the configured CA is required")

    async def admin_auth(request: Request) -> None:
        if settings.admin_token and not token_matches(
            request.headers.get("authorization"), settings.admin_token
        ):
            raise HTTPException(
                401,
                "admin API needs 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": "Bearer"},
            )
        wait = bucket.take()
        if wait > 0:
            raise HTTPException(
                429, "admin rate limit exceeded", {"Retry-After": str(max(1, round(wait)))}
            )

    # ----- kube-scheduler verbs ---------------------------------------------------------------

    verbs = APIRouter(tags=["extender"], dependencies=[Depends(verb_auth)])

    # the verbs' histogram children, looked up once rather than per request
    verb_seconds = {v: metrics.request_seconds.labels(verb=v) for v in _VERBS}
    scored_on = {w: metrics.prioritize_where.labels(where=w) for w in ("loop", "worker")}

    def timed(response: Response, verb: str, t0: float) -> Response:
        """Observe the verb's server time and tell the client (``Server-Timing``, in ms)."""
        seconds = time.perf_counter() - t0
        verb_seconds[verb].observe(seconds)
        response.headers["Server-Timing"] = f"{verb};dur={seconds * 1e3:.3f}"
        return response

    def _filter_answer(args: ExtenderArgs, body: bytes) -> Response:
        result = service.filter(args)
        if args.NodeNames is None:  # nodeCacheCapable: false - echo the Node objects kept
            keep = set(result["Nodes"]["items"])
            raw = json.loads(body)
            items = [n for n in raw["Nodes"].get("items") or [] if n["metadata"]["name"] in keep]
            result["Nodes"] = {"apiVersion": "v1", "kind": "NodeList", "items": items}
        return _json(result)

    def _prioritize_answer(args: ExtenderArgs) -> tuple[Response, list[Callable[[], None]]]:
        later: list[Callable[[], None]] = []
        body = _host_priorities(*service.prioritize_columns(args, defer=later))
        return Response(body, media_type=_JSON), later

    def _pod_to_decide(ns: str, name: str, uid: str) -> dict[str, Any] | None:
        """The pod a bind without a prioritize call decides for (an API read: on a binder
        thread, not under the verb gate), or None to bind without a record."""
        assert read_pod is not None
        try:
            pod = read_pod(ns, name)
        except Exception as exc:  # the binding goes ahead without a record
            log.warning("bind %s/%s: reading the pod for its decision failed: %r", ns, name, exc)
            return None
        if pod is None or (uid and (pod.get("metadata") or {}).get("uid") != uid):
            return None
        return pod

    @verbs.post("/filter", response_model=ExtenderFilterResult)
    async def filter_verb(args: ExtenderArgs, request: Request) -> Response:
        """Drop nodes that break the pod's latency budget or that the cache knows are gone."""
        t0 = time.perf_counter()
        body = await request.body() if args.NodeNames is None else b""
        response = await off_loop(_filter_answer, args, body)
        return timed(response, "filter", t0)

    @verbs.post("/prioritize", response_model=list[HostPriority])
    async def prioritize_verb(args: ExtenderArgs) -> Response:
        """Integer scores 0..10 for every candidate; the policy's top node alone gets 10."""
        t0 = time.perf_counter()
        later: list[Callable[[], None]] = []
        inline = prioritize_inline(args, later)
        if inline is None:
            scored_on["worker"].inc()
            response, later = await off_loop(_prioritize_answer, args)
        else:
            scored_on["loop"].inc()
            if inline.assume is not None:  # the cache was busy: assume where waiting is fine
                try:
                    await off_loop(inline.assume)
                except BaseException:  # answered with an error: the decision's steps still run
                    await after_decision(later)
                    raise
            response = Response(_host_priorities(inline.names, inline.scores), media_type=_JSON)
        # once the answer is out: the decision's record, then the next snapshot's policy work
        response.background = BackgroundTask(after_decision, later)
        return timed(response, "prioritize", t0)

    @verbs.post("/bind", response_model=ExtenderBindingResult)
    async def bind_verb(args: ExtenderBindingArgs) -> Response:
        """Bind the pod, recording the policy decision on it in the same write.

        An answer with ``Error`` set makes kube-scheduler (``ignorable: true``) fall back to its
        own binder.
        """
        t0 = time.perf_counter()
        ns, name, uid = args.PodNamespace, args.PodName, args.PodUID
        if binder is None:
            return _json({"Error": "this extender is not configured to bind"})
        if service.record_pending(ns, name):  # its record follows the answer: wait for it
            annotations = await asyncio.get_running_loop().run_in_executor(
                binders.get(), partial(annotations_once_recorded, ns, name, uid)
            )
        else:
            annotations = service.binding_annotations(ns, name, uid)
        if not annotations and read_pod is not None:  # bound without a prioritize call
            pod = await asyncio.get_running_loop().run_in_executor(
                binders.get(), partial(_pod_to_decide, ns, name, uid)
            )
            if pod is not None:
                annotations = await off_loop(service.decide_at_bind, pod, args.Node)
        try:
            await asyncio.get_running_loop().run_in_executor(
                binders.get(), partial(binder, ns, name, uid, args.Node, annotations)
            )
        except Exception as exc:
            service.binding_failed(ns, name, uid, annotations)
            count("bind", "bind_failed")
            return _json({"Error": f"binding {ns}/{name} to {args.Node} failed: {exc}"})
        if annotations:
            metrics.decisions.labels(outcome="with_binding").inc()
        verb_seconds["bind"].observe(time.perf_counter() - t0)
        return _json({"Error": ""})

    app.include_router(verbs)

    # ----- probes and metrics -----------------------------------------------------------------

    @app.get("/healthz", tags=["probes"])
    async def healthz() -> dict[str, str]:
        """The process serves HTTP."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"])
    async def readyz() -> Response:
        """Ready when the cluster cache has synced and a policy is loaded (else 503)."""
        result = checks()
        ok = all(result.values())
        return _json({"ready": ok, "checks": result}, 200 if ok else 503)

    @app.get("/metrics", tags=["probes"])
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # ----- admin API --------------------------------------------------------------------------

    admin = APIRouter(prefix="/v1", tags=["admin"], dependencies=[Depends(admin_auth)])

    def active_out() -> ActiveModel:
        a = service.models.active
        return ActiveModel(
            name=a.name, policy=a.policy.name, version=a.policy.version, activatedAt=a.activated_at
        )

    def model_entries() -> list[ModelEntry]:
        out = [
            ModelEntry(name=name, kind="baseline", version=str(factory().version))
            for name, factory in BASELINES.items()
        ]
        index = service.policies.index
        index.refresh()  # an admin call on a worker thread: cheap (unchanged files not re-read)
        for info in index.models():
            meta = json.loads(json.dumps(info.metadata, default=str))
            out.append(
                ModelEntry(
                    name=f"{info.name}@{info.version}",
                    kind="model-file",
                    version=info.version,
                    shipped=info.shipped,
                    metadata=meta,
                )
            )
        return out

    @admin.get("/models", response_model=ModelsResponse)
    def get_models() -> ModelsResponse:
        """The active policy, every selectable name, and the model files found."""
        return ModelsResponse(active=active_out(), policies=policy_names(), models=model_entries())

    @admin.get("/models/{name}", response_model=ModelEntry)
    def get_model(name: str) -> ModelEntry:
        """One baseline or model file (``gnn`` is the shipped model)."""
        entries = model_entries()
        if name == GNN:
            shipped = [e for e in entries if e.shipped]
            if shipped:
                return shipped[0]
        for e in entries:
            if e.name == name:
                return e
        raise HTTPException(404, f"no policy or model called {name!r}")

    @admin.post("/models/{name}/activate", response_model=ActiveModel)
    async def activate(name: str, force: bool = False) -> ActiveModel:
        """Load, validate, then switch; a bad model is refused and the old one stays active.

        A model whose held-out model card is worse than the active policy's is refused (409)
        unless ``force=true``.
        """
        if not allowed_name(name):
            raise HTTPException(404, f"no policy or model called {name!r}")
        current = service.models.active.name
        if not force and name != current:
            worse = await run_in_threadpool(card_regression, name, current, service.policies.index)
            if worse is not None:
                raise HTTPException(
                    409,
                    f"model {name!r} refused ({worse}); {current!r} stays active, "
                    "pass force=true to activate it anyway",
                )
        try:
            await run_in_threadpool(service.models.activate, name, service.source.current())
        except UnknownPolicyError as exc:
            raise HTTPException(404, str(exc).strip("'\"")) from exc
        except (ModelLoadError, ModelValidationError) as exc:
            raise HTTPException(
                422, f"model {name!r} refused, {service.models.active.name!r} stays active: {exc}"
            ) from exc
        active = active_out()
        metrics.set_model(active.policy, active.version)
        log.info("activated policy %s (%s %s)", name, active.policy, active.version)
        return active

    def shadow_out() -> ShadowStatus:
        return ShadowStatus(**service.shadow.stats())

    @admin.get("/shadow", response_model=ShadowStatus)
    def get_shadow() -> ShadowStatus:
        """The shadow policy and how its choices compare with the active policy's so far."""
        return shadow_out()

    @admin.put("/shadow", response_model=ShadowStatus)
    async def set_shadow(req: ShadowRequest) -> ShadowStatus:
        """Shadow a policy from now on (its totals start at zero), or stop with ``null``."""
        if req.policy is None:
            service.shadow.set_policy(None, None)
        else:
            if not allowed_name(req.policy):
                raise HTTPException(404, f"policy: no policy or model called {req.policy!r}")
            try:
                policy = await run_in_threadpool(
                    load_validated, req.policy, service.source.current()
                )
            except UnknownPolicyError as exc:
                raise HTTPException(404, f"policy: {exc}") from exc
            except (ModelLoadError, ModelValidationError) as exc:
                raise HTTPException(422, f"policy: {req.policy!r} refused: {exc}") from exc
            service.shadow.set_policy(req.policy, policy)
        log.info("shadow policy: %s", req.policy or "none")
        return shadow_out()

    def what_if(req: ScoreRequest) -> ScoreResponse:
        snap = service.snapshot()
        task = req.task.to_task()
        current: str | None = None
        if req.currentPodUid:
            found = service.source.pod_footprint(req.currentPodUid)
            if found is None:
                raise HTTPException(
                    409,
                    f"currentPodUid: pod {req.currentPodUid} is not bound in the extender's "
                    "cache yet; ask again shortly",
                )
            current, cpu_m, mem_mib = found
            snap = without_pod(snap, current, cpu_m, mem_mib)
            task = dataclasses.replace(task, cpu_request_m=cpu_m, mem_request_mib=mem_mib)
        if task.data_source_site not in snap.site_index:
            raise HTTPException(422, f"task.dataSourceSite: unknown site {task.data_source_site!r}")
        names = req.candidates if req.candidates is not None else [n.name for n in snap.nodes]
        unknown = [n for n in names if not snap.has_node(n)]
        if unknown:
            raise HTTPException(422, f"candidates: unknown node {unknown[0]!r}")
        policy = service.models.active.policy
        if req.policy:
            if not allowed_name(req.policy):
                raise HTTPException(422, f"policy: unknown policy {req.policy!r}")
            try:
                policy = get_policy(req.policy)
            except (UnknownPolicyError, ModelLoadError) as exc:
                raise HTTPException(422, f"policy: {exc}") from exc
        out = filter_candidates(snap, task, names)
        filtered = {**out.failed, **out.unresolvable}
        cands: list[CandidateOut] = []
        chosen = None
        if out.passed:
            s = service.score(snap, task, out.passed, policy)
            order = rank(s.candidates, s.raw)
            chosen = s.candidates[s.top]
            cands = [
                CandidateOut(
                    node=s.candidates[i],
                    rank=r + 1,
                    score=s.scores[i],
                    raw=s.raw[i],
                    latencyMs=round(s.latency_ms[i], 3),
                )
                for r, i in enumerate(order)
            ]
        gain_s = gain_ratio = None
        current_rank = None
        if current is not None:
            current_rank = next((c.rank for c in cands if c.node == current), None)
            if chosen is not None and snap.has_node(current):
                gain_s, gain_ratio = predicted_gain(snap, task, current, chosen)
        return ScoreResponse(
            policy=policy.name,
            modelVersion=policy.version,
            snapshotRevision=snap.revision,
            chosen=chosen,
            candidates=cands,
            filtered=filtered,
            currentNode=current,
            currentRank=current_rank,
            predictedGainS=None if gain_s is None else round(gain_s, 6),
            predictedGainRatio=None if gain_ratio is None else round(gain_ratio, 6),
        )

    @admin.post("/score", response_model=ScoreResponse)
    def score(req: ScoreRequest) -> ScoreResponse:
        """What-if: how would this task be filtered and ranked on the live cluster now?"""
        t0 = time.perf_counter()
        out = what_if(req)
        metrics.request_seconds.labels(verb="score").observe(time.perf_counter() - t0)
        return out

    @admin.post("/score/batch", response_model=BatchScoreResponse)
    def score_batch(req: BatchScoreRequest) -> BatchScoreResponse:
        """What-if for several tasks against the same snapshot."""
        if len(req.requests) > settings.max_batch:
            raise HTTPException(422, f"requests: at most {settings.max_batch} per batch")
        return BatchScoreResponse(results=[what_if(r) for r in req.requests])

    @admin.get("/decisions/{namespace}/{pod}", response_model=DecisionResponse)
    def decision(namespace: str, pod: str) -> DecisionResponse:
        """The latest decision for a pod: this replica's memory first, then the pod annotation."""
        service.wait_recorded(namespace, pod)  # scored just now: its record follows the answer
        hit = service.log.get((namespace, pod))
        if hit is not None:
            uid, record = hit
            return DecisionResponse(
                namespace=namespace,
                pod=pod,
                uid=uid,
                source="memory",
                decision=json.loads(record.to_json()),
            )
        if read_annotation is not None:
            found = read_annotation(namespace, pod)
            if found is not None:
                uid, text = found
                try:
                    record = DecisionRecord.from_json(text)
                except (ValueError, TypeError) as exc:
                    raise HTTPException(
                        404, f"pod {namespace}/{pod} has an unreadable decision annotation"
                    ) from exc
                return DecisionResponse(
                    namespace=namespace,
                    pod=pod,
                    uid=uid,
                    source="annotation",
                    decision=json.loads(record.to_json()),
                )
        raise HTTPException(404, f"no decision recorded for pod {namespace}/{pod}")

    app.include_router(admin)

    async def error_answer(scope: Scope, exc: Exception) -> Response:
        """What the app's exception handlers answer for ``exc`` (the fast path's errors)."""
        request = Request(scope)
        if isinstance(exc, StarletteHTTPException):
            return await http_error(request, exc)
        if isinstance(exc, QuantityError):
            return await quantity_error(request, exc)
        if isinstance(exc, NotReadyError):
            return await not_ready(request, exc)
        if isinstance(exc, ValidationError):
            return await model_error(request, exc)
        return await unexpected(request, exc)

    def admitted(scope: Scope) -> bool:  # what verb_auth requires, else the app answers 403
        return not settings.client_ca or client_cert_subject(scope) is not None

    routes: dict[str, tuple[type[BaseModel], Handler]] = {
        "/prioritize": (ExtenderArgs, prioritize_verb),
        "/bind": (ExtenderBindingArgs, bind_verb),
    }

    def front(inner: ASGIApp) -> ASGIApp:
        # outermost: every request gets its id and the body bound; the verbs then skip
        # FastAPI's middleware, routing and dependencies altogether
        fast = VerbFastPath(inner, routes=routes, admitted=admitted, on_error=error_answer)
        return RequestGuard(
            fast, max_body_bytes=settings.max_body_bytes, drain_bytes=settings.max_drain_bytes
        )

    app.front = front
    app.prepare_soon = prepare_soon
    return app
