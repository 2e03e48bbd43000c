"""The extender's API credentials: rotated tokens are picked up, and the kubeconfig is found
where kubectl and the operator find it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_allocator.extender.kubeapi import (
    ApiError,
    Connection,
    KubeApi,
    TokenFile,
    load_connection,
)

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
