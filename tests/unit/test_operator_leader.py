"""Leader election under a failing API server: the process keeps running, and a leader that
cannot renew stops leading before any rival can take the lease (no two leaders at once).

The Lease API is an in-memory fake with the API server's resourceVersion rule; faults are
injected per client. Times are scaled down (lease 1 s, renew deadline 0.5 s, retry 0.1 s).
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import Any, cast

import aiohttp
import kopf
import pytest

from edge_allocator.operator import runner
from edge_allocator.operator.cache import ClusterCache
from edge_allocator.operator.config import LeaderConfig, OperatorConfig
from edge_allocator.operator.kubeapi import ApiError, KubeApi
from edge_allocator.operator.leader import LeadershipLost, LeaseElector, call_timeout_s
from edge_allocator.operator.metrics import OperatorMetrics

pytestmark = pytest.mark.timeout(30)

LEASE_S, RENEW_S, RETRY_S = 1.0, 0.5, 0.1
SLACK_S = 0.15  # event-loop scheduling on a busy machine


def leader_cfg(identity: str) -> LeaderConfig:
    return LeaderConfig(
        identity=identity,
        lease_duration_s=LEASE_S,
        renew_deadline_s=RENEW_S,
        retry_period_s=RETRY_S,
    )


class LeaseStore:
    """One Lease as the API server keeps it: writes must carry the current resourceVersion."""

    def __init__(self) -> None:
        self.lease: Any = None
        self.version = 0
        self.writes: list[tuple[float, str]] = []  # (when, holder)

    def put(self, lease: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(lease)
        stored.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self.lease = stored
        self.writes.append((time.monotonic(), stored["spec"].get("holderIdentity", "")))
        return copy.deepcopy(stored)


class FakeLeaseApi:
    """One replica's client of ``LeaseStore``, with injectable faults."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.fail_next: list[BaseException] = []
        self.always: BaseException | None = None
        self.hang = False
        self.calls = 0
        self.cut_off: list[float] = []  # how long each hung call ran before it was cancelled

    async def _fault(self) -> None:
        self.calls += 1
        if self.hang:
            started = time.monotonic()
            try:
                await asyncio.Event().wait()
            finally:
                self.cut_off.append(time.monotonic() - started)
        if self.fail_next:
            raise self.fail_next.pop(0)
        if self.always is not None:
            raise self.always

    async def get_lease(self, namespace: str, name: str) -> Any:
        await self._fault()
        return copy.deepcopy(self.store.lease)

    async def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        await self._fault()
        if self.store.lease is not None:
            raise ApiError(409, "AlreadyExists", "leases exists")
        return self.store.put(lease)

    async def replace_lease(self, namespace: str, name: str, lease: dict[str, Any]) -> Any:
        await self._fault()
        current = (self.store.lease or {}).get("metadata", {}).get("resourceVersion")
        if lease.get("metadata", {}).get("resourceVersion") != current:
            raise ApiError(409, "Conflict", "the object has been modified")
        return self.store.put(lease)


def elector(store: LeaseStore, identity: str) -> tuple[LeaseElector, FakeLeaseApi]:
    api = FakeLeaseApi(store)
    return LeaseElector(cast(KubeApi, api), leader_cfg(identity)), api


def transport_errors() -> list[BaseException]:
    """What a flaky connection to the API server raises, as seen from aiohttp and json."""
    return [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        json.JSONDecodeError("Expecting value", "<html>", 0),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
        ApiError(500, "InternalError", "etcdserver: request timed out"),
    ]


ERRORS = pytest.mark.parametrize("error", transport_errors(), ids=lambda e: type(e).__name__)


def test_call_timeout_fits_inside_the_margin_between_deadline_and_expiry() -> None:
    for lease, renew in [(15, 10), (60, 40), (15, 14.5), (3, 2)]:
        cfg = LeaderConfig(lease_duration_s=lease, renew_deadline_s=renew, retry_period_s=0.1)
        assert 0 < call_timeout_s(cfg) < lease - renew
        assert call_timeout_s(cfg) <= renew
    assert call_timeout_s(LeaderConfig()) == 2.5  # defaults: 15 s lease, 10 s deadline


@ERRORS
async def test_acquire_retries_through_connection_errors(error: BaseException) -> None:
    store = LeaseStore()
    candidate, api = elector(store, "a")
    api.fail_next = [error, error, error]
    assert await asyncio.wait_for(candidate.acquire(asyncio.Event()), timeout=5)
    assert api.fail_next == [] and store.lease["spec"]["holderIdentity"] == "a"


@ERRORS
async def test_leader_keeps_the_lease_through_errors_shorter_than_the_deadline(
    error: BaseException,
) -> None:
    store = LeaseStore()
    leader, api = elector(store, "a")
    stop = asyncio.Event()
    assert await leader.acquire(stop)
    api.fail_next = [error, error]  # two failed renewals: about 0.2 s of a 0.5 s deadline
    holding = asyncio.create_task(leader.hold(stop))
    await asyncio.sleep(RENEW_S * 1.5)  # past the deadline, counted from the acquire
    assert not holding.done()  # still leading: a later renewal succeeded
    stop.set()
    await asyncio.wait_for(holding, timeout=1)  # returns, no LeadershipLost
    assert api.fail_next == [] and len(store.writes) >= 4


@ERRORS
async def test_a_leader_that_cannot_renew_steps_down_before_a_rival_can_lead(
    error: BaseException,
) -> None:
    store = LeaseStore()
    leader, leader_api = elector(store, "a")
    rival, _ = elector(store, "b")
    stop = asyncio.Event()
    assert await leader.acquire(stop)
    renewed_at = leader._last_renew
    leader_api.always = error  # the leader's connection breaks; the rival's works
    rival_won = asyncio.create_task(rival.acquire(stop))
    with pytest.raises(LeadershipLost, match="could not renew"):
        await asyncio.wait_for(leader.hold(stop), timeout=5)
    stepped_down = time.monotonic()
    assert stepped_down <= renewed_at + RENEW_S + SLACK_S
    assert stepped_down < leader.expires_at()
    assert not rival_won.done()  # the rival is still waiting for the lease to expire
    assert await asyncio.wait_for(rival_won, timeout=5)
    taken_over = next(when for when, holder in store.writes if holder == "b")
    assert taken_over >= renewed_at + LEASE_S  # no overlap: a full lease after the last renewal
    assert taken_over - stepped_down >= LEASE_S - RENEW_S - SLACK_S


async def test_a_hung_renewal_is_cut_off_and_the_leader_steps_down_in_time() -> None:
    store = LeaseStore()
    leader, api = elector(store, "a")
    stop = asyncio.Event()
    assert await leader.acquire(stop)
    renewed_at = leader._last_renew
    api.hang = True  # the API server accepts the connection and never answers
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(leader.hold(stop), timeout=5)
    stepped_down = time.monotonic()
    assert api.cut_off, "the hung call was never cancelled"
    assert max(api.cut_off) <= leader.call_timeout_s + SLACK_S
    assert leader.call_timeout_s < LEASE_S - RENEW_S
    assert stepped_down <= renewed_at + RENEW_S + SLACK_S < leader.expires_at()


async def test_a_hung_acquire_is_cut_off_and_retried() -> None:
    store = LeaseStore()
    candidate, api = elector(store, "a")
    api.hang = True
    acquiring = asyncio.create_task(candidate.acquire(asyncio.Event()))
    await asyncio.sleep(candidate.call_timeout_s * 2 + RETRY_S)
    assert len(api.cut_off) >= 1 and not acquiring.done()
    api.hang = False
    assert await asyncio.wait_for(acquiring, timeout=5)


@pytest.mark.parametrize(
    "garbage",
    [["not", "a", "lease"], {"spec": "x"}, {"spec": {"leaseTransitions": "many"}}],
    ids=["list", "spec-string", "bad-number"],
)
async def test_a_malformed_lease_is_a_failed_attempt(garbage: Any) -> None:
    store = LeaseStore()
    store.lease = garbage
    candidate, api = elector(store, "a")
    acquiring = asyncio.create_task(candidate.acquire(asyncio.Event()))
    await asyncio.sleep(RETRY_S * 3)
    assert not acquiring.done() and api.calls >= 2  # still trying
    store.lease = None
    assert await asyncio.wait_for(acquiring, timeout=5)


async def test_a_rival_holding_the_lease_deposes_the_leader_at_once() -> None:
    store = LeaseStore()
    leader, _ = elector(store, "a")
    stop = asyncio.Event()
    assert await leader.acquire(stop)
    lease = copy.deepcopy(store.lease)
    lease["spec"]["holderIdentity"] = "b"
    store.put(lease)
    started = time.monotonic()
    with pytest.raises(LeadershipLost, match="another replica"):
        await asyncio.wait_for(leader.hold(stop), timeout=5)
    assert time.monotonic() - started <= RETRY_S + SLACK_S


async def test_release_survives_a_broken_connection() -> None:
    store = LeaseStore()
    leader, api = elector(store, "a")
    assert await leader.acquire(asyncio.Event())
    api.always = aiohttp.ServerDisconnectedError()
    await leader.release()  # logged, not raised
    api.always = None
    await leader.release()
    assert store.lease["spec"]["holderIdentity"] == ""


# -- the runner: the work stops when the lease is lost ---------------------------------------


def _fake_kopf(log: dict[str, Any], *, obeys_stop: bool) -> Any:
    async def operator(**kwargs: Any) -> None:
        log["started"] = time.monotonic()
        kwargs["ready_flag"].set()
        try:
            if obeys_stop:
                await kwargs["stop_flag"].wait()
            else:
                await asyncio.Event().wait()  # a kopf that does not stop when asked
        finally:
            log["ended"] = time.monotonic()

    return operator


async def _run_lead(elector_: LeaseElector, stop: asyncio.Event) -> int:
    cfg = OperatorConfig()
    return await runner._lead(cfg, cast(KubeApi, None), OperatorMetrics(), None, elector_, stop)


async def test_a_deposed_leader_stops_its_work_before_the_lease_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_prime(self: ClusterCache, api: Any, namespaces: Any) -> None:
        return None

    kopf_log: dict[str, Any] = {}
    monkeypatch.setattr(ClusterCache, "prime", no_prime)
    monkeypatch.setattr(kopf, "operator", _fake_kopf(kopf_log, obeys_stop=False))
    store = LeaseStore()
    leader, api = elector(store, "a")
    stop = asyncio.Event()
    assert await leader.acquire(stop)
    api.always = aiohttp.ServerDisconnectedError()
    rc = await asyncio.wait_for(_run_lead(leader, stop), timeout=10)
    assert rc == runner.EXIT_LOST_LEASE
    assert kopf_log["ended"] < leader.expires_at()  # kopf ignored its stop flag: cancelled
    assert store.lease["spec"]["holderIdentity"] == "a"  # not released: it could not be


async def test_the_lease_is_renewed_while_the_cache_primes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def slow_prime(self: ClusterCache, api: Any, namespaces: Any) -> None:
        await asyncio.sleep(LEASE_S * 1.5)  # a big cluster: longer than the whole lease

    kopf_log: dict[str, Any] = {}
    monkeypatch.setattr(ClusterCache, "prime", slow_prime)
    monkeypatch.setattr(kopf, "operator", _fake_kopf(kopf_log, obeys_stop=True))
    store = LeaseStore()
    leader, _ = elector(store, "a")
    rival, _ = elector(store, "b")
    stop = asyncio.Event()
    assert await leader.acquire(stop)
    leading = asyncio.create_task(_run_lead(leader, stop))
    rival_won = asyncio.create_task(rival.acquire(stop))
    await asyncio.sleep(LEASE_S * 2)
    assert "started" in kopf_log and not leading.done() and not rival_won.done()
    stop.set()
    assert await asyncio.wait_for(leading, timeout=5) == runner.EXIT_OK
    assert await asyncio.wait_for(rival_won, timeout=5) is False
    assert store.lease["spec"]["holderIdentity"] == ""  # released on a clean stop
