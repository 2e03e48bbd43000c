"""Kubernetes API credentials shared by the extender (httpx) and the operator (aiohttp).

Each component keeps its own transport; what they share is here: where the connection settings
come from, the bearer token to send now, and the TLS context.

* :func:`load_connection` reads the settings with the official loader, in the order kubectl
  uses: the named kubeconfig (``--kubeconfig``), then ``$KUBECONFIG``, then ``~/.kube/config``,
  then the in-cluster service account. A kubeconfig that was named (flag or variable) and fails
  is an error, never a silent fallback.
* :class:`TokenSource` gives the token: a service-account token file is re-read when it changes
  (kubelet rotates projected tokens; checked at most every ``check_s``, and at once when forced,
  as after a 401), and kubeconfig credentials that expire (exec plugins, OIDC) are refreshed
  through the loader's own hook, keeping the last token when a refresh fails.
* :func:`ssl_context` builds the TLS context (CA, or no verification, plus a client certificate)
  that both httpx and aiohttp accept.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_KUBECONFIG = "~/.kube/config"


@dataclass(frozen=True)
class Connection:
    host: str
    verify: str | bool
    """A CA bundle path, True (the system CAs) or False (no verification)."""
    cert: tuple[str, str] | None
    """Client certificate and key files."""
    token: str | None
    token_file: str | None
    refresh: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)
    """Returns the current token of expiring kubeconfig credentials (None: keep the last)."""
    source: str = ""
    """Where the settings came from (a kubeconfig path or ``in-cluster``), for the log."""
    configuration: Any = field(default=None, compare=False, repr=False)
    """The ``kubernetes.client.Configuration`` they were loaded into (None when built by hand),
    for clients such as kopf's login that take the loader's fields."""


def load_connection(kubeconfig: str | None = None) -> Connection:
    """Connection settings: ``kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``, else
    the in-cluster service account (an explicitly named kubeconfig that fails is an error)."""
    from kubernetes import client, config  # imported here: heavy, and only needed at start
    from kubernetes.config import incluster_config

    cfg = client.Configuration()
    named = kubeconfig or os.environ.get("KUBECONFIG") or None
    path = named or os.path.expanduser(DEFAULT_KUBECONFIG)
    token_file: str | None = None
    try:
        config.load_kube_config(config_file=path, client_configuration=cfg)  # type: ignore[no-untyped-call]
        source = path
    except (config.ConfigException, OSError, TypeError) as exc:
        if named:
            raise config.ConfigException(f"kubeconfig {named}: {exc}") from exc
        try:  # TokenSource's token-file refresh replaces the loader's one-minute timer
            config.load_incluster_config(client_configuration=cfg, try_refresh_token=False)  # type: ignore[no-untyped-call]
        except config.ConfigException as in_cluster:
            raise config.ConfigException(
                f"no kubeconfig ({DEFAULT_KUBECONFIG}: {exc}) and not running in a cluster "
                f"({in_cluster}); pass --kubeconfig or set KUBECONFIG"
            ) from in_cluster
        token_file, source = incluster_config.SERVICE_TOKEN_FILENAME, "in-cluster"
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
        configuration=cfg,
    )


def _bearer(cfg: Any) -> str | None:
    """The token the loader set, without its scheme (the in-cluster loader writes ``bearer``)."""
    auth = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
    if not auth:
        return None
    scheme, _, rest = str(auth).strip().partition(" ")
    return rest.strip() if rest and scheme.lower() == "bearer" else str(auth).strip()


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


class TokenSource:
    """The bearer token of a :class:`Connection` to send now; thread-safe, and cheap between
    checks (no file I/O, no lock), so an event loop may call it per request."""

    def __init__(
        self,
        conn: Connection,
        *,
        check_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.check_s = check_s
        self._refresh = conn.refresh
        self._clock = clock
        self._file = TokenFile(conn.token_file) if conn.token_file else None
        self._token = conn.token
        self._next_check = 0.0 if (self._file or self._refresh) else float("inf")
        self._lock = threading.Lock()

    def token(self, *, force: bool = False) -> str | None:
        """Re-read at most every ``check_s`` (``force``: at once, as after a 401)."""
        if not force and self._clock() < self._next_check:
            return self._token
        with self._lock:
            if force or self._clock() >= self._next_check:
                if self._file is not None:
                    self._token = self._file.read() or self._token
                elif self._refresh is not None:
                    try:
                        self._token = self._refresh() or self._token
                    except Exception as exc:  # keep the last token; the API answers 401 if stale
                        log.warning("refreshing the kubeconfig credentials failed: %s", exc)
                if self._file is not None or self._refresh is not None:
                    self._next_check = self._clock() + self.check_s
        return self._token

    def headers(self, *, force: bool = False) -> dict[str, str]:
        """``Authorization: Bearer …``, or nothing when the credentials have no token."""
        token = self.token(force=force)
        return {"Authorization": f"Bearer {token}"} if token else {}


def ssl_context(conn: Connection) -> ssl.SSLContext:
    """The TLS context for ``conn``: its CA (or none checked), and its client certificate."""
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
