"""The shipped model: it loads through the registry, and its card still tells the truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edge_allocator.cluster.features import FEATURE_SCHEMA_VERSION
from edge_allocator.policy import registry
from edge_allocator.training.evaluate import Case
from edge_allocator.training.model_card import quick_check


@pytest.fixture(scope="module")
def card() -> dict[str, object]:
    path = registry.shipped_model_path()
    assert path is not None, f"no {registry.SHIPPED_FILE} in {registry.models_dir()}"
    card_path = Path(f"{path.with_suffix('')}.card.json")
    return dict(json.loads(card_path.read_text()))


def test_shipped_model_loads_with_its_metadata(card: dict[str, object]) -> None:
    policy = registry.get_policy("gnn")
    info = registry.list_models()[0]
    assert info.shipped and info.name == "gnn"
    assert policy.version == info.version == card["version"]
    assert info.metadata["feature_schema_version"] == FEATURE_SCHEMA_VERSION
    assert info.metadata["weights_sha256"] == card["weights_sha256"]
    assert info.metadata["git_revision"]
    assert info.metadata["training_config"]["teacher"] == "greedy-oracle"


@pytest.mark.timeout(300)
def test_quick_evaluation_reproduces_the_cards_ranking(card: dict[str, object]) -> None:
    torch.set_num_threads(1)
    recorded = card["quick_check"]
    assert isinstance(recorded, dict)
    cases = [
        Case(name.rsplit("-", 1)[0], int(name.rsplit("-", 1)[1]), n, "quick")
        for name, n in zip(recorded["cases"], recorded["tasks"], strict=True)
    ]
    again = quick_check(tuple(recorded["policies"]), cases, tuple(recorded["seeds"]))
    assert again["ranking"] == recorded["ranking"]
    for p, v in recorded["mean_completion_s"].items():
        assert again["mean_completion_s"][p] == pytest.approx(v, rel=0.02)
