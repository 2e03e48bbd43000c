"""Fuzz the HTTP API: every answer to generated or broken input is a clear 4xx, never a 5xx.

schemathesis drives every operation of the OpenAPI document with a bounded number of generated
bodies and parameters; hypothesis adds truncated, corrupted and oversized ExtenderArgs.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_extender_helpers import make_app, pod

app, _service, _source = make_app(admin_rate_per_s=1e6, admin_burst=1_000_000, max_body_bytes=65536)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
client = TestClient(app)

VALID = json.dumps({"Pod": pod(budget=12), "NodeNames": [f"node-{i:04d}" for i in range(6)]})


def assert_clear(status: int, body: bytes) -> None:
    assert status < 500, body[:300]
    if status >= 400:
        err = json.loads(body)["error"]
        assert err["message"] and err["requestId"] and err["status"] == status


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_operations_never_5xx(case: Any) -> None:
    response = case.call()
    assert_clear(response.status_code, response.content)


@given(cut=st.integers(min_value=0, max_value=len(VALID) - 1))
@settings(max_examples=60, deadline=None)
def test_truncated_args(cut: int) -> None:
    for verb in ("/filter", "/prioritize"):
        r = client.post(verb, content=VALID[:cut], headers={"content-type": "application/json"})
        assert_clear(r.status_code, r.content)
        assert r.status_code in (400, 422)


@given(
    pos=st.integers(min_value=0, max_value=len(VALID) - 1),
    junk=st.binary(min_size=1, max_size=8),
)
@settings(max_examples=80, deadline=None)
def test_corrupted_args(pos: int, junk: bytes) -> None:
    data = VALID.encode()
    body = data[:pos] + junk + data[pos + len(junk) :]
    for verb in ("/filter", "/prioritize"):
        r = client.post(verb, content=body, headers={"content-type": "application/json"})
        assert_clear(r.status_code, r.content)


@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    ),
    field=st.sampled_from(
        [
            ("Pod",),
            ("Pod", "metadata"),
            ("Pod", "metadata", "annotations"),
            ("Pod", "metadata", "annotations", "edge-allocator.io/latency-budget-ms"),
            ("Pod", "spec", "containers"),
            ("Pod", "spec", "containers", 0, "resources", "requests", "cpu"),
            ("NodeNames",),
            ("NodeNames", 0),
            ("Nodes",),
        ]
    ),
)
@settings(max_examples=120, deadline=None)
def test_wrong_types_anywhere(value: Any, field: tuple[Any, ...]) -> None:
    doc = json.loads(VALID)
    target = doc
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    for verb in ("/filter", "/prioritize"):
        r = client.post(verb, json=doc)
        assert_clear(r.status_code, r.content)


def test_oversized_args() -> None:
    huge = {"Pod": pod(), "NodeNames": ["n" * 200] * 1000}
    r = client.post("/prioritize", json=huge)
    assert r.status_code == 413
    assert "exceeds 65536 bytes" in r.json()["error"]["message"]
