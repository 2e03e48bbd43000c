"""Kubernetes quantities: every suffix, exponent forms, and bad or huge input on the request path.

A pod whose requests cannot be read (or are too large to represent) is refused with a message
that names the field; it never turns into an HTTP 500. The parser itself lives in
``cluster/quantity.py``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from test_extender_cache import Clock, synced_cache
from test_extender_helpers import make_app, pod

from edge_allocator.cluster.quantity import (
    QuantityError,
    cpu_millicores,
    memory_mib,
    parse_quantity,
)
from edge_allocator.extender.cache import parse_node_metrics, parse_pod


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1", Decimal(1)),
        ("0", Decimal(0)),
        ("250m", Decimal("0.25")),
        ("100n", Decimal("1e-7")),
        ("5u", Decimal("5e-6")),
        ("2k", Decimal(2000)),
        ("3M", Decimal(3 * 10**6)),
        ("1G", Decimal(10**9)),
        ("1T", Decimal(10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),  # exa, not an exponent
        ("2E", Decimal(2 * 10**18)),
        ("1Ki", Decimal(2**10)),
        ("1Mi", Decimal(2**20)),
        ("1Gi", Decimal(2**30)),
        ("1Ti", Decimal(2**40)),
        ("1Pi", Decimal(2**50)),
        ("1Ei", Decimal(2**60)),  # exbi
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),  # an exponent: digits follow the E
        ("1e+3", Decimal(1000)),
        ("1E-3", Decimal("0.001")),
        ("1.5Gi", Decimal(3 * 2**29)),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("+2", Decimal(2)),
        (" 2 ", Decimal(2)),
        (3, Decimal(3)),
        (0.5, Decimal("0.5")),
    ],
)
def test_every_kubernetes_suffix(text: str | int | float, want: Decimal) -> None:
    assert parse_quantity(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "1Xi",
        "1KiB",
        "1e",
        "1 Gi",
        "--1",
        "1.2.3",
        "Gi",
        "1e999999999",
    ],
)
def test_bad_quantities_raise_quantity_error(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("cpu", "millicores"),
    [("250m", 250), ("1", 1000), ("1.5", 1500), ("1u", 1), ("100n", 1), ("2k", 2_000_000)],
)
def test_cpu_rounds_up_to_millicores(cpu: str, millicores: int) -> None:
    assert cpu_millicores(cpu) == millicores


@pytest.mark.parametrize(
    ("mem", "mib"),
    [("128Mi", 128), ("1Gi", 1024), ("1", 1), ("1M", 1), ("1G", 954), ("1.5Ki", 1)],
)
def test_memory_rounds_up_to_mib(mem: str, mib: int) -> None:
    assert memory_mib(mem) == mib


HUGE = ["1e999999999", "1e999999999m", "99999999999999999999999999999Ei", "lots", "1E+"]


@pytest.mark.parametrize("cpu", HUGE)
def test_a_pod_with_an_unusable_quantity_is_refused_naming_the_field(cpu: str) -> None:
    app, _, _ = make_app()
    c = TestClient(app, raise_server_exceptions=False)
    names = ["node-0000", "node-0001"]
    r = c.post("/filter", json={"Pod": pod(cpu=cpu), "NodeNames": names})
    assert r.status_code == 200, r.text
    reasons = r.json()["FailedAndUnresolvableNodes"]
    assert set(reasons) == set(names) and r.json()["NodeNames"] == []
    assert "Pod.spec resources" in reasons[names[0]]
    r = c.post("/prioritize", json={"Pod": pod(cpu=cpu), "NodeNames": names})
    assert r.status_code == 200 and {h["Score"] for h in r.json()} == {0}


def test_a_watched_pod_or_metric_with_a_huge_quantity_counts_nothing() -> None:
    obj = {
        "metadata": {"uid": "u", "name": "p"},
        "spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"cpu": HUGE[0]}}}]},
        "status": {"phase": "Running"},
    }
    info = parse_pod(obj)
    assert info is not None and (info.cpu_m, info.mem_mib) == (0, 0)
    cache = synced_cache(Clock(1_767_225_660.0))
    cache.upsert("pods", obj)  # the reflector thread must survive it
    assert cache.rebuild() is not None
    metrics = parse_node_metrics(
        [
            {"metadata": {"name": "n1"}, "usage": {"cpu": HUGE[0], "memory": "1Gi"}},
            {"metadata": {"name": "n2"}, "usage": {"cpu": "250m", "memory": "1Gi"}},
        ]
    )
    assert list(metrics) == ["n2"]
