"""A lean Kubernetes API client for the watch cache and the decision writer.

The official client turns every object into generated model classes, which costs far more CPU
than the extender can spare at thousands of pods; here list/watch/patch speak raw JSON over
httpx. Connection settings come from the official loader (``KUBECONFIG`` or in-cluster config),
so authentication behaves like every other Kubernetes tool.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

_SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Connection:
    host: str
    verify: str | bool
    cert: tuple[str, str] | None
    token: str | None
    token_file: str | None


def load_connection(kubeconfig: str | None = None) -> Connection:
    """Connection settings from ``kubeconfig`` (or ``$KUBECONFIG``), else in-cluster config."""
    from kubernetes import client, config  # imported here: heavy, and only needed at start

    cfg = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    token_file: str | None = None
    if path:
        config.load_kube_config(config_file=path, client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        token_file = _SA_TOKEN
    auth = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
    token = auth.removeprefix("Bearer ").strip() if auth else None
    verify: str | bool = cfg.ssl_ca_cert if cfg.verify_ssl and cfg.ssl_ca_cert else cfg.verify_ssl
    cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file and cfg.key_file else None
    return Connection(
        host=cfg.host.rstrip("/"), verify=verify, cert=cert, token=token, token_file=token_file
    )


def _ssl_context(conn: Connection) -> ssl.SSLContext | bool:
    if conn.verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(conn.verify, str):
        ctx = ssl.create_default_context(cafile=conn.verify)
    else:
        ctx = ssl.create_default_context()
    if conn.cert is not None:
        ctx.load_cert_chain(conn.cert[0], conn.cert[1])
    return ctx


class KubeApi:
    """list / watch / get / merge-patch on raw JSON; thread-safe (one pooled httpx client)."""

    def __init__(self, conn: Connection, *, timeout_s: float = 10.0) -> None:
        self._conn = conn
        self._client = httpx.Client(
            base_url=conn.host,
            verify=_ssl_context(conn),
            timeout=httpx.Timeout(timeout_s, read=timeout_s),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            headers={"Accept": "application/json", "User-Agent": "edge-allocator-extender"},
        )

    def _headers(self) -> dict[str, str]:
        token = self._conn.token
        if self._conn.token_file:  # projected tokens rotate; read the current one
            try:
                with open(self._conn.token_file) as f:
                    token = f.read().strip()
            except OSError:
                pass
        return {"Authorization": f"Bearer {token}"} if token else {}

    @staticmethod
    def _check(resp: httpx.Response) -> None:
        if resp.status_code >= 300:
            try:
                message = str(resp.json().get("message", resp.text))
            except (ValueError, AttributeError):
                message = resp.text[:300]
            raise ApiError(resp.status_code, message)

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        resp = self._client.get(path, params=params, headers=self._headers())
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
                self._check(resp)
            for line in resp.iter_lines():
                if line:
                    yield json.loads(line)

    def post(self, path: str, body: dict[str, Any]) -> None:
        headers = dict(self._headers(), **{"Content-Type": "application/json"})
        resp = self._client.post(path, content=json.dumps(body), headers=headers)
        self._check(resp)

    def merge_patch(self, path: str, body: dict[str, Any]) -> None:
        headers = dict(self._headers(), **{"Content-Type": "application/merge-patch+json"})
        resp = self._client.patch(path, content=json.dumps(body), headers=headers)
        self._check(resp)

    def close(self) -> None:
        self._client.close()
