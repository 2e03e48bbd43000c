"""Policies by name: every heuristic baseline plus the shipped learned model.

The extender and the operator resolve a pod's ``edge-allocator.io/policy`` through
:func:`get_policy`; the evaluation harness uses the same names. Model files live in the models
directory (``$EDGE_ALLOCATOR_MODELS_DIR``, else ``models/`` at the repository root, else
``./models``); the file named in its ``SHIPPED`` file is what ``"gnn"`` means.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_allocator.policy.base import PlacementPolicy
from edge_allocator.policy.baselines import (
    EstimatedCompletionPolicy,
    KubeDefaultPolicy,
    LowestLatencyPolicy,
    NetworkOverheadPolicy,
    RandomPolicy,
    RoundRobinPolicy,
    TargetLoadPackingPolicy,
)
from edge_allocator.policy.model_file import ModelLoadError, load_model_file, read_model_file

GNN = "gnn"
SHIPPED_FILE = "SHIPPED"
MODELS_DIR_ENV = "EDGE_ALLOCATOR_MODELS_DIR"

BASELINES: dict[str, Callable[[], PlacementPolicy]] = {
    "kube-default": KubeDefaultPolicy,
    "latency": LowestLatencyPolicy,
    "trimaran-tlp": TargetLoadPackingPolicy,
    "network-overhead": NetworkOverheadPolicy,
    "est-completion": EstimatedCompletionPolicy,
    "random": RandomPolicy,
    "round-robin": RoundRobinPolicy,
}
REFERENCE_POLICIES = {
    "greedy-oracle": "minimises completion time from full simulator state; simulator only "
    "(edge_allocator.sim.oracle.GreedyOraclePolicy)",
}


class UnknownPolicyError(LookupError):
    """No deployable policy has that name."""


@dataclass(frozen=True)
class ModelInfo:
    """A model file in the models directory."""

    name: str
    version: str
    path: Path
    metadata: dict[str, Any]
    shipped: bool


def models_dir() -> Path:
    """Where model files are looked up (see the module docstring)."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3] / "models"
    if repo.is_dir():
        return repo
    return Path.cwd() / "models"


def shipped_model_path(directory: Path | None = None) -> Path | None:
    """The shipped model file, or None when no model has been shipped."""
    d = directory or models_dir()
    marker = d / SHIPPED_FILE
    if not marker.is_file():
        return None
    name = marker.read_text().strip()
    return d / name if name else None


def list_models(directory: Path | None = None) -> list[ModelInfo]:
    """Every readable model file (``*.pt``) in the models directory, shipped one first."""
    d = directory or models_dir()
    shipped = shipped_model_path(d)
    out: list[ModelInfo] = []
    for path in sorted(d.glob("*.pt")) if d.is_dir() else []:
        try:
            meta, _ = read_model_file(path)
        except ModelLoadError:
            continue
        out.append(
            ModelInfo(
                name=str(meta.get("name", path.stem)),
                version=str(meta.get("version", "0")),
                path=path,
                metadata=meta,
                shipped=shipped is not None and path.resolve() == shipped.resolve(),
            )
        )
    out.sort(key=lambda m: (not m.shipped, m.name, m.version))
    return out


def policy_names(include_reference: bool = False) -> list[str]:
    """Deployable policy names (``gnn`` only when a model is shipped)."""
    names = list(BASELINES)
    if shipped_model_path() is not None:
        names.insert(0, GNN)
    if include_reference:
        names += list(REFERENCE_POLICIES)
    return names


_loaded: dict[Path, PlacementPolicy] = {}
_lock = threading.Lock()


def _load_cached(path: Path) -> PlacementPolicy:
    key = path.resolve()
    with _lock:
        hit = _loaded.get(key)
    if hit is not None:
        return hit
    policy = load_model_file(key)
    with _lock:
        _loaded[key] = policy
    return policy


def get_policy(name: str) -> PlacementPolicy:
    """The policy called ``name``.

    ``"gnn"``: the shipped model (loaded once, shared so its embedding cache is reused);
    ``"gnn@<version>"``: a model of that version from the models directory; a path ending in
    ``.pt``: that model file; otherwise a baseline name from :data:`BASELINES`. Raises
    :class:`UnknownPolicyError` for anything else and :class:`ModelLoadError` for a bad file.
    """
    if name in BASELINES:
        return BASELINES[name]()
    if name == GNN:
        path = shipped_model_path()
        if path is None:
            raise UnknownPolicyError(
                f"policy 'gnn': no shipped model in {models_dir()} (no {SHIPPED_FILE} file)"
            )
        return _load_cached(path)
    if name.startswith(GNN + "@"):
        version = name.split("@", 1)[1]
        for info in list_models():
            if info.name == GNN and info.version == version:
                return _load_cached(info.path)
        raise UnknownPolicyError(f"policy {name!r}: no gnn model of version {version!r}")
    if name.endswith(".pt"):
        return _load_cached(Path(name))
    if name in REFERENCE_POLICIES:
        raise UnknownPolicyError(
            f"policy {name!r} is a simulator-only reference, not deployable: "
            f"{REFERENCE_POLICIES[name]}"
        )
    raise UnknownPolicyError(f"unknown policy {name!r}; known: {', '.join(policy_names())}")
