"""Process life cycle: serve metrics, win the lease, run kopf until told to stop or deposed.

A standby replica serves ``/healthz`` and waits on the lease; it watches nothing. When the
leader stops cleanly it releases the lease and a standby takes over within one retry period;
when it dies, within the lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import kopf

from edge_allocator.cluster.annotations import LABEL_MANAGED
from edge_allocator.operator.cache import ClusterCache
from edge_allocator.operator.config import LeaderConfig, OperatorConfig
from edge_allocator.operator.controller import Controller
from edge_allocator.operator.extender_client import ExtenderDecisions
from edge_allocator.operator.handlers import build_registry
from edge_allocator.operator.kubeapi import KubeApi, load_credentials
from edge_allocator.operator.leader import LeadershipLost, LeaseElector
from edge_allocator.operator.metrics import OperatorMetrics, serve

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_LOST_LEASE = 3


class _NoDiffBase(kopf.DiffBaseStorage):
    """The operator has no change-detecting handlers, so kopf need not deep-copy every body it
    sees to diff it (a third of kopf's CPU under a burst of events)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return kopf.BodyEssence()

    def fetch(self, *, body: Any) -> Any:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.diffbase_storage = _NoDiffBase()
    # Watch only the operator's own pods (server-side): other pods cost memory and CPU for nothing.
    settings.watching.label_selectors[("v1", "pods")] = f"{LABEL_MANAGED}=true"
    settings.posting.level = logging.INFO
    settings.batching.exit_timeout = 0.5  # on shutdown, do not wait long for idle workers
    settings.posting.worker_limit = 4  # events are low priority: never crowd out pod creation
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    settings.networking.connect_timeout = 10
    settings.networking.request_timeout = 60
    return settings


async def run_operator(
    cfg: OperatorConfig,
    leader: LeaderConfig,
    *,
    kubeconfig: str | None,
    metrics_host: str,
    metrics_port: int,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics = OperatorMetrics()
    http = await serve(metrics, metrics_host, metrics_port)
    api = KubeApi(load_credentials(kubeconfig), on_request=metrics.count_request)
    extender = (
        ExtenderDecisions(cfg.extender_url, cfg.extender_timeout_s, cfg.extender_token_file)
        if cfg.extender_url
        else None
    )
    elector = LeaseElector(api, leader) if leader.enabled else None
    try:
        if elector is not None:
            log.info(
                "waiting for the lease %s/%s as %s", leader.namespace, leader.name, leader.identity
            )
            if not await elector.acquire(stop):
                return EXIT_OK
        metrics.set_leader(True)
        return await _lead(cfg, api, metrics, extender, elector, stop)
    finally:
        metrics.set_leader(False)
        if extender is not None:
            await extender.close()
        await api.close()
        await http.cleanup()


async def _take_back_signals(
    ready: asyncio.Event, stop: asyncio.Event, operator: asyncio.Task[None]
) -> None:
    """kopf installs its own SIGINT/SIGTERM handlers; route them back to ``stop`` so that the
    shutdown goes through our stop flag (kopf then exits at once instead of waiting 5 s)."""
    waiter = asyncio.ensure_future(ready.wait())
    await asyncio.wait({waiter, operator}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _lead(
    cfg: OperatorConfig,
    api: KubeApi,
    metrics: OperatorMetrics,
    extender: ExtenderDecisions | None,
    elector: LeaseElector | None,
    stop: asyncio.Event,
) -> int:
    cache = ClusterCache()
    await cache.prime(api, cfg.namespaces)
    ctl = Controller(api, cache, cfg, metrics, extender)
    kopf_stop = asyncio.Event()
    kopf_ready = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=build_registry(ctl),
            settings=kopf_settings(),
            standalone=True,
            clusterwide=not cfg.namespaces,
            namespaces=list(cfg.namespaces),
            stop_flag=kopf_stop,
            ready_flag=kopf_ready,
        ),
        name="kopf",
    )
    await _take_back_signals(kopf_ready, stop, operator)
    keeper = asyncio.create_task(
        elector.hold(stop) if elector is not None else stop.wait(), name="lease"
    )
    done, _ = await asyncio.wait({operator, keeper}, return_when=asyncio.FIRST_COMPLETED)
    rc = EXIT_OK
    if keeper in done and isinstance(keeper.exception(), LeadershipLost):
        log.error("stepping down: %s", keeper.exception())
        rc = EXIT_LOST_LEASE
    await ctl.stop()  # before kopf, which would otherwise wait 5 s for these tasks
    kopf_stop.set()
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(operator, timeout=10)
    with contextlib.suppress(asyncio.CancelledError, LeadershipLost):
        await keeper
    if operator in done and operator.exception() is not None:
        log.error("kopf stopped with an error: %s", operator.exception())
        rc = 1
    if elector is not None and rc == EXIT_OK:
        await elector.release()
    return rc
