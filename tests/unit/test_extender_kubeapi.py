"""The API credentials of the extender and the operator (``cluster.kubeclient``, shared): rotated
tokens are picked up, the kubeconfig is found where kubectl finds it, the TLS context, and the
operator's view of the same settings."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_allocator.cluster.kubeclient import (
    Connection,
    TokenFile,
    TokenSource,
    load_connection,
    ssl_context,
)
from edge_allocator.extender.kubeapi import ApiError, KubeApi
from edge_allocator.operator.kubeapi import Credentials, load_credentials

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "{server}", insecure-skip-tls-verify: true}}
users:
- name: u
  user: {{token: "{token}"}}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
"""


def _rotate(path: Path, token: str) -> None:
    """Replace the file the way kubelet does: a new file swapped in (new inode)."""
    tmp = path.with_suffix(".new")
    tmp.write_text(token + "\n")
    os.replace(tmp, path)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _api(conn: Connection, clock: Clock, check_s: float = 10.0) -> KubeApi:
    return KubeApi(conn, token_check_s=check_s, clock=clock)


def _conn(**kw: Any) -> Connection:
    base: dict[str, Any] = dict(
        host="https://127.0.0.1:9", verify=False, cert=None, token=None, token_file=None
    )
    return Connection(**(base | kw))


def test_token_file_is_reread_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("a\n")
    tf = TokenFile(str(path))
    assert tf.read() == "a"
    _rotate(path, "b")
    assert tf.read() == "b"
    path.write_text("")  # being rewritten: keep the last good token
    assert tf.read() == "b"
    path.unlink()  # gone for a moment: same
    assert tf.read() == "b"


def test_a_rotated_service_account_token_is_used_after_the_check_interval(
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    path.write_text("a")
    clock = Clock()
    api = _api(_conn(token_file=str(path)), clock, check_s=10.0)
    try:
        assert api.token() == "a"
        _rotate(path, "b")
        assert api.token() == "a"  # no file I/O between checks
        clock.t += 10.0
        assert api.token() == "b"
        _rotate(path, "c")
        assert api.token(force=True) == "c"  # as after a 401
    finally:
        api.close()


def test_expiring_kubeconfig_credentials_are_refreshed_and_a_failure_keeps_the_last() -> None:
    tokens = iter(["t1", "t2"])

    def refresh() -> str | None:
        try:
            return next(tokens)
        except StopIteration:
            raise RuntimeError("exec plugin failed") from None

    clock = Clock()
    api = _api(_conn(token="t0", refresh=refresh), clock, check_s=5.0)
    try:
        assert api.token() == "t1"
        assert api.token() == "t1"
        clock.t += 5.0
        assert api.token() == "t2"
        clock.t += 5.0
        assert api.token() == "t2"  # the refresh raised: the last token stays
    finally:
        api.close()


def test_a_static_token_is_sent_as_is() -> None:
    api = _api(_conn(token="fixed"), Clock())
    try:
        assert api._headers() == {"Authorization": "Bearer fixed"}
    finally:
        api.close()


def test_a_401_rereads_the_token_and_retries_once(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        seen.append(auth)
        if auth != "Bearer new":
            return httpx.Response(401, json={"message": "Unauthorized"})
        return httpx.Response(200, json={"items": []})

    api = _api(_conn(token_file=str(path)), Clock(), check_s=3600.0)
    api._client = httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(handler))
    try:
        assert api.token() == "old"
        _rotate(path, "new")  # rotated long before the next periodic check
        assert api.get("/api/v1/nodes") == {"items": []}
        assert seen == ["Bearer old", "Bearer new"]
        seen.clear()
        path.write_text("")  # a revoked token that did not change: one try, then the 401
        api._client = httpx.Client(
            base_url="https://api.test",
            transport=httpx.MockTransport(lambda r: (seen.append("x"), httpx.Response(401))[1]),
        )
        with pytest.raises(ApiError, match="HTTP 401") as info:
            api.get("/api/v1/nodes")
        assert info.value.status == 401 and seen == ["x"]
    finally:
        api.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    return tmp_path


def _write(path: Path, server: str, token: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(KUBECONFIG.format(server=server, token=token))
    return path


def test_kubeconfig_lookup_order(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = _write(home / ".kube" / "config", "https://default:6443", "d")
    conn = load_connection()
    assert (conn.host, conn.token, conn.source) == ("https://default:6443", "d", str(default))
    assert conn.token_file is None and conn.verify is False
    env = _write(home / "env.yaml", "https://env:6443", "e")
    monkeypatch.setenv("KUBECONFIG", str(env))
    assert load_connection().host == "https://env:6443"
    flag = _write(home / "flag.yaml", "https://flag:6443", "f")
    assert load_connection(str(flag)).token == "f"


def test_a_named_kubeconfig_that_fails_is_an_error_not_a_fallback(home: Path) -> None:
    _write(home / ".kube" / "config", "https://default:6443", "d")
    with pytest.raises(Exception, match=r"kubeconfig .*missing\.yaml: "):
        load_connection(str(home / "missing.yaml"))


def test_no_kubeconfig_outside_a_cluster_says_what_to_do(home: Path) -> None:
    with pytest.raises(Exception, match="--kubeconfig or set KUBECONFIG"):
        load_connection()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/tls.key",
         "-subj", "/CN=test", "-days", "1", "-out", f"{d}/tls.crt"],
        check=True, capture_output=True,
    )  # fmt: skip
    return d


# -- the token ----------------------------------------------------------------------------------


def test_a_static_token_is_never_checked_again_and_no_token_sends_no_header() -> None:
    clock = Clock()
    tokens = TokenSource(_conn(token="fixed"), check_s=1.0, clock=clock)
    assert tokens.headers() == {"Authorization": "Bearer fixed"}
    clock.t += 1e6
    assert tokens.token(force=True) == "fixed"
    assert TokenSource(_conn()).headers() == {}


def test_a_rotated_token_file_is_picked_up_after_the_interval_or_at_once_when_forced(
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    path.write_text("a")
    clock = Clock()
    tokens = TokenSource(_conn(token_file=str(path)), check_s=5.0, clock=clock)
    assert tokens.token() == "a"
    _rotate(path, "b")
    assert tokens.token() == "a"
    clock.t += 5.0
    assert tokens.headers() == {"Authorization": "Bearer b"}
    _rotate(path, "c")
    assert tokens.token(force=True) == "c"


def test_the_extender_and_the_operator_read_tokens_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("a")
    conn = _conn(token_file=str(path))
    ext_clock, op_clock = Clock(), Clock()
    ext = KubeApi(conn, token_check_s=3.0, clock=ext_clock)
    creds = Credentials(conn, token_check_s=3.0, clock=op_clock)
    try:
        assert ext.token() == creds.token() == "a"
        _rotate(path, "b")
        ext_clock.t += 1.0
        op_clock.t += 1.0
        assert ext.token() == creds.token() == "a"  # not yet checked again
        ext_clock.t += 2.0
        op_clock.t += 2.0
        assert ext.token() == creds.token() == "b"
        assert creds.auth_headers() == {"Authorization": "Bearer b"}
    finally:
        ext.close()


# -- TLS ----------------------------------------------------------------------------------------


def test_ssl_context_without_verification_still_presents_a_client_certificate(
    pki: Path,
) -> None:
    ctx = ssl_context(_conn(verify=False, cert=(str(pki / "tls.crt"), str(pki / "tls.key"))))
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


def test_ssl_context_trusts_the_named_ca(pki: Path) -> None:
    ctx = ssl_context(_conn(verify=str(pki / "tls.crt")))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "test"),),)]
    assert ssl_context(_conn(verify=True)).verify_mode == ssl.CERT_REQUIRED


# -- where the settings come from ------------------------------------------------------------


def test_in_cluster_settings_name_the_token_file_the_loader_read(
    home: Path, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes.config import incluster_config

    token = home / "sa-token"
    token.write_text("sa-1")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(pki / "tls.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    conn = load_connection()
    assert (conn.host, conn.source, conn.token, conn.token_file) == (
        "https://10.0.0.1:443",
        "in-cluster",
        "sa-1",
        str(token),
    )
    assert conn.verify == str(pki / "tls.crt") and conn.refresh is None
    creds = load_credentials(None)  # the operator: the same settings, the token rotates
    assert creds.server == "https://10.0.0.1:443"
    assert isinstance(creds.ssl_context, ssl.SSLContext)
    _rotate(token, "sa-2")
    assert creds.token(force=True) == "sa-2"


def test_the_operator_loads_a_kubeconfig_as_the_extender_does(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = _write(home / ".kube" / "config", "https://default:6443", "d")
    creds = load_credentials(None)
    assert creds.server == "https://default:6443" and creds.connection.source == str(default)
    assert creds.auth_headers() == {"Authorization": "Bearer d"}
    assert creds.token() == "d"
    assert creds.ssl_context.verify_mode == ssl.CERT_NONE
    # what kopf's login reads from the loader's configuration
    cfg = creds.configuration
    assert cfg.verify_ssl is False and cfg.cert_file is None
    env = _write(home / "env.yaml", "https://env:6443", "e")
    monkeypatch.setenv("KUBECONFIG", str(env))
    assert load_credentials(None).server == "https://env:6443"
    flag = _write(home / "flag.yaml", "https://flag:6443", "f")
    assert load_credentials(str(flag)).token() == "f"
    with pytest.raises(Exception, match=r"kubeconfig .*missing\.yaml: "):
        load_credentials(str(home / "missing.yaml"))


def test_the_operator_outside_a_cluster_without_a_kubeconfig_says_what_to_do(home: Path) -> None:
    with pytest.raises(Exception, match="--kubeconfig or set KUBECONFIG"):
        load_credentials(None)
