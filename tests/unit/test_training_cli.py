"""``edge-allocator train --quick`` is a pipeline check: it never writes over a shipped model."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edge_allocator.policy.gnn import GNNConfig
from edge_allocator.training import train_cli
from edge_allocator.training.trainer import TrainConfig


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_cli.configure(parser)
    return parser.parse_args(list(argv))


def test_default_output_paths() -> None:
    quick = train_cli.output_path(_args("--quick"))
    assert "models" not in quick.parts and quick.parts[0] == ".cache"
    assert train_cli.output_path(_args()) == Path("models/gnn-3.1.0.pt")  # as documented
    assert train_cli.output_path(_args("--quick", "--out", "x/m.pt")) == Path("x/m.pt")


def test_quick_run_writes_to_scratch_and_leaves_models_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = TrainConfig(
        families=("rural",),
        sizes=(6,),
        min_tasks=20,
        max_tasks=20,
        bc_episodes=1,
        dagger_rounds=0,
        bc_epochs=1,
        ppo_iterations=0,
        ppo_sizes=(6,),
        val_seeds=(900_001,),
        val_size=6,
        model=GNNConfig(hidden=8, layers=1, head_hidden=8),
    )
    monkeypatch.setattr(train_cli, "quick_config", lambda seed: tiny)
    monkeypatch.chdir(tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    (models / "gnn-3.0.0.pt").write_bytes(b"shipped")
    assert train_cli.run(_args("--quick")) == 0
    assert f"writing the toy model to {train_cli.QUICK_OUT}" in capsys.readouterr().out
    assert (tmp_path / train_cli.QUICK_OUT).stat().st_size > 0
    assert sorted(p.name for p in models.iterdir()) == ["gnn-3.0.0.pt"]
    assert (models / "gnn-3.0.0.pt").read_bytes() == b"shipped"
