"""Lease-based leader election (coordination.k8s.io/v1), as client-go's leaderelection does it.

Only the leader runs the kopf handlers, so two replicas never act on the same task at once.
Expiry is judged by the candidate's own clock (how long since it last saw the lease change),
never by comparing timestamps written by another machine. Updates carry the resourceVersion,
so two candidates racing for an expired lease cannot both win.

Timing rule, which is why two leaders never overlap. ``D`` is the lease duration, ``R`` the
renew deadline (``R < D``), ``T`` the instant the leader *started* its last successful renewal
(the write reached the server after ``T``):

* a rival cannot take the lease before ``T + D``: it counts ``D`` from the moment it *saw*
  that renewal, which is after the write landed (``leaseDurationSeconds`` is written as ``D``
  rounded *up* to whole seconds, so a rival never waits less than ``D``);
* the leader stops leading (``hold`` raises ``LeadershipLost``) at ``T + R`` at the latest: a
  renewal attempt is cut off at that instant, and every single Lease call after
  ``call_timeout_s = min((D - R) / 2, R)``, so no slow or hung call keeps it leading longer;
* the work it guards then has ``D - R`` to stop; the runner bounds its shutdown by
  ``expires_at()`` (``T + D``) less a margin.

A call that was cut off may still land on the server later: that only makes rivals wait longer,
never shorter. Transport failures (disconnects, resets, truncated or undecodable answers,
timeouts) and API errors are failed attempts, retried every ``retry_period_s``; they never end
the process, they only let the renew deadline run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp

from edge_allocator.operator.config import LeaderConfig
from edge_allocator.operator.kubeapi import ApiError, KubeApi

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE: tuple[type[Exception], ...] = (
    ApiError,
    aiohttp.ClientError,  # ServerDisconnectedError, ClientPayloadError, ClientConnectorError...
    OSError,
    TimeoutError,  # asyncio.TimeoutError is the same class since Python 3.11
    ValueError,  # JSONDecodeError, UnicodeDecodeError, a malformed Lease
)
"""Errors that make one election attempt fail; the next attempt may well succeed."""


def _micro_time(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def call_timeout_s(cfg: LeaderConfig) -> float:
    """The longest one Lease API call may take: well inside the ``D - R`` margin, so that a
    call started before the renew deadline cannot run on until the lease expires."""
    return min((cfg.lease_duration_s - cfg.renew_deadline_s) / 2, cfg.renew_deadline_s)


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _spec_of(lease: Any) -> dict[str, Any]:
    """The Lease's spec; a body that is not a Lease is a failed attempt, not a crash."""
    spec = (lease.get("spec") or {}) if isinstance(lease, dict) else None
    if not isinstance(spec, dict):
        raise ValueError(f"malformed Lease: {str(lease)[:200]}")
    return spec


def _number(value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"malformed Lease field: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"malformed Lease field: {value!r}")
    return number


class LeaseElector:
    def __init__(self, api: KubeApi, cfg: LeaderConfig) -> None:
        self.api = api
        self.cfg = cfg
        self.call_timeout_s = call_timeout_s(cfg)
        self._observed: tuple[Any, ...] | None = None  # (holder, renewTime, transitions)
        self._observed_at = 0.0
        self._last_renew = 0.0

    def expires_at(self) -> float:
        """``time.monotonic()`` instant before which no rival can hold the lease (``T + D``)."""
        return self._last_renew + self.cfg.lease_duration_s

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Block until this candidate holds the lease (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            try:
                if await self._try_acquire_or_renew():
                    log.info("became leader (lease %s/%s)", self.cfg.namespace, self.cfg.name)
                    return True
            except RETRYABLE as err:
                log.warning("leader election: %s", _describe(err))
            await _sleep_unless(stop, self.cfg.retry_period_s)
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew every ``retry_period_s`` until ``stop`` is set (returns). Raises
        ``LeadershipLost`` when a rival holds the lease, or at the renew deadline if no renewal
        succeeded within it: never later, whatever the API server does (see the module doc)."""
        cfg = self.cfg
        while True:
            deadline = self._last_renew + cfg.renew_deadline_s
            left = deadline - time.monotonic()
            if left <= 0:
                raise LeadershipLost(f"could not renew the lease within {cfg.renew_deadline_s:g}s")
            if await _sleep_unless(stop, min(cfg.retry_period_s, left)):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                continue
            try:
                async with asyncio.timeout(left):
                    renewed = await self._try_acquire_or_renew()
            except RETRYABLE as err:
                log.warning(
                    "lease renewal failed (stepping down in %.1fs unless one succeeds): %s",
                    max(0.0, deadline - time.monotonic()),
                    _describe(err),
                )
                continue
            if not renewed:
                raise LeadershipLost("another replica holds the lease")

    async def release(self) -> None:
        """Hand the lease back so that a standby takes over at once (best effort)."""
        try:
            lease = await self._call(self.api.get_lease(self.cfg.namespace, self.cfg.name))
            if lease is None:
                return
            spec = _spec_of(lease)
            if spec.get("holderIdentity") != self.cfg.identity:
                return
            lease["spec"] = {
                **spec,
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "renewTime": _micro_time(),
            }
            await self._call(self.api.replace_lease(self.cfg.namespace, self.cfg.name, lease))
            log.info("released the lease")
        except RETRYABLE as err:
            log.warning("could not release the lease: %s", _describe(err))

    async def _call(self, call: Awaitable[T]) -> T:
        """One Lease API call, cut off after ``call_timeout_s`` (raises TimeoutError)."""
        async with asyncio.timeout(self.call_timeout_s):
            return await call

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.cfg
        now = time.monotonic()
        lease = await self._call(self.api.get_lease(cfg.namespace, cfg.name))
        spec_new: dict[str, Any] = {
            "holderIdentity": cfg.identity,
            # whole seconds on the wire: round up, so rivals never wait less than D
            "leaseDurationSeconds": max(1, math.ceil(cfg.lease_duration_s)),
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
        spec = _spec_of(lease)
        holder = spec.get("holderIdentity") or ""
        transitions = int(_number(spec.get("leaseTransitions"), 0))
        record = (holder, spec.get("renewTime"), transitions)
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = _number(spec.get("leaseDurationSeconds"), cfg.lease_duration_s)
        expired = now - self._observed_at > duration
        if holder and holder != cfg.identity and not expired:
            return False
        if holder == cfg.identity:
            spec_new["acquireTime"] = spec.get("acquireTime") or spec_new["renewTime"]
            spec_new["leaseTransitions"] = transitions
        else:
            spec_new["acquireTime"] = spec_new["renewTime"]
            spec_new["leaseTransitions"] = transitions + 1
        lease["spec"] = spec_new
        return await self._claimed(self.api.replace_lease(cfg.namespace, cfg.name, lease), now)

    async def _claimed(self, write: Awaitable[object], now: float) -> bool:
        """Run a Lease write; a 409 means another replica got there first (we lost). ``now`` is
        when the attempt started: the renewal counts from then, never from the answer."""
        try:
            await self._call(write)
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
