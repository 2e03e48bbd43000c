"""The active model as the dashboard shows it: identity plus its model-card comparison.

The evaluation harness (``edge-allocator evaluate``) writes a JSON document whose ``rows`` hold,
per split, case and policy, the mean task completion time with a 95% CI. The dashboard reduces
it to one bar per policy: mean completion relative to ``kube-default`` (1.0 = the default
scheduler; lower is better), averaged over the cases of one split, held-out first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from edge_allocator.policy.base import PlacementPolicy

BASELINE = "kube-default"
METRIC = "mean_completion_s"
SPLIT_PREFERENCE = ("held-out", "heldout", "test", "validation", "train")
CARD_NAMES = ("{stem}.card.json", "{stem}.eval.json", "{stem}.json", "model-card.json")


@dataclass(frozen=True)
class ComparisonRow:
    policy: str
    relative: float  # mean completion / kube-default's, averaged over cases
    ci95: float  # half-width, on the same scale
    cases: int


@dataclass(frozen=True)
class ModelSummary:
    name: str  # what the extender calls it ("gnn", "est-completion", ...)
    policy: str  # the policy's own name
    version: str
    split: str = ""
    metric: str = "mean completion time relative to kube-default (lower is better)"
    comparison: tuple[ComparisonRow, ...] = field(default_factory=tuple)
    card: str = ""  # where the comparison came from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def comparison_from_rows(
    rows: Sequence[Mapping[str, Any]], split: str | None = None
) -> tuple[str, tuple[ComparisonRow, ...]]:
    """(split used, one row per policy) from evaluation rows; best (lowest) first."""
    splits = list(dict.fromkeys(str(r.get("split", "")) for r in rows))
    if split is None:
        split = next((s for s in SPLIT_PREFERENCE if s in splits), splits[0] if splits else "")
    chosen = [r for r in rows if str(r.get("split", "")) == split]
    base = {
        r["case"]: r[METRIC]["mean"]
        for r in chosen
        if r.get("policy") == BASELINE and _finite(r[METRIC]["mean"]) and r[METRIC]["mean"] > 0
    }
    per_policy: dict[str, list[tuple[float, float]]] = {}
    for r in chosen:
        denom = base.get(r.get("case"))
        value = r.get(METRIC) or {}
        if denom is None or not _finite(value.get("mean")):
            continue
        ci = value.get("ci95")
        per_policy.setdefault(str(r["policy"]), []).append(
            (value["mean"] / denom, ci / denom if _finite(ci) else 0.0)
        )
    out = [
        ComparisonRow(
            policy=p,
            relative=round(sum(v for v, _ in vals) / len(vals), 4),
            ci95=round(math.sqrt(sum(c * c for _, c in vals)) / len(vals), 4),
            cases=len(vals),
        )
        for p, vals in per_policy.items()
    ]
    out.sort(key=lambda c: c.relative)
    return split, tuple(out)


def find_card(model_path: Path | None) -> Path | None:
    """The evaluation JSON next to a model file, if any."""
    if model_path is None:
        return None
    for pattern in CARD_NAMES:
        candidate = model_path.parent / pattern.format(stem=model_path.stem)
        if candidate.is_file():
            return candidate
    return None


def summarize_model(
    name: str, policy: str, version: str, model_path: Path | None = None
) -> ModelSummary:
    """The summary for an active policy; the comparison is empty when no card is found."""
    card = find_card(model_path)
    if card is None:
        return ModelSummary(name=name, policy=policy, version=version)
    try:
        doc = json.loads(card.read_text())
        rows = doc.get("rows") or (doc.get("evaluation") or {}).get("rows") or []
        split, comparison = comparison_from_rows(rows)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return ModelSummary(name=name, policy=policy, version=version, card=f"{card}: {exc}")
    return ModelSummary(
        name=name, policy=policy, version=version, split=split, comparison=comparison,
        card=str(card.name),
    )  # fmt: skip


@lru_cache(maxsize=32)
def _model_path(name: str, version: str) -> Path | None:
    """The model file behind a policy name (``gnn``, ``gnn@<version>``, a ``.pt`` path)."""
    from edge_allocator.policy.registry import GNN, list_models, shipped_model_path

    if name == GNN:
        return shipped_model_path()
    if name.endswith(".pt"):
        return Path(name)
    if name.startswith(GNN + "@"):
        wanted = name.split("@", 1)[1]
        return next((m.path for m in list_models() if m.version == wanted), None)
    return None  # a heuristic baseline: no model file, no card


def active_model_summary(name: str, policy: PlacementPolicy) -> ModelSummary:
    """The summary of the policy an extender serves under ``name`` (card lookups are cached)."""
    path = _model_path(name, policy.version)
    return _cached_summary(name, policy.name, policy.version, path)


@lru_cache(maxsize=32)
def _cached_summary(name: str, policy: str, version: str, path: Path | None) -> ModelSummary:
    return summarize_model(name, policy, version, path)
