"""Process life cycle: serve metrics, win the lease, run kopf until told to stop or deposed.

A standby replica serves ``/healthz`` and waits on the lease; it watches nothing. When the
leader stops cleanly it releases the lease and a standby takes over within one retry period;
when it dies, within the lease duration. A leader that cannot renew within the renew deadline
stops its work before the lease can expire for anyone else, then exits with code 3 (the timing
rule is in ``leader``); the lease is renewed from the moment it is won, while the cache primes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
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
    settings.queueing.exit_timeout = 0.5  # on shutdown, do not wait long for idle workers
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
    ready: asyncio.Event, stop: asyncio.Event, *running: asyncio.Task[Any]
) -> None:
    """kopf installs its own SIGINT/SIGTERM handlers; route them back to ``stop`` so that the
    shutdown goes through our stop flag (kopf then exits at once instead of waiting 5 s).
    Returns when kopf is ready or any of ``running`` ends (kopf failed, the lease was lost)."""
    waiter = asyncio.ensure_future(ready.wait())
    await asyncio.wait({waiter, *running}, return_when=asyncio.FIRST_COMPLETED)
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
    # Renew from the moment the lease is won: priming the cache and starting kopf can take
    # longer than the renew deadline on a big cluster. (Created before kopf starts, so kopf
    # does not wait for it when it exits.)
    keeper = asyncio.create_task(
        elector.hold(stop) if elector is not None else stop.wait(), name="lease"
    )
    cache = ClusterCache()
    ctl = Controller(api, cache, cfg, metrics, extender)
    kopf_stop = asyncio.Event()
    operator: asyncio.Task[None] | None = None
    kopf_error: BaseException | None = None
    try:
        prime = asyncio.create_task(cache.prime(api, cfg.namespaces), name="prime")
        await asyncio.wait({prime, keeper}, return_when=asyncio.FIRST_COMPLETED)
        if not prime.done():  # deposed or told to stop while priming
            prime.cancel()
            await asyncio.wait({prime})
            _outcome(prime)
        else:
            prime.result()  # a failed prime ends the process, as before
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
            await _take_back_signals(kopf_ready, stop, operator, keeper)
            await asyncio.wait({operator, keeper}, return_when=asyncio.FIRST_COMPLETED)
            kopf_error = _outcome(operator)
    finally:
        lost = _lost(keeper)
        # Deposed: the work must be over before a rival can hold the lease (module doc of
        # ``leader``); otherwise kopf gets its usual 10 s to finish.
        grace_s = 10.0
        if lost is not None and elector is not None:
            grace_s = elector.expires_at() - _stop_margin_s(elector) - time.monotonic()
        await ctl.stop()  # before kopf, which would otherwise wait 5 s for these tasks
        kopf_stop.set()
        if operator is not None:
            await _finish(operator, max(0.0, grace_s))
            await ctl.stop()  # workers that an event delivered meanwhile may have started
        keeper.cancel()
        await asyncio.wait({keeper})
    rc = EXIT_OK
    if lost is not None:
        log.error("stepping down: %s", lost)
        rc = EXIT_LOST_LEASE
    elif kopf_error is not None:
        log.error("kopf stopped with an error: %s", kopf_error)
        rc = 1
    if elector is not None and rc == EXIT_OK:
        await elector.release()
    return rc


def _outcome(task: asyncio.Task[Any]) -> BaseException | None:
    """The error ``task`` ended with (None while running, when cancelled or when it returned);
    reading it also keeps asyncio from logging it as never retrieved."""
    if not task.done() or task.cancelled():
        return None
    return task.exception()


def _lost(keeper: asyncio.Task[Any]) -> BaseException | None:
    """Why the lease keeper ended, if it did not end because it was told to stop: any error in
    it means renewals are no longer guaranteed, which is as good as a lost lease."""
    err = _outcome(keeper)
    if err is None or isinstance(err, LeadershipLost):
        return err
    return LeadershipLost(f"the lease keeper failed: {err!r}")


def _stop_margin_s(elector: LeaseElector) -> float:
    """Slack kept between the end of the shutdown and the lease's expiry: half of D - R."""
    cfg = elector.cfg
    return (cfg.lease_duration_s - cfg.renew_deadline_s) / 2


async def _finish(task: asyncio.Task[Any], grace_s: float) -> None:
    """Let ``task`` end on its own for up to ``grace_s``, then cancel it; its outcome is the
    caller's business (read from the task), never raised here."""
    await asyncio.wait({task}, timeout=grace_s)
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    _outcome(task)
