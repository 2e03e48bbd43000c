"""A lean Kubernetes API client for the watch cache and the decision writer.

The official client turns every object into generated model classes, which costs far more CPU
than the extender can spare at thousands of pods; here list/watch/patch speak raw JSON over
httpx. Connection settings, token rotation and TLS come from
:mod:`edge_allocator.cluster.kubeclient`, shared with the operator: ``--kubeconfig``, then
``$KUBECONFIG``, then ``~/.kube/config``, then the in-cluster service account, whose token file
is re-read when it changes (checked at most every ``token_check_s``, and at once after a 401).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from edge_allocator.cluster.kubeclient import (
    Connection,
    TokenSource,
    load_connection,
    ssl_context,
)

__all__ = ["ApiError", "Connection", "KubeApi", "load_connection"]


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class KubeApi:
    """list / watch / get / merge-patch on raw JSON; thread-safe (one pooled httpx client)."""

    def __init__(
        self,
        conn: Connection,
        *,
        timeout_s: float = 10.0,
        token_check_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = httpx.Client(
            base_url=conn.host,
            verify=ssl_context(conn),
            timeout=httpx.Timeout(timeout_s, read=timeout_s),
            # as many kept alive as allowed: a Binding per pod, many in flight, must not pay a
            # TLS handshake each (the watches hold three connections for their lifetime)
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
            headers={"Accept": "application/json", "User-Agent": "edge-allocator-extender"},
        )
        self._tokens = TokenSource(conn, check_s=token_check_s, clock=clock)

    def token(self, *, force: bool = False) -> str | None:
        """The bearer token to send now: re-read at most every ``token_check_s`` (``force``:
        at once, as after a 401)."""
        return self._tokens.token(force=force)

    def _headers(self, *, force: bool = False) -> dict[str, str]:
        return self._tokens.headers(force=force)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        content: str | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        """One request; after a 401, once more if re-reading the credentials changed them."""
        extra = {"Content-Type": content_type} if content_type else {}
        sent = self._headers()
        resp = self._client.request(
            method, path, params=params, content=content, headers=sent | extra
        )
        if resp.status_code == 401:
            fresh = self._headers(force=True)
            if fresh != sent:
                resp = self._client.request(
                    method, path, params=params, content=content, headers=fresh | extra
                )
        return resp

    @staticmethod
    def _check(resp: httpx.Response) -> None:
        if resp.status_code >= 300:
            try:
                message = str(resp.json().get("message", resp.text))
            except (ValueError, AttributeError):
                message = resp.text[:300]
            raise ApiError(resp.status_code, message)

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        resp = self._send("GET", path, params=params)
        self._check(resp)
        body: dict[str, Any] = resp.json()
        return body

    def list_all(
        self, path: str, params: dict[str, str] | None = None, page: int = 500
    ) -> tuple[list[dict[str, Any]], str]:
        """Every item under ``path`` (paged) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        query = dict(params or {}, limit=str(page))
        while True:
            body = self.get(path, query)
            items.extend(body.get("items") or [])
            cont = (body.get("metadata") or {}).get("continue")
            if not cont:
                return items, str((body.get("metadata") or {}).get("resourceVersion", ""))
            query["continue"] = cont

    def watch(
        self,
        path: str,
        resource_version: str,
        params: dict[str, str] | None = None,
        timeout_s: int = 300,
    ) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) until the server ends the stream."""
        query = dict(
            params or {},
            watch="1",
            resourceVersion=resource_version,
            allowWatchBookmarks="true",
            timeoutSeconds=str(timeout_s),
        )
        timeout = httpx.Timeout(10.0, read=timeout_s + 30.0)
        with self._client.stream(
            "GET", path, params=query, headers=self._headers(), timeout=timeout
        ) as resp:
            if resp.status_code >= 300:
                resp.read()
                if resp.status_code == 401:  # the reflector's next try sends a fresh token
                    self.token(force=True)
                self._check(resp)
            for line in resp.iter_lines():
                if line:
                    yield json.loads(line)

    def post(self, path: str, body: dict[str, Any]) -> None:
        resp = self._send("POST", path, content=json.dumps(body), content_type="application/json")
        self._check(resp)

    def merge_patch(self, path: str, body: dict[str, Any]) -> None:
        resp = self._send(
            "PATCH", path, content=json.dumps(body), content_type="application/merge-patch+json"
        )
        self._check(resp)

    def close(self) -> None:
        self._client.close()
