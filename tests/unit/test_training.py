"""Training: batched forward passes, a seeded end-to-end run, the train CLI's outputs."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_allocator.policy import registry
from edge_allocator.policy.gnn import GNNConfig, PlacementGNN
from edge_allocator.policy.gnn_policy import GNNPolicy
from edge_allocator.sim.engine import Simulator
from edge_allocator.sim.scenario import load_scenario
from edge_allocator.training import train_cli
from edge_allocator.training.batching import forward_batch
from edge_allocator.training.evaluate import HELDOUT_FAMILIES
from edge_allocator.training.rollout import RecordingChooser
from edge_allocator.training.trainer import TrainConfig, Trainer


def _tiny(seed: int = 0) -> TrainConfig:
    return TrainConfig(
        seed=seed,
        families=("factory-floor", "rural"),
        sizes=(6,),
        min_tasks=30,
        max_tasks=30,
        bc_episodes=2,
        dagger_rounds=1,
        dagger_episodes=1,
        bc_epochs=1,
        ppo_iterations=1,
        ppo_episodes=2,
        ppo_sizes=(6,),
        val_every=1,
        val_seeds=(900_001,),
        val_size=6,
        threads=1,
        model=GNNConfig(hidden=8, layers=2, head_hidden=16),
    )


def test_batched_log_softmax_matches_single_graph_scoring() -> None:
    torch.manual_seed(0)
    model = PlacementGNN(GNNConfig(hidden=8, layers=2, head_hidden=16))
    sim = Simulator(load_scenario("smart-city").resized(15, 40), seed=1)
    chooser = RecordingChooser(model, None, "greedy", np.random.default_rng(0))
    sim.run(chooser)
    recs = chooser.records[:10]
    with torch.no_grad():
        out = forward_batch(model.eval(), recs)
    sums = torch.zeros(len(recs)).index_add_(0, out.seg, torch.exp(out.logp_all))
    assert sums.tolist() == pytest.approx([1.0] * len(recs), abs=1e-5)
    # the recorded greedy action is the batch's argmax for each decision
    for d, r in enumerate(recs):
        seg = out.logp_all[out.seg == d]
        assert int(torch.argmax(seg)) == r.action
        assert float(seg[r.action]) == pytest.approx(r.logp, abs=1e-4)


def test_training_is_seeded_and_records_a_curve(tmp_path: Path) -> None:
    a, b = Trainer(_tiny(), log=lambda _: None), Trainer(_tiny(), log=lambda _: None)
    stats = a.train()
    b.train()
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert stats["best_checkpoint"] in {"bc", "dagger-1", "ppo-1"}
    assert [p.phase for p in a.curve] == ["bc", "dagger", "ppo"]
    a.write_curve(tmp_path / "c.csv", tmp_path / "c.png")
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert [r["phase"] for r in rows] == ["bc", "dagger", "ppo"]
    assert all(float(r["val_ratio_vs_teacher"]) > 0 for r in rows)
    assert (tmp_path / "c.png").stat().st_size > 1000
    other = Trainer(_tiny(seed=1), log=lambda _: None)
    other.imitation()
    assert not torch.equal(other.model.head3.weight, a.model.head3.weight)


def test_train_cli_writes_a_loadable_shipped_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(train_cli, "quick_config", lambda seed: _tiny(seed))
    parser = argparse.ArgumentParser()
    train_cli.configure(parser)
    out = tmp_path / "gnn-9.9.9.pt"
    args = parser.parse_args(
        ["--quick", "--out", str(out), "--version", "9.9.9", "--ship", "--threads", "1"]
    )
    assert train_cli.run(args) == 0
    assert "[ppo] iter 1/1" in capsys.readouterr().out
    monkeypatch.setenv(registry.MODELS_DIR_ENV, str(tmp_path))
    policy = registry.get_policy("gnn")
    assert isinstance(policy, GNNPolicy)
    assert policy.version == "9.9.9"
    assert policy.metadata["training_config"]["seed"] == 0
    # What decides the floats is recorded, so a retrain elsewhere that differs can be traced.
    env = policy.metadata["environment"]
    assert env["torch"] == torch.__version__
    assert set(env) == {"torch", "torch_geometric", "numpy", "cpu", "cpu_capability"}
    assert (tmp_path / "gnn-9.9.9.curve.csv").exists()
    assert (tmp_path / "gnn-9.9.9.curve.png").exists()


def test_training_never_sees_a_held_out_family_and_randomises_background() -> None:
    cfg = TrainConfig()
    assert not set(cfg.families) & set(HELDOUT_FAMILIES)
    assert all(load_scenario(f).split == "heldout" for f in HELDOUT_FAMILIES)
    assert all(load_scenario(f).split == "train" for f in cfg.families)
    a, b = Trainer(_tiny(), log=lambda _: None), Trainer(_tiny(), log=lambda _: None)
    drawn = [a._next_case()[0].dynamics.background for _ in range(6)]
    assert drawn == [b._next_case()[0].dynamics.background for _ in range(6)]
    assert len({bg.mean for bg in drawn}) == 6
    for bg in drawn:
        assert cfg.bg_mean[0] <= bg.mean <= cfg.bg_mean[1]
        assert cfg.bg_heterogeneity[0] <= bg.heterogeneity <= cfg.bg_heterogeneity[1]
        assert cfg.bg_volatility[0] <= bg.volatility <= cfg.bg_volatility[1]


def test_the_student_sees_some_episodes_without_work_as_live_pods_are() -> None:
    """Live pods do not declare their work (has_work = 0 on every served decision): a share of
    training episodes shows the student the same, while the teacher still scores with it."""
    from edge_allocator.cluster.features import TASK_FEATURES
    from edge_allocator.policy.registry import get_policy

    has_work = TASK_FEATURES.index("has_work")
    teacher = get_policy("est-completion")
    seen_labels: list[int] = []
    for hide in (False, True):
        sim = Simulator(load_scenario("smart-city").resized(15, 40), seed=1)
        chooser = RecordingChooser(
            None, teacher, "teacher", np.random.default_rng(0), hide_work=hide
        )
        sim.run(chooser)
        assert chooser.records
        assert {float(r.task_x[has_work]) for r in chooser.records} == {0.0 if hide else 1.0}
        # the teacher's label used the work: the same choices whether the student sees it
        if hide:
            assert [r.teacher for r in chooser.records] == seen_labels
        seen_labels = [r.teacher for r in chooser.records]
    trainer = Trainer(TrainConfig(work_hidden_share=0.3), log=lambda _: None)
    hidden = [trainer._hides_work(seed) for seed in range(400)]
    assert 0.2 < sum(hidden) / len(hidden) < 0.4
    assert hidden == [trainer._hides_work(seed) for seed in range(400)]
