"""Assemble the live extender (cluster cache, policy, decision writer, app) and serve it."""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any

import torch
import uvicorn

from edge_allocator.cluster.annotations import ANN_DECISION
from edge_allocator.cluster.inflight import inflight_by_link
from edge_allocator.dashboard import DashboardSource, active_model_summary, create_router
from edge_allocator.extender.app import create_app
from edge_allocator.extender.cache import WatchCache
from edge_allocator.extender.decisions import AnnotationWriter, DecisionLog, annotation_patch
from edge_allocator.extender.kubeapi import ApiError, KubeApi, load_connection
from edge_allocator.extender.live import LiveCluster
from edge_allocator.extender.metrics import ExtenderMetrics
from edge_allocator.extender.models import ModelManager, ModelValidationError
from edge_allocator.extender.service import ExtenderService
from edge_allocator.extender.settings import Settings
from edge_allocator.extender.tls import TlsInfoProtocol, uvicorn_tls_options
from edge_allocator.extender.verbgate import VerbGate
from edge_allocator.policy.model_file import ModelLoadError
from edge_allocator.policy.registry import (
    ModelIndex,
    UnknownPolicyError,
    get_policy,
    shipped_model_path,
)

log = logging.getLogger("edge_allocator.extender")

SWITCH_INTERVAL_S = 0.0005

FALLBACK_POLICY = "est-completion"


def initial_policy(name: str) -> str:
    if name != "auto":
        return name
    return "gnn" if shipped_model_path() is not None else FALLBACK_POLICY


def settle_for_serving() -> None:
    """Process settings for serving, once everything long-lived is built (the benchmarks'
    in-process servers call it too, so they measure what production runs)."""
    # Everything built so far (torch, the app, the policy) lives for the whole process: keep it
    # out of the cyclic GC's full collections, which would otherwise stall requests for ms.
    gc.collect()
    gc.freeze()
    # The verb worker shares the interpreter lock with the reflectors, the binder threads and the
    # event loop; a thread waiting for it waits whole switch intervals (5 ms by default), which
    # on the scheduler's serial cycle is latency per pod. 0.5 ms bounds that wait.
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def serve(settings: Settings) -> int:
    # One intra-op thread: scoring is small tensor work per request, and on a busy node extra
    # threads contend with the event loop (measured ~30x slower p99 under load).
    torch.set_num_threads(1)
    try:
        conn = load_connection(settings.kubeconfig)
        api = KubeApi(conn)
    except Exception as exc:
        print(f"edge-allocator extender: no Kubernetes connection: {exc}", file=sys.stderr)
        return 2
    log.info("Kubernetes API %s (credentials: %s)", conn.host, conn.source)
    policy = initial_policy(settings.policy)
    try:
        models = ModelManager(policy)
    except (UnknownPolicyError, ModelLoadError, ModelValidationError) as exc:
        print(f"edge-allocator extender: policy {policy!r}: {exc}", file=sys.stderr)
        return 2

    metrics = ExtenderMetrics()
    # the models directory is listed here and re-listed in the background, never per request
    model_index = ModelIndex(interval_s=settings.model_refresh_s)
    model_index.refresh()
    # the verbs first: every background thread below waits for the verbs in flight
    gate = VerbGate()
    cache = WatchCache(
        min_rebuild_s=settings.min_rebuild_s,
        metrics_max_age_s=settings.metrics_max_age_s,
        assume_ttl_s=settings.assume_ttl_s,
        pace=gate.pacer("snapshot"),
    )
    live = LiveCluster(
        api, cache, metrics_interval_s=settings.metrics_interval_s, pace=gate.pacer("watch")
    )

    def patch(namespace: str, name: str, uid: str, text: str) -> None:
        api.merge_patch(f"/api/v1/namespaces/{namespace}/pods/{name}", annotation_patch(uid, text))

    def read_pod(namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def read_annotation(namespace: str, name: str) -> tuple[str, str] | None:
        pod = read_pod(namespace, name)
        if pod is None:
            return None
        meta = pod.get("metadata") or {}
        text = (meta.get("annotations") or {}).get(ANN_DECISION)
        return None if text is None else (str(meta.get("uid", "")), str(text))

    def bind(namespace: str, name: str, uid: str, node: str, annotations: dict[str, str]) -> None:
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "annotations": annotations}
        if uid:
            meta["uid"] = uid
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": meta,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        api.post(f"/api/v1/namespaces/{namespace}/pods/{name}/binding", body)

    writer = AnnotationWriter(
        patch,
        interval_s=settings.decision_write_interval_s,
        max_pending=settings.decision_max_pending,
        on_result=lambda outcome: metrics.decisions.labels(outcome=outcome).inc(),
        pace=gate.pacer("annotation"),
    )
    service = ExtenderService(
        cache,
        models,
        log=DecisionLog(settings.decision_capacity),
        writer=writer,
        metrics=metrics,
        bind_grace_s=settings.bind_grace_s,
        model_index=model_index,
        gate=gate,
    )

    if settings.shadow_policy:  # loaded and validated by the CLI before start-up
        service.shadow.set_policy(settings.shadow_policy, get_policy(settings.shadow_policy))

    def node_count() -> int:
        snap = cache.current()
        return 0 if snap is None else len(snap.nodes)

    def inflight() -> dict[str, int]:
        snap = cache.current()
        return {} if snap is None else inflight_by_link(snap)

    metrics.bind_cache(cache.age_seconds, node_count)
    metrics.bind_inflight(inflight)
    metrics.bind_watches(lambda: {r.kind: r.events for r in live.reflectors})
    metrics.bind_gate(gate.waited)
    metrics.set_model(models.active.policy.name, models.active.policy.version)
    app = create_app(
        service,
        settings,
        ready=lambda: {"cache": cache.synced, "model": service.models.active is not None},
        read_annotation=read_annotation,
        binder=bind,
        read_pod=read_pod,
    )
    # each new snapshot the builder publishes is prepared (embedded) before the next request
    cache.on_publish = app.prepare_soon
    # The web view reads the same cache and active model; it is not on the scheduler's path.
    app.include_router(
        create_router(
            DashboardSource(
                snapshot=cache.current,
                api_get=api.get,
                model=lambda: active_model_summary(models.active.name, models.active.policy),
                shadow=service.shadow.stats,
            ),
            admin_token=settings.admin_token,
        ),
        prefix="/ui",
    )
    if not settings.admin_token:
        log.warning("no admin token configured: the /v1 admin API is open to all who reach it")

    options: dict[str, Any] = uvicorn_tls_options(
        settings.tls_cert, settings.tls_key, settings.client_ca
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=TlsInfoProtocol if settings.client_ca else "httptools",
        loop="uvloop",
        access_log=False,
        log_config=None,
        # kube-scheduler calls directly, and nothing reads the client address: no
        # X-Forwarded-* middleware on every request
        proxy_headers=False,
        timeout_keep_alive=75,
        **options,
    )
    live.start()
    writer.start()
    model_index.start()
    settle_for_serving()
    log.info(
        "extender on %s://%s:%d, policy %s (%s %s)",
        "https" if settings.tls_cert else "http",
        settings.host,
        settings.port,
        models.active.name,
        models.active.policy.name,
        models.active.policy.version,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        writer.stop(flush=True)
        service.shadow.stop()
        model_index.stop()
        live.stop()
        api.close()
    return 0
