"""Policies by name: every heuristic baseline plus the shipped learned model.

The extender and the operator resolve a pod's ``edge-allocator.io/policy`` through
:func:`get_policy`; the evaluation harness uses the same names. Model files live in the models
directory (``$EDGE_ALLOCATOR_MODELS_DIR``, else ``models/`` at the repository root, else
``./models``); the file named in its ``SHIPPED`` file is what ``"gnn"`` means.

Reading a model file's metadata means ``torch.load`` plus a SHA-256 of its weights, so
:func:`list_models` remembers each file's metadata by (inode, size, mtime) and only re-reads
files that changed; :class:`ModelIndex` keeps the listing in memory for request handlers and
refreshes it from a background thread, so no request waits on the disk.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

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
    "planning-oracle": "the greedy oracle plus room kept for the latency-bound work of the next "
    "30 s, which it reads from the future arrivals; simulator only "
    "(edge_allocator.sim.planning.PlanningOraclePolicy)",
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


_FileKey = tuple[int, int, int]
_meta_memo: dict[Path, tuple[_FileKey, dict[str, Any] | None]] = {}
_memo_lock = threading.Lock()


def _metadata(path: Path) -> dict[str, Any] | None:
    """The file's validated metadata (None when unreadable), re-read only when it changed."""
    try:
        st = path.stat()
    except OSError:
        return None
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    resolved = path.resolve()
    with _memo_lock:
        hit = _meta_memo.get(resolved)
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        meta: dict[str, Any] | None = read_model_file(path)[0]
    except ModelLoadError:
        meta = None
    with _memo_lock:
        _meta_memo[resolved] = (key, meta)
    return meta


def list_models(directory: Path | None = None) -> list[ModelInfo]:
    """Every readable model file (``*.pt``) in the models directory, shipped one first."""
    d = directory or models_dir()
    shipped = shipped_model_path(d)
    out: list[ModelInfo] = []
    for path in sorted(d.glob("*.pt")) if d.is_dir() else []:
        meta = _metadata(path)
        if meta is None:
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


class ModelIndex:
    """The models directory's listing held in memory; ``refresh`` runs off the request path.

    ``models()`` and ``generation`` never touch the disk. ``generation`` grows whenever a
    refresh finds a different listing, so a cache of name lookups (hits and misses) keyed by
    it notices a model file that appeared, changed or went away. ``start`` refreshes every
    ``interval_s`` seconds in a daemon thread; without it the listing is the one read first.
    """

    def __init__(self, directory: Path | None = None, interval_s: float = 5.0) -> None:
        self.directory = directory
        self.interval_s = interval_s
        self.generation = 0
        self._models: tuple[ModelInfo, ...] = ()
        self._loaded = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def models(self) -> tuple[ModelInfo, ...]:
        """The listing as last refreshed (read from disk once if never refreshed)."""
        if not self._loaded:
            self.refresh()
        return self._models

    def versions(self, name: str = GNN) -> list[str]:
        return [m.version for m in self.models() if m.name == name]

    def refresh(self) -> bool:
        """Re-list the directory (unchanged files are not re-read); True when it changed."""
        with self._lock:
            found = tuple(list_models(self.directory))
            changed = not self._loaded or [
                (m.path, m.name, m.version, m.shipped) for m in found
            ] != [(m.path, m.name, m.version, m.shipped) for m in self._models]
            self._models = found
            self._loaded = True
            if changed:
                self.generation += 1
            return changed

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-index", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception:  # a bad directory must not kill the refresher
                log.exception("refreshing the model listing failed")


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
