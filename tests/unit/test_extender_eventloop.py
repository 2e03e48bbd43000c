"""The request path never waits: scoring runs off the event loop, per-pod policies resolve once.

A slow policy must not hold up /healthz (liveness) or /readyz and /metrics; an unknown policy
named by a pod is refused with a message naming the field, and later pods asking for it are
answered from memory; the models directory is listed off the request path and unchanged files
are not read again.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_extender_helpers import fleet, make_app, pod, serving
from test_model_file import _model

from edge_allocator.cluster import annotations as ann
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.extender import service as service_module
from edge_allocator.extender.models import Active, ModelManager
from edge_allocator.extender.podtask import TaskInputError
from edge_allocator.extender.service import PolicyResolver
from edge_allocator.policy import registry
from edge_allocator.policy.registry import ModelIndex

NAMES = [n.name for n in fleet().nodes]


class BlockingPolicy:
    """Scores like a policy whose inference takes as long as the test wants."""

    name = "blocking"
    version = "1"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        self.entered.set()
        assert self.release.wait(30), "the test never released the policy"
        return [float(-i) for i in range(len(candidates))]


def test_probes_answer_while_a_pod_is_being_scored() -> None:
    app, service, _ = make_app()
    slow = BlockingPolicy()
    service.models.active = Active("blocking", slow, 0.0)
    body = {"Pod": pod(site="site-0"), "NodeNames": NAMES}
    with (
        serving(app) as url,
        httpx.Client(base_url=url, timeout=20) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        scoring = pool.submit(client.post, "/prioritize", json=body)
        assert slow.entered.wait(20), "prioritize never reached the policy"
        try:
            # the policy is still inside score(): the loop must serve these meanwhile
            for path in ("/healthz", "/readyz", "/metrics"):
                r = client.get(path)
                assert r.status_code == 200, (path, r.text)
                assert not scoring.done()
            assert client.get("/healthz").json() == {"status": "ok"}
        finally:
            slow.release.set()
        r = scoring.result(timeout=20)
    assert r.status_code == 200
    scores = {h["Host"]: h["Score"] for h in r.json()}
    assert scores[NAMES[0]] == 10  # the answer is the (slow) policy's


UNKNOWN = "gnn@9.9.9"


def _filter(client: Any, policy: str) -> dict[str, Any]:
    body = {"Pod": pod(site="site-0", extra={ann.ANN_POLICY: policy}), "NodeNames": NAMES}
    r = client.post("/filter", json=body)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_unknown_pod_policy_is_refused_naming_the_field_and_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi.testclient import TestClient

    app, service, _ = make_app()
    client = TestClient(app)
    out = _filter(client, UNKNOWN)
    assert out["NodeNames"] == []
    reason = out["FailedAndUnresolvableNodes"][NAMES[0]]
    assert f"annotation {ann.ANN_POLICY} (EdgeTask spec.policy)" in reason
    assert UNKNOWN in reason and "9.9.9" in reason

    def no_disk(*_: Any, **__: Any) -> Any:
        raise AssertionError("a remembered policy name must not be looked up again")

    monkeypatch.setattr(service_module, "get_policy", no_disk)
    monkeypatch.setattr(registry, "list_models", no_disk)
    monkeypatch.setattr(registry, "read_model_file", no_disk)
    for _ in range(3):
        again = _filter(client, UNKNOWN)
        assert again["FailedAndUnresolvableNodes"][NAMES[0]] == reason
    # prioritize scores such a pod neutrally (filter already said why)
    body = {"Pod": pod(site="site-0", extra={ann.ANN_POLICY: UNKNOWN}), "NodeNames": NAMES}
    assert {h["Score"] for h in client.post("/prioritize", json=body).json()} == {0}
    assert service.log.get(("ns", "p")) is None  # no decision recorded with another policy


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("../../etc/passwd.pt", "unknown policy"),
        ("/models/gnn.pt", "unknown policy"),
        ("greedy-oracle", "unknown policy"),
        ("x" * 200, "unknown policy"),
        ("gnn@", "no gnn model of version"),
    ],
)
def test_names_that_are_not_deployable_policies_are_refused(name: str, needle: str) -> None:
    resolver = PolicyResolver(ModelManager("est-completion"), ModelIndex())
    with pytest.raises(TaskInputError, match=needle) as info:
        resolver.resolve(name)
    assert str(info.value).startswith(f"annotation {ann.ANN_POLICY} (EdgeTask spec.policy)")


def test_a_pod_policy_is_validated_once_then_served_from_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real_validate = service_module.validate

    def counting(policy: Any, live: Any) -> None:
        calls.append(policy.name)
        real_validate(policy, live)

    monkeypatch.setattr(service_module, "validate", counting)
    resolver = PolicyResolver(ModelManager("est-completion"), ModelIndex())
    first = resolver.resolve("latency")
    assert first.name == "latency"
    for _ in range(5):
        assert resolver.resolve("latency") is first
    assert calls == ["latency"]
    # the active policy's own name, or none, is the active policy without any lookup
    assert resolver.resolve(None) is resolver.models.active.policy
    assert resolver.resolve("est-completion") is resolver.models.active.policy
    assert calls == ["latency"]


class NanPolicy:
    name = "gnn"
    version = "6.6.6"

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        return [math.nan for _ in candidates]


def test_a_pod_policy_that_fails_validation_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "get_policy", lambda name: NanPolicy())
    resolver = PolicyResolver(ModelManager("est-completion"), ModelIndex())
    with pytest.raises(TaskInputError, match=r"'gnn@6\.6\.6' refused: returned non-finite"):
        resolver.resolve("gnn@6.6.6")


def test_a_model_file_dropped_in_later_is_found_after_the_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(registry.MODELS_DIR_ENV, str(tmp_path))
    index = ModelIndex(tmp_path)
    resolver = PolicyResolver(ModelManager("est-completion"), index)
    with pytest.raises(TaskInputError, match=r"no gnn model of version '0\.0\.1'"):
        resolver.resolve("gnn@0.0.1")
    _model(tmp_path, "gnn-0.0.1.pt")
    with pytest.raises(TaskInputError):  # remembered until the listing changes
        resolver.resolve("gnn@0.0.1")
    assert index.refresh() is True
    policy = resolver.resolve("gnn@0.0.1")
    assert policy.version == "0.0.1"
    assert "0.0.1" in index.versions()


def test_model_listing_rereads_only_changed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = _model(tmp_path, "gnn-a.pt")
    shutil.copy(path, tmp_path / "gnn-b.pt")
    reads: list[str] = []
    real_read = registry.read_model_file

    def counting(p: Path) -> Any:
        reads.append(p.name)
        return real_read(p)

    monkeypatch.setattr(registry, "read_model_file", counting)
    index = ModelIndex(tmp_path)
    assert [m.path.name for m in index.models()] == ["gnn-a.pt", "gnn-b.pt"]
    generation = index.generation
    assert sorted(reads) == ["gnn-a.pt", "gnn-b.pt"]
    reads.clear()
    assert index.refresh() is False and index.generation == generation
    assert reads == []  # unchanged: only stat'ed
    (tmp_path / "gnn-b.pt").unlink()
    assert index.refresh() is True and index.generation == generation + 1
    assert [m.path.name for m in index.models()] == ["gnn-a.pt"] and reads == []


def test_the_background_refresh_notices_a_new_model(tmp_path: Path) -> None:
    index = ModelIndex(tmp_path, interval_s=0.01)
    assert index.models() == ()
    index.start()
    try:
        _model(tmp_path, "gnn-new.pt")
        deadline = time.monotonic() + 20
        while not index.models():
            assert time.monotonic() < deadline, "the refresher never saw the new file"
            time.sleep(0.01)
    finally:
        index.stop()
    assert index.models()[0].version == "0.0.1"
