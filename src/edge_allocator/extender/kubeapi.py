"""A lean Kubernetes API client for the watch cache and the decision writer.

The official client turns every object into generated model classes, which costs far more CPU
than the extender can spare at thousands of pods; here list/watch/patch speak raw JSON over
httpx. Connection settings come from the official loader, in the order the operator and
kubectl use: ``--kubeconfig``, then ``$KUBECONFIG``, then ``~/.kube/config``, then the in-cluster
service account. Tokens rotate: the service-account token file is re-read when it changes
(checked at most every ``token_check_s``, and at once after a 401), and a kubeconfig whose
credentials expire (exec plugins, OIDC) is refreshed through the loader's own hook.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)

_SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
_DEFAULT_KUBECONFIG = "~/.kube/config"


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
    refresh: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)
    """Returns the current token of expiring kubeconfig credentials (None: keep the last)."""
    source: str = ""
    """Where the settings came from (a kubeconfig path or ``in-cluster``), for the log."""


def load_connection(kubeconfig: str | None = None) -> Connection:
    """Connection settings: ``kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``, else
    the in-cluster service account (an explicitly named kubeconfig that fails is an error)."""
    from kubernetes import client, config  # imported here: heavy, and only needed at start

    cfg = client.Configuration()
    named = kubeconfig or os.environ.get("KUBECONFIG") or None
    path = named or os.path.expanduser(_DEFAULT_KUBECONFIG)
    token_file: str | None = None
    try:
        config.load_kube_config(config_file=path, client_configuration=cfg)  # type: ignore[no-untyped-call]
        source = path
    except (config.ConfigException, OSError, TypeError) as exc:
        if named:
            raise config.ConfigException(f"kubeconfig {named}: {exc}") from exc
        try:  # our own token-file refresh replaces the loader's one-minute timer
            config.load_incluster_config(client_configuration=cfg, try_refresh_token=False)  # type: ignore[no-untyped-call]
        except config.ConfigException as in_cluster:
            raise config.ConfigException(
                f"no kubeconfig ({_DEFAULT_KUBECONFIG}: {exc}) and not running in a cluster "
                f"({in_cluster}); pass --kubeconfig or set KUBECONFIG"
            ) from in_cluster
        token_file, source = _SA_TOKEN, "in-cluster"
    token = _bearer(cfg)
    hook = getattr(cfg, "refresh_api_key_hook", None)
    refresh: Callable[[], str | None] | None = None
    if hook is not None and token_file is None:

        def refresh() -> str | None:
            hook(cfg)
            return _bearer(cfg)

    verify: str | bool = cfg.ssl_ca_cert if cfg.verify_ssl and cfg.ssl_ca_cert else cfg.verify_ssl
    cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file and cfg.key_file else None
    return Connection(
        host=cfg.host.rstrip("/"),
        verify=verify,
        cert=cert,
        token=token,
        token_file=token_file,
        refresh=refresh,
        source=source,
    )


def _bearer(cfg: Any) -> str | None:
    auth = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
    return str(auth).removeprefix("Bearer ").strip() if auth else None


class TokenFile:
    """A token file read again only when it changed (kubelet rotates a projected token by
    swapping a symlink, which changes the inode); a missing or empty file keeps the last
    token rather than sending none."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self._token: str | None = None

    def read(self) -> str | None:
        try:
            st = os.stat(self.path)
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            if key != self._key:
                text = Path(self.path).read_text().strip()
                self._key = key
                if text:
                    self._token = text
        except OSError as exc:
            log.warning("cannot read the token file %s: %s", self.path, exc)
        return self._token


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

    def __init__(
        self,
        conn: Connection,
        *,
        timeout_s: float = 10.0,
        token_check_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self._client = httpx.Client(
            base_url=conn.host,
            verify=_ssl_context(conn),
            timeout=httpx.Timeout(timeout_s, read=timeout_s),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            headers={"Accept": "application/json", "User-Agent": "edge-allocator-extender"},
        )
        self.token_check_s = token_check_s
        self._clock = clock
        self._token_file = TokenFile(conn.token_file) if conn.token_file else None
        self._token = conn.token
        self._next_check = 0.0 if (self._token_file or conn.refresh) else float("inf")
        self._token_lock = threading.Lock()

    def token(self, *, force: bool = False) -> str | None:
        """The bearer token to send now: re-read at most every ``token_check_s`` (``force``:
        at once, as after a 401)."""
        if not force and self._clock() < self._next_check:
            return self._token
        with self._token_lock:
            if force or self._clock() >= self._next_check:
                if self._token_file is not None:
                    self._token = self._token_file.read() or self._token
                elif self._conn.refresh is not None:
                    try:
                        self._token = self._conn.refresh() or self._token
                    except Exception as exc:  # keep the last token; the API answers 401 if stale
                        log.warning("refreshing the kubeconfig credentials failed: %s", exc)
                if self._token_file is not None or self._conn.refresh is not None:
                    self._next_check = self._clock() + self.token_check_s
        return self._token

    def _headers(self, *, force: bool = False) -> dict[str, str]:
        token = self.token(force=force)
        return {"Authorization": f"Bearer {token}"} if token else {}

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
