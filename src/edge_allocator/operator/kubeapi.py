"""A small asyncio client for the few API calls the operator makes itself.

kopf watches; this client writes (pods, status, leases). It speaks plain JSON over aiohttp with
the credentials of a kubeconfig or the in-cluster service account (found, refreshed and turned
into TLS settings by :mod:`edge_allocator.cluster.kubeclient`, as the extender's are), so
thousands of concurrent reconciles never wait on a thread pool or on model (de)serialisation.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from edge_allocator.cluster.kubeclient import (
    Connection,
    TokenSource,
    load_connection,
    ssl_context,
)
from edge_allocator.operator.views import GROUP, NETWORK_PLURAL, TASK_PLURAL, VERSION


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Credentials:
    """Where the API server is, its TLS context and the bearer token to send now (a rotated
    service-account token or refreshed kubeconfig credentials, re-read at most every
    ``token_check_s``)."""

    def __init__(
        self,
        conn: Connection,
        *,
        token_check_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connection = conn
        self.server = conn.host
        self.ssl_context: ssl.SSLContext = ssl_context(conn)
        self.configuration: Any = conn.configuration
        """The loader's kubernetes.client.Configuration (CA, client certificate), for kopf."""
        self._tokens = TokenSource(conn, check_s=token_check_s, clock=clock)

    def auth_headers(self, *, force: bool = False) -> dict[str, str]:
        return self._tokens.headers(force=force)

    def token(self, *, force: bool = False) -> str | None:
        """The bearer token without its scheme, if the credentials use one."""
        return self._tokens.token(force=force)


def load_credentials(kubeconfig: str | None) -> Credentials:
    """Credentials from ``kubeconfig`` (or $KUBECONFIG / ~/.kube/config), else in-cluster."""
    return Credentials(load_connection(kubeconfig))


class KubeApi:
    """The operator's write path; one pooled HTTP session per process."""

    def __init__(
        self,
        creds: Credentials,
        *,
        max_connections: int = 64,
        on_request: Callable[[str, int], None] | None = None,
    ) -> None:
        self._creds = creds
        self._on_request = on_request
        self.credentials = creds
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections

    async def __aenter__(self) -> KubeApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    ssl=self._creds.ssl_context, limit=self._max_connections
                ),
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", **self._creds.auth_headers()}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        async with self._client().request(
            method, self._creds.server + path, data=data, headers=headers, params=params
        ) as resp:
            if self._on_request is not None:
                self._on_request(method, resp.status)
            text = await resp.text()
            payload: dict[str, Any] = json.loads(text) if text else {}
            if resp.status >= 300:
                raise ApiError(
                    resp.status,
                    str(payload.get("reason", resp.reason)),
                    payload.get("message", text),
                )
            return payload

    # -- pods ------------------------------------------------------------------------------

    async def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    async def delete_pod(self, namespace: str, name: str, uid: str, grace_s: int = 0) -> None:
        """Delete exactly this pod (a UID precondition); gone already is fine."""
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": grace_s,
            "preconditions": {"uid": uid},
        }
        try:
            await self.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body)
        except ApiError as err:
            if err.status not in (404, 409):
                raise

    async def evict_pod(
        self, namespace: str, name: str, uid: str, *, dry_run: bool = False, grace_s: int = 0
    ) -> bool:
        """Evict exactly this pod through the Eviction API, so PodDisruptionBudgets hold.

        True when evicted (or already gone); False when a PodDisruptionBudget refuses it now
        (HTTP 429). ``dry_run`` asks the API server without evicting.
        """
        body: dict[str, Any] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
            "deleteOptions": {"gracePeriodSeconds": grace_s, "preconditions": {"uid": uid}},
        }
        if dry_run:
            body["deleteOptions"]["dryRun"] = ["All"]
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/eviction"
        try:
            await self.request("POST", path, body)
        except ApiError as err:
            if err.status == 429:
                return False
            if err.status not in (404, 409):
                raise
        return True

    # -- custom resources ---------------------------------------------------------------------

    async def patch_task_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{TASK_PLURAL}/{name}/status"
        return await self.request(
            "PATCH", path, {"status": status}, content_type="application/merge-patch+json"
        )

    async def patch_network_status(self, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        path = f"/apis/{GROUP}/{VERSION}/{NETWORK_PLURAL}/{name}/status"
        return await self.request(
            "PATCH", path, {"status": status}, content_type="application/merge-patch+json"
        )

    # -- leases ------------------------------------------------------------------------------

    def _lease_path(self, namespace: str, name: str = "") -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", self._lease_path(namespace, name))
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    async def create_lease(self, namespace: str, lease: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", self._lease_path(namespace), lease)

    async def replace_lease(
        self, namespace: str, name: str, lease: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self.request("PUT", self._lease_path(namespace, name), lease)
