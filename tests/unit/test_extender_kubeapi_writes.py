"""The extender's writes (Bindings, decision PATCHes) on pooled keep-alive connections, against a
real local HTTP server: body and headers as sent, one connection reused, a connection the server
closed meanwhile replaced without failing the write, a rotated token after a 401, API errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge_allocator.cluster.kubeclient import Connection
from edge_allocator.extender.kubeapi import ApiError, KubeApi


class Api(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[dict[str, Any]] = []
        self.close_after_answer = False  # drop the connection after answering, unannounced
        self.valid_token = "Bearer t1"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: Api

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "peer": self.client_address[1],
                "auth": self.headers.get("Authorization"),
                "type": self.headers.get("Content-Type"),
                "body": json.loads(body),
            }
        )
        if self.headers.get("Authorization") != self.server.valid_token:
            status, out = 401, {"kind": "Status", "message": "Unauthorized"}
        elif self.path.endswith("/missing/binding"):
            status, out = 404, {"kind": "Status", "message": 'pods "missing" not found'}
        else:
            status, out = 201, {"kind": "Status", "status": "Success"}
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.server.close_after_answer:
            self.close_connection = True

    do_POST = do_PATCH = _answer


@pytest.fixture
def server() -> Iterator[Api]:
    srv = Api()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(srv: Api, token_file: Path) -> KubeApi:
    host = f"http://127.0.0.1:{srv.server_address[1]}"
    conn = Connection(host=host, verify=False, cert=None, token=None, token_file=str(token_file))
    return KubeApi(conn, token_check_s=3600.0)


def test_writes_send_the_body_and_reuse_one_connection(server: Api, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t1")
    api = _client(server, tmp_path / "token")
    try:
        binding = {"kind": "Binding", "target": {"kind": "Node", "name": "n1"}}
        api.post("/api/v1/namespaces/ns/pods/p/binding", binding)
        api.merge_patch("/api/v1/namespaces/ns/pods/p", {"metadata": {"annotations": {"a": "b"}}})
    finally:
        api.close()
    first, second = server.seen
    assert (first["method"], first["path"], first["body"]) == (
        "POST",
        "/api/v1/namespaces/ns/pods/p/binding",
        binding,
    )
    assert first["type"] == "application/json" and first["auth"] == "Bearer t1"
    assert second["method"] == "PATCH" and second["type"] == "application/merge-patch+json"
    assert first["peer"] == second["peer"]  # the same kept-alive connection


def test_a_connection_the_server_closed_is_replaced_once(server: Api, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t1")
    api = _client(server, tmp_path / "token")
    server.close_after_answer = True  # every answer leaves a dead connection in the pool
    try:
        for i in range(3):
            api.post(f"/api/v1/namespaces/ns/pods/p{i}/binding", {"i": i})
    finally:
        api.close()
    assert [s["body"]["i"] for s in server.seen] == [0, 1, 2]  # each write exactly once
    assert len({s["peer"] for s in server.seen}) == 3


def test_a_401_rereads_a_rotated_token_and_api_errors_keep_their_message(
    server: Api, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("t0")
    api = _client(server, token)
    try:
        with pytest.raises(ApiError, match="HTTP 401: Unauthorized"):
            api.post("/api/v1/namespaces/ns/pods/p/binding", {})  # t0 is refused, unchanged
        token.write_text("t1")  # rotated long before the next periodic check
        api.post("/api/v1/namespaces/ns/pods/p/binding", {})
        assert [s["auth"] for s in server.seen] == ["Bearer t0", "Bearer t0", "Bearer t1"]
        with pytest.raises(ApiError) as info:
            api.post("/api/v1/namespaces/ns/pods/missing/binding", {})
        assert info.value.status == 404 and 'pods "missing" not found' in str(info.value)
    finally:
        api.close()
