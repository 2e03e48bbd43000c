"""TLS: the verbs need a client certificate from the configured CA; probes and admin do not."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_extender_helpers import make_app, pod, serving

from edge_allocator.extender.tls import TlsInfoProtocol, uvicorn_tls_options


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def issue(d: Path, name: str, ca: str, cn: str, san: str | None = None) -> None:
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{d}/{name}.key",
        "-subj",
        f"/CN={cn}",
        "-out",
        f"{d}/{name}.csr",
    )
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl(
        "x509",
        "-req",
        "-in",
        f"{d}/{name}.csr",
        "-CA",
        f"{d}/{ca}.crt",
        "-CAkey",
        f"{d}/{ca}.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(ext),
        "-out",
        f"{d}/{name}.crt",
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{d}/{ca}.key",
            "-subj",
            f"/CN={ca}",
            "-days",
            "1",
            "-out",
            f"{d}/{ca}.crt",
        )
    issue(d, "server", "ca", "extender", "IP:127.0.0.1")
    issue(d, "scheduler", "ca", "kube-scheduler")
    issue(d, "intruder", "other-ca", "intruder")
    return d


@pytest.fixture(scope="module")
def server(certs: Path) -> Iterator[str]:
    opts = uvicorn_tls_options(f"{certs}/server.crt", f"{certs}/server.key", f"{certs}/ca.crt")
    app, _, _ = make_app(
        tls_cert=f"{certs}/server.crt", tls_key=f"{certs}/server.key", client_ca=f"{certs}/ca.crt"
    )
    with serving(app, "https", http=TlsInfoProtocol, **opts) as url:
        yield url


def client(certs: Path, who: str | None) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")
    if who:
        ctx.load_cert_chain(f"{certs}/{who}.crt", f"{certs}/{who}.key")
    return httpx.Client(verify=ctx, timeout=10)


def test_verbs_need_a_client_certificate(server: str, certs: Path) -> None:
    body = {"Pod": pod(), "NodeNames": ["node-0000", "node-0001"]}
    with client(certs, None) as anonymous:
        r = anonymous.post(f"{server}/prioritize", json=body)
        assert r.status_code == 403
        assert "client certificate" in r.json()["error"]["message"]
        assert anonymous.get(f"{server}/healthz").status_code == 200
        assert anonymous.get(f"{server}/v1/models").status_code == 200
    with client(certs, "scheduler") as scheduler:
        r = scheduler.post(f"{server}/prioritize", json=body)
        assert r.status_code == 200 and len(r.json()) == 2


def test_certificate_from_another_ca_is_refused(server: str, certs: Path) -> None:
    with client(certs, "intruder") as intruder, pytest.raises(httpx.HTTPError):
        intruder.get(f"{server}/healthz")
