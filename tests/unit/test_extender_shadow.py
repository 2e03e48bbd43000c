"""Shadow scoring: a second policy scores each decision off the request path; what it reports,
that it never holds up a verb, the admin API, and activation gated on the model card."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from test_extender_helpers import fleet, make_app, pod

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.extender.metrics import ExtenderMetrics
from edge_allocator.extender.service import ExtenderService
from edge_allocator.extender.shadow import (
    ShadowScorer,
    average_ranks,
    card_regression,
    predicted_gain_s,
    spearman,
)
from edge_allocator.extender.verbgate import VerbGate
from edge_allocator.extender.wire import ExtenderArgs
from edge_allocator.policy import registry
from edge_allocator.policy.gnn import GNNConfig, PlacementGNN
from edge_allocator.policy.model_file import save_model
from edge_allocator.policy.registry import ModelIndex, get_policy

NAMES = [n.name for n in fleet().nodes]


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),
        ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
        ([1, 2, 3], [1, 3, 2], 0.5),  # d = (0, 1, 1): 1 - 6 * 2 / (3 * 8)
        ([1, 1, 2], [1, 2, 3], math.sqrt(3) / 2),  # ties share the average rank (1.5)
        ([5, 5, 5], [1, 2, 3], None),  # constant: undefined
        ([1], [1], None),
    ],
)
def test_spearman(a: list[float], b: list[float], want: float | None) -> None:
    got = spearman(a, b)
    assert got == pytest.approx(want) if want is not None else got is None


def test_average_ranks_share_ties() -> None:
    assert average_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]


def _args(i: int) -> ExtenderArgs:
    return ExtenderArgs.model_validate(
        {"Pod": pod(f"p{i}", site=f"site-{i % 3}", uid=f"u{i}"), "NodeNames": NAMES}
    )


def _shadow_of(service: ExtenderService, name: str) -> None:
    service.shadow.set_policy(name, get_policy(name))


def test_a_shadow_equal_to_the_active_policy_always_agrees() -> None:
    _, service, _ = make_app(policy="est-completion")
    _shadow_of(service, "est-completion")
    for i in range(6):
        service.prioritize(_args(i))
    assert service.shadow.drain()
    stats = service.shadow.stats()
    assert (stats["scored"], stats["sameTop"], stats["agreement"]) == (6, 6, 1.0)
    assert stats["meanRankCorrelation"] == 1.0 and stats["meanPredictedGainS"] == 0.0


def test_a_different_shadow_is_measured_against_the_active_choices() -> None:
    _, service, source = make_app(policy="est-completion")
    _shadow_of(service, "latency")
    snap = source.snapshot
    assert snap is not None
    want_same, want_gain = 0, 0.0
    for i in range(6):
        args = _args(i)
        scores = service.prioritize(args)
        active_top = next(h for h, s in scores if s == 10)
        task = service._task(args.Pod, snap)[0]
        raw = get_policy("latency").score(snap, task, NAMES)
        shadow_top = min(range(len(NAMES)), key=lambda k: (-raw[k], NAMES[k]))
        want_same += NAMES[shadow_top] == active_top
        want_gain += predicted_gain_s(snap, task, active_top, NAMES[shadow_top])
    assert service.shadow.drain()
    stats = service.shadow.stats()
    assert stats["scored"] == 6 and stats["sameTop"] == want_same
    assert stats["meanPredictedGainS"] == pytest.approx(want_gain / 6, abs=1e-6)
    # est-completion picks the fastest node, so no other pick is predicted faster
    assert stats["meanPredictedGainS"] <= 0


class Blocking:
    name = "blocking"
    version = "1"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def score(self, snap: ClusterSnapshot, task: TaskSpec, cands: Sequence[str]) -> list[float]:
        self.entered.set()
        assert self.release.wait(30)
        return [0.0] * len(cands)


def test_a_stuck_shadow_never_holds_up_the_verbs_and_its_queue_is_bounded() -> None:
    _, service, _ = make_app()
    service.shadow = ShadowScorer(service.metrics, capacity=2)
    stuck = Blocking()
    service.shadow.set_policy("blocking", stuck)  # type: ignore[arg-type]
    try:
        service.prioritize(_args(0))
        assert stuck.entered.wait(20)
        for i in range(1, 10):  # every verb answers while the shadow is stuck
            assert len(service.prioritize(_args(i))) == len(NAMES)
        stats = service.shadow.stats()
        assert (stats["queued"], stats["dropped"]) == (2, 7)
    finally:
        stuck.release.set()
    assert service.shadow.drain()
    assert service.shadow.stats()["scored"] == 3


def test_the_shadow_sleeps_to_stay_within_its_share_of_a_core() -> None:
    slept: list[float] = []
    scorer = ShadowScorer(ExtenderMetrics(), duty=0.25, sleep=slept.append)
    service = make_app()[1]
    service.shadow = scorer
    scorer.set_policy("latency", get_policy("latency"))
    service.prioritize(_args(0))
    assert scorer.drain()
    assert len(slept) == 1 and slept[0] > 0  # 3x the time it scored (not measured here)


class Broken:
    name = "broken"
    version = "1"

    def score(self, snap: ClusterSnapshot, task: TaskSpec, cands: Sequence[str]) -> list[float]:
        raise RuntimeError("boom")


def test_a_failing_shadow_is_counted_and_the_active_answer_unchanged() -> None:
    _, service, _ = make_app()
    before = service.prioritize(_args(1))
    service.shadow.set_policy("broken", Broken())  # type: ignore[arg-type]
    assert service.prioritize(_args(1)) == before
    assert service.shadow.drain()
    assert service.shadow.stats()["failed"] == 1 and service.shadow.stats()["scored"] == 0


def test_admin_api_sets_reports_and_clears_the_shadow() -> None:
    app, service, _ = make_app(admin_token="t")
    c = TestClient(app)
    auth = {"authorization": "Bearer t"}
    assert c.get("/v1/shadow").status_code == 401
    assert c.get("/v1/shadow", headers=auth).json()["name"] is None
    r = c.put("/v1/shadow", json={"policy": "latency"}, headers=auth)
    assert r.status_code == 200 and r.json()["policy"] == "latency"
    body = {"Pod": pod(site="site-1"), "NodeNames": NAMES}
    for _ in range(3):
        assert c.post("/prioritize", json=body).status_code == 200
        assert service.wait_recorded("ns", "p")  # the shadow's job is queued with the record
    assert service.shadow.drain()
    assert c.get("/v1/shadow", headers=auth).json()["scored"] == 3
    metrics = c.get("/metrics").text
    assert 'edge_allocator_shadow_info{policy="latency",version="1"} 1.0' in metrics
    assert "edge_allocator_shadow_requests_total" in metrics
    assert "edge_allocator_shadow_rank_correlation_bucket" in metrics
    for name, status in (("nope", 404), ("gnn@0.0.0-missing", 404), ("../x.pt", 404)):
        r = c.put("/v1/shadow", json={"policy": name}, headers=auth)
        assert r.status_code == status, (name, r.text)
        assert "policy" in r.json()["error"]["message"]
    assert c.get("/v1/shadow", headers=auth).json()["name"] == "latency"  # unchanged
    r = c.put("/v1/shadow", json={"policy": None}, headers=auth)
    assert r.status_code == 200 and r.json()["name"] is None
    assert "edge_allocator_shadow_info{" not in c.get("/metrics").text


def _model_with_card(directory: Path, version: str, gnn_mean: float) -> None:
    torch.manual_seed(0)
    model = PlacementGNN(GNNConfig(hidden=8, layers=2, head_hidden=16))
    save_model(directory / f"gnn-{version}.pt", model, {"name": "gnn", "version": version})
    rows = [
        {"split": "heldout", "case": "c", "policy": p, "mean_completion_s": {"mean": m}}
        for p, m in (("kube-default", 10.0), ("gnn", gnn_mean), ("est-completion", 9.0))
    ]
    (directory / f"gnn-{version}.card.json").write_text(json.dumps({"rows": rows}))


def test_activation_is_gated_on_the_held_out_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(registry.MODELS_DIR_ENV, str(tmp_path))
    _model_with_card(tmp_path, "1.0.0", gnn_mean=7.0)  # 0.70 of kube-default
    _model_with_card(tmp_path, "2.0.0", gnn_mean=8.0)  # 0.80: worse
    index = ModelIndex(tmp_path)
    assert card_regression("gnn@2.0.0", "gnn@1.0.0", index) is not None
    assert card_regression("gnn@1.0.0", "gnn@2.0.0", index) is None
    # a baseline has no card: its row in the model's card stands in (est-completion 0.90)
    assert card_regression("gnn@2.0.0", "est-completion", index) is None
    assert card_regression("latency", "gnn@1.0.0", index) is None  # no evidence: allowed

    app, service, _ = make_app(policy="gnn@1.0.0")
    c = TestClient(app)
    r = c.post("/v1/models/gnn@2.0.0/activate")
    assert r.status_code == 409
    message = r.json()["error"]["message"]
    assert "held-out card is worse" in message and "0.800 vs 0.700" in message
    assert "force=true" in message and service.models.active.name == "gnn@1.0.0"
    r = c.post("/v1/models/gnn@2.0.0/activate", params={"force": "true"})
    assert r.status_code == 200 and service.models.active.name == "gnn@2.0.0"
    r = c.post("/v1/models/gnn@1.0.0/activate")  # better: no gate
    assert r.status_code == 200 and service.models.active.name == "gnn@1.0.0"


def test_the_dashboard_shows_the_shadow_when_there_is_one() -> None:
    from edge_allocator.dashboard import DashboardSource, build_state
    from edge_allocator.dashboard.view import collect_state

    _, service, source = make_app()
    assert build_state(None, [], None)["shadow"] is None
    dash = DashboardSource(
        snapshot=lambda: source.snapshot,
        api_get=lambda path: {"items": []},
        model=lambda: None,
        shadow=service.shadow.stats,
    )
    assert collect_state(dash)["shadow"] is None  # none set
    _shadow_of(service, "latency")
    service.prioritize(_args(0))
    assert service.shadow.drain()
    shown: dict[str, Any] = collect_state(dash)["shadow"]
    assert shown["name"] == "latency" and shown["scored"] == 1


def test_stop_never_blocks_even_with_a_full_queue() -> None:
    scorer = ShadowScorer(ExtenderMetrics(), capacity=1)
    stuck = Blocking()
    scorer.set_policy("blocking", stuck)  # type: ignore[arg-type]
    service = make_app()[1]
    service.shadow = scorer
    service.prioritize(_args(0))
    assert stuck.entered.wait(20)
    service.prioritize(_args(1))  # fills the queue
    scorer.stop()  # returns at once
    stuck.release.set()
    assert scorer._thread is not None
    scorer._thread.join(timeout=20)
    assert not scorer._thread.is_alive()


def test_the_shadow_waits_while_a_verb_is_in_flight() -> None:
    gate = VerbGate(quiet_s=0.0)
    scorer = ShadowScorer(ExtenderMetrics(), gate=gate)
    service = make_app()[1]
    service.shadow = scorer
    scorer.set_policy("latency", get_policy("latency"))
    gate.verb_started()  # as the app does around each verb
    service.prioritize(_args(0))
    assert not scorer.drain(timeout_s=0.2)  # queued, not scored: a verb is in flight
    assert scorer.stats()["scored"] == 0
    gate.verb_finished()
    assert scorer.drain()
    assert scorer.stats()["scored"] == 1
