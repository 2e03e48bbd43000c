"""Lease-based leader election (coordination.k8s.io/v1), as client-go's leaderelection does it.

Only the leader runs the kopf handlers, so two replicas never act on the same task at once.
Expiry is judged by the candidate's own clock (how long since it last saw the lease change),
never by comparing timestamps written by another machine. Updates carry the resourceVersion,
so two candidates racing for an expired lease cannot both win.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable
from typing import Any

from edge_allocator.operator.config import LeaderConfig
from edge_allocator.operator.kubeapi import ApiError, KubeApi

log = logging.getLogger(__name__)


def _micro_time(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(self, api: KubeApi, cfg: LeaderConfig) -> None:
        self.api = api
        self.cfg = cfg
        self._observed: tuple[Any, ...] | None = None  # (holder, renewTime, transitions)
        self._observed_at = 0.0
        self._last_renew = 0.0

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Block until this candidate holds the lease (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            try:
                if await self._try_acquire_or_renew():
                    log.info("became leader (lease %s/%s)", self.cfg.namespace, self.cfg.name)
                    return True
            except (TimeoutError, ApiError, OSError) as err:
                log.warning("leader election: %s", err)
            await _sleep_unless(stop, self.cfg.retry_period_s)
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew until ``stop`` is set (returns) or renewal fails past the deadline (raises)."""
        while not stop.is_set():
            if await _sleep_unless(stop, self.cfg.retry_period_s):
                return
            try:
                if await self._try_acquire_or_renew():
                    continue
                raise LeadershipLost("another replica holds the lease")
            except (TimeoutError, ApiError, OSError) as err:
                log.warning("lease renewal failed: %s", err)
            if time.monotonic() - self._last_renew > self.cfg.renew_deadline_s:
                raise LeadershipLost(
                    f"could not renew the lease within {self.cfg.renew_deadline_s:g}s"
                )

    async def release(self) -> None:
        """Hand the lease back so that a standby takes over at once (best effort)."""
        try:
            lease = await self.api.get_lease(self.cfg.namespace, self.cfg.name)
            if (
                lease is None
                or (lease.get("spec") or {}).get("holderIdentity") != self.cfg.identity
            ):
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            lease["spec"]["renewTime"] = _micro_time()
            await self.api.replace_lease(self.cfg.namespace, self.cfg.name, lease)
            log.info("released the lease")
        except (TimeoutError, ApiError, OSError) as err:
            log.warning("could not release the lease: %s", err)

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.cfg
        now = time.monotonic()
        lease = await self.api.get_lease(cfg.namespace, cfg.name)
        spec_new = {
            "holderIdentity": cfg.identity,
            "leaseDurationSeconds": max(1, round(cfg.lease_duration_s)),
            "renewTime": _micro_time(),
        }
        if lease is None:
            spec_new["acquireTime"] = spec_new["renewTime"]
            spec_new["leaseTransitions"] = 0
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": spec_new,
            }
            return await self._claimed(self.api.create_lease(cfg.namespace, body), now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration_s)
        expired = now - self._observed_at > duration
        if holder and holder != cfg.identity and not expired:
            return False
        if holder == cfg.identity:
            spec_new["acquireTime"] = spec.get("acquireTime") or spec_new["renewTime"]
            spec_new["leaseTransitions"] = int(spec.get("leaseTransitions") or 0)
        else:
            spec_new["acquireTime"] = spec_new["renewTime"]
            spec_new["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        lease["spec"] = spec_new
        return await self._claimed(self.api.replace_lease(cfg.namespace, cfg.name, lease), now)

    async def _claimed(self, write: Awaitable[object], now: float) -> bool:
        """Run a Lease write; a 409 means another replica got there first (we lost)."""
        try:
            await write
        except ApiError as err:
            if err.status == 409:
                return False
            raise
        self._last_renew = now
        return True


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if ``stop`` was set. Spawns no task (kopf waits for every
    task created after it started before it exits)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


class LeadershipLost(RuntimeError):
    """The lease could not be kept; the process must stop acting."""
