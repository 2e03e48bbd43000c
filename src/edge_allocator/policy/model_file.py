"""Versioned model files: weights + metadata, checked on load.

A model file is a ``torch.save`` dict (loaded with ``weights_only=True``, so no code runs):
``format``, ``format_version``, ``metadata`` (name, version, feature schema, architecture,
training config, git revision, a SHA-256 of the weights) and ``state_dict``. Loading refuses a
file that is unreadable, truncated, altered, or built for another feature schema, with an error
that says which and what to do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from edge_allocator.cluster.features import FEATURE_SCHEMA_VERSION, feature_schema
from edge_allocator.policy.gnn import GNNConfig, PlacementGNN
from edge_allocator.policy.gnn_policy import GNNPolicy

FORMAT = "edge-allocator-model"
FORMAT_VERSION = 1


class ModelLoadError(Exception):
    """A model file cannot be used (unreadable, corrupted, or a feature-schema mismatch)."""


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors in key order (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_model(path: Path, model: PlacementGNN, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write ``model`` with ``metadata`` (schema, architecture and digest are filled in)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    meta = dict(metadata)
    meta["feature_schema_version"] = FEATURE_SCHEMA_VERSION
    meta["feature_schema"] = feature_schema()
    meta["model_config"] = model.config.to_dict()
    meta["weights_sha256"] = weights_digest(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": meta, "state_dict": state},
        tmp,
    )
    tmp.replace(path)
    return meta


def read_model_file(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Metadata and weights, validated (raises :class:`ModelLoadError`)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such model file") from None
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: not a readable model file (corrupted or truncated?): {exc}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelLoadError(f"{path}: not an edge-allocator model file (format field missing)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(
            f"{path}: model file format {payload.get('format_version')!r}, this build reads "
            f"{FORMAT_VERSION}"
        )
    meta = payload.get("metadata")
    state = payload.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(state, dict):
        raise ModelLoadError(f"{path}: metadata or state_dict missing")
    schema = meta.get("feature_schema_version")
    if schema != FEATURE_SCHEMA_VERSION:
        raise ModelLoadError(
            f"{path}: trained with feature schema version {schema!r}, but this build builds "
            f"features with version {FEATURE_SCHEMA_VERSION}; retrain the model "
            "(edge-allocator train) or use a matching release"
        )
    digest = weights_digest(state)
    if digest != meta.get("weights_sha256"):
        raise ModelLoadError(
            f"{path}: weights do not match the recorded SHA-256 (file corrupted or edited)"
        )
    return meta, state


def load_model_file(path: str | Path) -> GNNPolicy:
    """Load a model file as a ready-to-score policy (raises :class:`ModelLoadError`)."""
    p = Path(path)
    meta, state = read_model_file(p)
    try:
        config = GNNConfig(**meta.get("model_config", {}))
        model = PlacementGNN(config)
        model.load_state_dict(state, strict=True)
    except (TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"{p}: weights do not fit the recorded architecture: {exc}") from exc
    return GNNPolicy(model, meta)
