"""TLS for the extender: server certificate plus optional client-certificate checks per route.

kube-scheduler's extender ``tlsConfig`` can present a client certificate. The server asks for
one (``CERT_OPTIONAL``: a presented certificate must chain to ``--client-ca``), and the verb
routes then require it, while probes and admin routes (bearer token) work without. uvicorn does
not pass the peer certificate to the app, so a thin protocol subclass adds it to the ASGI scope
as ``scope["extensions"]["tls"]["client_cert_subject"]``.
"""

from __future__ import annotations

import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def peer_subject(transport: Any) -> str | None:
    """The verified client certificate's subject (``CN=...``), or None when none was shown."""
    if transport is None:
        return None
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    parts = [f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn]
    return ",".join(parts) or "verified"


class TlsInfoProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the verified client certificate in the scope."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        subject = peer_subject(self.transport) if self.scheme == "https" else None
        self.scope["extensions"] = {"tls": {"client_cert_subject": subject}}


def client_cert_subject(scope: Any) -> str | None:
    return ((scope.get("extensions") or {}).get("tls") or {}).get("client_cert_subject")


def uvicorn_tls_options(
    certfile: str | None, keyfile: str | None, client_ca: str | None
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` (empty when TLS is off)."""
    if not certfile:
        return {}
    opts: dict[str, Any] = {"ssl_certfile": certfile, "ssl_keyfile": keyfile}
    if client_ca:
        opts.update(ssl_ca_certs=client_ca, ssl_cert_reqs=ssl.CERT_OPTIONAL)
    return opts
