"""Oversized request bodies get HTTP 413 with a JSON error, never a reset connection.

The client here is Python's http.client, which writes the whole body before it reads the
answer: the case that saw ``ECONNRESET`` when the server closed with the body unread.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from test_extender_helpers import make_app, pod, serving

MIB = 1 << 20


def _chunks(size: int, step: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, size, step):
        yield b"x" * min(step, size - start)


@pytest.mark.parametrize(
    ("http_impl", "limit", "size", "chunked"),
    [
        ("httptools", 8 * MIB, 64 * MIB, False),  # the default limit, the reported 64 MiB body
        ("httptools", 1 * MIB, 64 * MIB, True),
        ("h11", 8 * MIB, 64 * MIB, False),
        ("h11", 1 * MIB, 9 * MIB, True),
        ("httptools", 1 * MIB, 1 * MIB + 1, False),  # one byte over
    ],
)
def test_oversized_body_is_answered_413_and_the_connection_survives(
    http_impl: str, limit: int, size: int, chunked: bool
) -> None:
    app, _, _ = make_app(max_body_bytes=limit)
    with serving(app, http=http_impl) as url:
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            headers = {"content-type": "application/json"}
            if chunked:
                conn.request("POST", "/prioritize", _chunks(size), headers, encode_chunked=True)
            else:
                conn.request("POST", "/prioritize", b"x" * size, headers)
            r = conn.getresponse()
            body = json.loads(r.read())
            assert r.status == 413
            assert body["error"]["status"] == 413
            assert body["error"]["message"] == f"request body exceeds {limit} bytes"
            assert body["error"]["requestId"] == r.getheader("x-request-id")
            if not chunked:  # the server dropped the rest of the body: the connection is usable
                conn.request("GET", "/healthz")
                again = conn.getresponse()
                assert again.status == 200 and json.loads(again.read()) == {"status": "ok"}
        finally:
            conn.close()


@pytest.mark.parametrize(
    ("declared", "closes"),
    [(2 * MIB, False), (4 * MIB, False), (4 * MIB + 1, True), (1 << 40, True)],
)
def test_only_a_body_beyond_the_drain_allowance_closes_the_connection(
    declared: int, closes: bool
) -> None:
    app, _, _ = make_app(max_body_bytes=MIB, max_drain_bytes=4 * MIB)
    c = TestClient(app)
    # the declared length decides before any byte is read
    r = c.post(
        "/prioritize",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": str(declared)},
    )
    assert r.status_code == 413
    assert (r.headers.get("connection") == "close") is closes


def test_a_body_within_the_limit_is_served() -> None:
    app, _, _ = make_app(max_body_bytes=MIB)
    c = TestClient(app)
    r = c.post("/prioritize", json={"Pod": pod(), "NodeNames": ["node-0000", "node-0001"]})
    assert r.status_code == 200 and len(r.json()) == 2
